import { appRouter, createCallerFactory, createContext } from '@mvp/api';
import type { Account } from './accounts';
import type { TestServer } from './startServer';

/**
 * The procedures as `who`, on this server's own ports except a database that runs `between`
 * just before the first transaction the call opens: after its checks, before its write. The
 * interleaving a race would need, every time.
 */
export async function racedBy(t: TestServer, who: Account, between: () => Promise<unknown>) {
  const ports = t.server.infra.ports;
  const real = ports.db;
  let pending: (() => Promise<unknown>) | undefined = between;
  const bound = <T extends object>(target: T, key: string | symbol) => {
    const value = Reflect.get(target, key, target) as unknown;
    return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
  };
  const db = new Proxy(real, {
    get(target, key) {
      if (key !== 'transaction') return bound(target, key);
      return () => {
        const builder = target.transaction();
        return new Proxy(builder, {
          get(b, k) {
            if (k !== 'execute') return bound(b, k);
            return async (work: Parameters<typeof b.execute>[0]) => {
              const run = pending;
              pending = undefined;
              await run?.();
              return b.execute(work);
            };
          },
        });
      };
    },
  });
  const ctx = await createContext({ ...ports, db }, t.server.settings, {
    requestId: 'raced',
    ip: '127.0.0.1',
    transport: 'http',
    token: who.accessToken,
  });
  return createCallerFactory(appRouter)(ctx);
}
