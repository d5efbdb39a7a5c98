import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorCodeOf } from '@mvp/sdk';
import { clientWithToken, DEVICE, PASSWORD, registerUser } from './helpers/accounts';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel, testRedisUrl } from './helpers/env';

// Several instances exist only in production (MySQL + Redis). The embedded setup is one process,
// so there the "other instance" is the same server and the tests check the single-instance path.
const instances = testRedisUrl ? 2 : 1;

describe(`${instances} instance(s) sharing one database and one bus (${backendLabel})`, () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    const shared = {
      dataDir: mkdtempSync(join(tmpdir(), 'mvp-multi-')),
      redisPrefix: `test:${randomUUID()}:`,
    };
    a = await startServer(shared);
    b = instances === 2 ? await startServer(shared) : a;
  });
  afterAll(async () => {
    await Promise.all([...new Set([a, b])].map((s) => s.stop()));
  });

  it('a session revoked on one instance ends at once on the other, sockets included', async () => {
    const account = await registerUser(a);
    const phone = await b.client.api.auth.login.mutate({
      identifier: account.username,
      password: PASSWORD,
      device: DEVICE,
    });
    if (phone.status !== 'ok') throw new Error('expected tokens');
    expect((await clientWithToken(b, phone.accessToken).api.me.get.query()).id).toBe(
      account.userId,
    );

    const ws = new WebSocket(`${b.server.wsUrl}?connectionParams=1`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ method: 'connectionParams', data: { token: phone.accessToken } }));
    ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'me.get', input: {} } }));
    await new Promise((r) => ws.once('message', r)); // authenticated and tracked on b

    await clientWithToken(a, account.accessToken).api.sessions.revokeOthers.mutate();
    expect(await closed).toBe(4401);
    const error = await clientWithToken(b, phone.accessToken)
      .api.me.get.query()
      .catch((e: unknown) => e);
    expect(errorCodeOf(error)).toBe('UNAUTHORIZED');
  });

  it('rate limits are shared: a budget spent on one instance is spent on the other', async () => {
    const rule = { name: 'shared-check', points: 2, durationSeconds: 60 };
    expect((await a.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(true);
    expect((await b.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(true);
    expect((await a.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(false);
  });
});
