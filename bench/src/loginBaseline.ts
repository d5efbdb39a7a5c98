import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { argon2id, hash, verify } from 'argon2';
import type { Argon2Params } from './targets';

/** What the raw login server needs: the accounts, and the bytes to answer a success with. */
export type LoginBaselinePayload = {
  argon2: Argon2Params;
  identifiers: string[];
  password: string;
  /** A real `auth.login` answer of the MVP server, captured at start-up. */
  responseBody: string;
};

export type RunningLoginBaseline = {
  loginUrl: string;
  concurrency: number;
  close(): Promise<void>;
};

/**
 * The same cap the server's password hasher has (packages/api createPasswordHasher: p-limit at
 * `availableParallelism()`), as a FIFO queue: verifications beyond it wait instead of all
 * holding `memoryCost` KiB at once on libuv's threadpool.
 */
function limiter(concurrency: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= concurrency) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

/**
 * The floor a login is compared with: node:http that reads the POST body, finds the account's
 * stored hash, runs one `argon2.verify` (same package, same cost, same concurrency cap as the
 * server) and answers the captured MVP answer. Everything else a login does (tRPC, validation,
 * limits, the session row, signing the tokens) is what the ratio shows.
 */
export async function startLoginBaseline(
  payload: LoginBaselinePayload,
): Promise<RunningLoginBaseline> {
  const concurrency = availableParallelism();
  const limit = limiter(concurrency);
  // One hash per account, like the users table; setup, not measured.
  const hashes = new Map<string, string>(
    await Promise.all(
      payload.identifiers.map(
        async (id) =>
          [
            id,
            await limit(() => hash(payload.password, { type: argon2id, ...payload.argon2 })),
          ] as const,
      ),
    ),
  );
  const body = Buffer.from(payload.responseBody);

  const answer = (res: ServerResponse, status: number, bytes: Buffer) => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
    res.end(bytes);
  };
  const unauthorized = Buffer.from('{"error":"UNAUTHORIZED"}');

  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST') return answer(res, 405, Buffer.from('{}'));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        try {
          const { json } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            json: { identifier: string; password: string };
          };
          const stored = hashes.get(json.identifier);
          const ok = stored !== undefined && (await limit(() => verify(stored, json.password)));
          answer(res, ok ? 200 : 401, ok ? body : unauthorized);
        } catch (err) {
          answer(res, 500, Buffer.from(JSON.stringify({ error: String(err) })));
        }
      })();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    loginUrl: `${url}/trpc/auth.login`,
    concurrency,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
