import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorCodeOf } from '@mvp/sdk';
import { POSTING_CHANGED_CHANNEL } from '@mvp/api';
import { befriend, clientWithToken, DEVICE, PASSWORD, registerUser } from './helpers/accounts';
import { codeOf } from './helpers/errors';
import { sendText } from './helpers/messaging';
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

  it('a block on one instance reaches the sends the other decides from its cache', async () => {
    const [alice, bob] = [await registerUser(a), await registerUser(a)];
    await befriend(a, alice, bob);
    const direct = await clientWithToken(a, alice.accessToken).api.conversations.create.mutate({
      kind: 'direct',
      userId: bob.userId,
    });
    await sendText(b, bob, direct.id, 'hi'); // b now holds bob's posting context
    // b's own handler was subscribed first, at start-up: once this one hears it, b has forgotten.
    let heard!: () => void;
    const arrived = new Promise<void>((resolve) => (heard = resolve));
    const stop = await b.server.infra.ports.bus.subscribe(POSTING_CHANGED_CHANNEL, () => heard());
    await clientWithToken(a, alice.accessToken).api.blocks.add.mutate({ userId: bob.userId });
    await arrived;
    await stop();
    expect(await codeOf(sendText(b, bob, direct.id, 'blocked'))).toBe('FORBIDDEN');
  });

  it('rate limits are shared: a budget spent on one instance is spent on the other', async () => {
    const rule = { name: 'shared-check', points: 2, durationSeconds: 60 };
    expect((await a.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(true);
    expect((await b.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(true);
    expect((await a.server.infra.ports.rateLimiter.consume(rule, 'k')).allowed).toBe(false);
  });
});
