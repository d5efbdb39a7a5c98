import type { TRPCClient } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import type { AppRouter } from '@mvp/api';
import { createApiSyncTransport } from './syncTransport';

describe('createApiSyncTransport', () => {
  it("sends an ack as the account whose envelopes it names (the client's guard checks it)", async () => {
    const calls: { input: unknown; context: unknown }[] = [];
    const api = {
      sync: {
        ack: {
          mutate: (input: unknown, opts?: { context?: unknown }) => {
            calls.push({ input, context: opts?.context });
            return Promise.resolve(undefined);
          },
        },
      },
    } as unknown as TRPCClient<AppRouter>;
    const transport = createApiSyncTransport(api, (owner) => ({ sentAs: owner }));
    await transport.ack('7', 'alice');
    expect(calls).toEqual([{ input: { upTo: '7' }, context: { sentAs: 'alice' } }]);
  });
});
