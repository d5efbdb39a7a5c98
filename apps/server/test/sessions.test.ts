import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { errorCodeOf } from '@mvp/sdk';
import { clientWithToken, DEVICE, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { eventQueue } from './helpers/collect';
import { defaultConfig } from '../src/index';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';
import { codeOf } from './helpers/errors';

async function loginAgain(t: TestServer, account: Account, name: string) {
  const res = await t.client.api.auth.login.mutate({
    identifier: account.username,
    password: PASSWORD,
    device: { name, platform: 'web' },
  });
  if (res.status !== 'ok') throw new Error('expected tokens');
  return res;
}

/** A raw tRPC WebSocket that authenticates with connectionParams, to watch the socket itself. */
async function openAuthedSocket(t: TestServer, token: string) {
  const ws = new WebSocket(`${t.server.wsUrl}?connectionParams=1`);
  const messages = eventQueue<Record<string, unknown>>();
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('message', (d: Buffer) =>
    messages.push(JSON.parse(d.toString()) as Record<string, unknown>),
  );
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
  let id = 0;
  const query = async (path: string) => {
    ws.send(JSON.stringify({ id: ++id, method: 'query', params: { path, input: {} } }));
    return messages.next();
  };
  return { ws, query, closed };
}

describe(`sessions and devices (${backendLabel})`, () => {
  let t: TestServer;
  /** Moves the server's clock on, for a refresh token's reuse past its grace. */
  let offsetMs = 0;
  beforeAll(async () => {
    t = await startServer({}, { clock: { now: () => Date.now() + offsetMs } });
  });
  afterAll(() => t.stop());

  it('lists my sessions with their devices and marks the current one', async () => {
    const account = await registerUser(t);
    await loginAgain(t, account, 'Laptop');
    const { sessions } = await clientWithToken(t, account.accessToken).api.sessions.list.query();
    expect(sessions).toHaveLength(2);
    expect(sessions.find((s) => s.current)?.id).toBe(account.sessionId);
    expect(sessions.map((s) => s.device.name).sort()).toEqual(['Laptop', DEVICE.name].sort());
  });

  it('revoke-others ends every other session at once and closes its sockets', async () => {
    const account = await registerUser(t);
    const phone = await loginAgain(t, account, 'Phone');
    const socket = await openAuthedSocket(t, phone.accessToken);
    expect(await socket.query('me.get')).toMatchObject({ result: { type: 'data' } });

    const { revoked } = await clientWithToken(
      t,
      account.accessToken,
    ).api.sessions.revokeOthers.mutate();
    expect(revoked).toBe(1);
    expect(await socket.closed).toBe(4401);
    expect(await codeOf(clientWithToken(t, phone.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(
      await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: phone.refreshToken })),
    ).toBe('UNAUTHORIZED');
    expect(await codeOf(clientWithToken(t, account.accessToken).api.me.get.query())).toBe('ok');
  });

  it("someone else's session is NOT_FOUND and stays alive; a malformed id is BAD_REQUEST", async () => {
    const mallory = await registerUser(t);
    const alice = await registerUser(t);
    expect(
      await codeOf(
        clientWithToken(t, mallory.accessToken).api.sessions.revoke.mutate({ id: alice.sessionId }),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await codeOf(
        clientWithToken(t, mallory.accessToken).api.sessions.revoke.mutate({ id: randomUUID() }),
      ),
    ).toBe('NOT_FOUND');
    expect(await codeOf(clientWithToken(t, alice.accessToken).api.me.get.query())).toBe('ok');
    expect(
      await codeOf(
        clientWithToken(t, mallory.accessToken).api.sessions.revoke.mutate({ id: 'nope' }),
      ),
    ).toBe('BAD_REQUEST');
  });

  it('without a token every session procedure is UNAUTHORIZED', async () => {
    expect(await codeOf(t.client.api.sessions.list.query())).toBe('UNAUTHORIZED');
    expect(await codeOf(t.client.api.sessions.revokeOthers.mutate())).toBe('UNAUTHORIZED');
    expect(await codeOf(t.client.api.auth.logout.mutate())).toBe('UNAUTHORIZED');
  });

  it('refresh rotates; a reused refresh token kills the whole family', async () => {
    const account = await registerUser(t);
    const first = await t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken });
    expect(first.refreshToken).not.toBe(account.refreshToken);
    expect(first.sessionId).toBe(account.sessionId);
    const second = await t.client.api.auth.refresh.mutate({ refreshToken: first.refreshToken });

    // An attacker replays the first token (past the 30 s a lost answer is retried within): the
    // session (family) dies, the newest token with it.
    offsetMs = 31_000;
    try {
      expect(
        await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken })),
      ).toBe('UNAUTHORIZED');
    } finally {
      offsetMs = 0;
    }
    expect(
      await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: second.refreshToken })),
    ).toBe('UNAUTHORIZED');
    expect(await codeOf(clientWithToken(t, second.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(
      t.logs.lines.some(
        (l) => l.event === 'refresh_token_reuse' && l.sessionId === account.sessionId,
      ),
    ).toBe(true);
  });

  it('a refresh whose answer was lost, or two tabs refreshing at once, keep the session', async () => {
    const account = await registerUser(t);
    // The first answer never reached the client, which tries again with the same token.
    await t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken });
    const retried = await t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken });
    expect(retried.sessionId).toBe(account.sessionId);
    expect((await clientWithToken(t, retried.accessToken).api.me.get.query()).id).toBe(
      account.userId,
    );
    // Two tabs sharing one store refresh with the same token at once: both get a pair.
    const tabs = await Promise.all([
      t.client.api.auth.refresh.mutate({ refreshToken: retried.refreshToken }),
      t.client.api.auth.refresh.mutate({ refreshToken: retried.refreshToken }),
    ]);
    for (const pair of tabs)
      expect((await clientWithToken(t, pair.accessToken).api.me.get.query()).id).toBe(
        account.userId,
      );
    expect(
      t.logs.lines.some(
        (l) => l.sessionId === account.sessionId && l.event === 'refresh_token_reuse',
      ),
    ).toBe(false);
  });

  it("a thief's replay within the grace is caught when the client's refresh follows the thief's", async () => {
    const account = await registerUser(t);
    const refresh = (refreshToken: string) => t.client.api.auth.refresh.mutate({ refreshToken });
    const client = await refresh(account.refreshToken);
    // The thief replays the first token a moment after the client used it, and goes on first.
    const stolen = await refresh(account.refreshToken);
    const thief = await refresh(stolen.refreshToken);

    expect(await codeOf(refresh(client.refreshToken))).toBe('UNAUTHORIZED');
    expect(await codeOf(refresh(thief.refreshToken))).toBe('UNAUTHORIZED');
    expect(await codeOf(clientWithToken(t, thief.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(
      t.logs.lines.some(
        (l) => l.event === 'refresh_token_reuse' && l.sessionId === account.sessionId,
      ),
    ).toBe(true);
  });

  it("a thief's replay within the grace is caught when the thief's refresh follows the client's", async () => {
    const account = await registerUser(t);
    const refresh = (refreshToken: string) => t.client.api.auth.refresh.mutate({ refreshToken });
    const client = await refresh(account.refreshToken);
    const stolen = await refresh(account.refreshToken);
    // The client goes on first this time.
    const next = await refresh(client.refreshToken);

    expect(await codeOf(refresh(stolen.refreshToken))).toBe('UNAUTHORIZED');
    expect(await codeOf(refresh(next.refreshToken))).toBe('UNAUTHORIZED');
    expect(await codeOf(clientWithToken(t, stolen.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(
      t.logs.lines.some(
        (l) => l.event === 'refresh_token_reuse' && l.sessionId === account.sessionId,
      ),
    ).toBe(true);
  });

  it('two sibling tokens presented at once: one answer, and the session is revoked', async () => {
    const account = await registerUser(t);
    const refresh = (refreshToken: string) => t.client.api.auth.refresh.mutate({ refreshToken });
    const client = await refresh(account.refreshToken);
    const stolen = await refresh(account.refreshToken);

    const answers = await Promise.allSettled([
      refresh(client.refreshToken),
      refresh(stolen.refreshToken),
    ]);
    // Whichever goes second finds the other used, before or under the session's lock.
    expect(answers.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    for (const a of answers)
      if (a.status === 'fulfilled')
        expect(await codeOf(refresh(a.value.refreshToken))).toBe('UNAUTHORIZED');
    expect(await codeOf(clientWithToken(t, client.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
  });

  it('a malformed refresh token is BAD_REQUEST; an unknown one UNAUTHORIZED', async () => {
    expect(await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: 'short' }))).toBe(
      'BAD_REQUEST',
    );
    expect(await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: 'A'.repeat(43) }))).toBe(
      'UNAUTHORIZED',
    );
  });

  it('logout ends this session only', async () => {
    const account = await registerUser(t);
    const other = await loginAgain(t, account, 'Tablet');
    await clientWithToken(t, account.accessToken).api.auth.logout.mutate();
    expect(await codeOf(clientWithToken(t, account.accessToken).api.me.get.query())).toBe(
      'UNAUTHORIZED',
    );
    expect(await codeOf(clientWithToken(t, other.accessToken).api.me.get.query())).toBe('ok');
  });

  it('REST: login, me, sessions, revoke-others, refresh, logout', async () => {
    const account = await registerUser(t);
    const post = (path: string, body?: unknown, token?: string) =>
      fetch(`${t.server.url}/api/v1${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const login = await post('/auth/login', {
      identifier: account.uniqueId,
      password: PASSWORD,
      device: DEVICE,
    });
    expect(login.status).toBe(200);
    const tokens = (await login.json()) as {
      accessToken: string;
      refreshToken: string;
      expiresAt: string;
      user: Record<string, unknown>;
    };
    expect(tokens.user).toMatchObject({
      id: account.userId,
      uniqueId: account.uniqueId,
      username: account.username,
    });
    const auth = { authorization: `Bearer ${tokens.accessToken}` };

    const me = await fetch(`${t.server.url}/api/v1/me`, { headers: auth });
    expect(await me.json()).toMatchObject({ id: account.userId });
    const list = (await (
      await fetch(`${t.server.url}/api/v1/sessions`, { headers: auth })
    ).json()) as { sessions: { id: string }[] };
    expect(list.sessions).toHaveLength(2);
    const del = await fetch(`${t.server.url}/api/v1/sessions/${account.sessionId}`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(del.status).toBe(200);
    expect((await post('/sessions/revoke-others', undefined, tokens.accessToken)).status).toBe(200);
    const refreshed = await post('/auth/refresh', { refreshToken: tokens.refreshToken });
    expect(refreshed.status).toBe(200);
    const next = (await refreshed.json()) as { accessToken: string };
    expect((await post('/auth/logout', undefined, next.accessToken)).status).toBe(200);
    expect(
      (
        await fetch(`${t.server.url}/api/v1/me`, {
          headers: { authorization: `Bearer ${next.accessToken}` },
        })
      ).status,
    ).toBe(401);
  });
});

describe(`a token that expires on an open WebSocket (${backendLabel})`, () => {
  let t: TestServer;
  let now = Date.now();
  beforeAll(async () => {
    t = await startServer({}, { clock: { now: () => now } });
  });
  afterAll(() => t.stop());

  it('stops working for new calls on that socket', async () => {
    const account = await registerUser(t);
    const socket = await openAuthedSocket(t, account.accessToken);
    expect(await socket.query('me.get')).toMatchObject({ result: { type: 'data' } });
    now += 16 * 60 * 1000;
    const answer = (await socket.query('me.get')) as {
      error: { json: { data: { appCode: string } } };
    };
    expect(answer.error.json.data.appCode).toBe('UNAUTHORIZED');
    socket.ws.close();
  });
});

describe(`an open event stream ends with its session, even unannounced (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer(
      { messaging: { ...defaultConfig().messaging, streamSessionCheckMs: 100 } },
      { auth: { sessionCacheMs: 0 } },
    );
  });
  afterAll(() => t.stop());

  it('a session revoked without the bus telling its socket stops the stream UNAUTHORIZED', async () => {
    const account = await registerUser(t);
    const client = t.newClient({ getToken: () => account.accessToken, WebSocket });
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const ended = new Promise<unknown>((resolve) => {
      client.api.sync.events.subscribe(
        { lastEventId: null },
        { onStarted: started, onData: () => undefined, onError: resolve },
      );
    });
    await running;
    const { presence } = t.server.infra.ports;
    const online = async () => (await presence.online([account.userId], Date.now())).size === 1;
    await vi.waitFor(async () => expect(await online()).toBe(true));
    // As a lost bus message would leave it: revoked in the database only.
    await t.server.infra.ports.db
      .updateTable('sessions')
      .set({ revoked_at: Date.now(), revoked_reason: 'test' })
      .where('id', '=', account.sessionId)
      .execute();
    expect(errorCodeOf(await ended)).toBe('UNAUTHORIZED');
    // Its socket closed with it: its user no longer shows online through it.
    await vi.waitFor(async () => expect(await online()).toBe(false));
    await client.close();
  });
});

describe(`refresh is limited per account too (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    const base = testAuthConfig();
    t = await startServer(
      {},
      {
        auth: { limits: { ...base.limits, refreshAccount: { points: 2, durationSeconds: 3600 } } },
      },
    );
  });
  afterAll(() => t.stop());

  it('the third refresh of one account in the window is TOO_MANY_REQUESTS, and the token survives it', async () => {
    const account = await registerUser(t);
    const first = await t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken });
    const second = await t.client.api.auth.refresh.mutate({ refreshToken: first.refreshToken });
    const third = await t.client.api.auth.refresh
      .mutate({ refreshToken: second.refreshToken })
      .catch((e: unknown) => e);
    expect(errorCodeOf(third)).toBe('TOO_MANY_REQUESTS');
    // Refused before it was spent: the same token still works once the window allows.
    const row = await t.server.infra.ports.db
      .selectFrom('refresh_tokens')
      .select('used_at')
      .where('session_id', '=', account.sessionId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    expect(row).toBeDefined();
  });

  it("a signed-out session's token, however often presented, leaves the account's budget alone", async () => {
    const account = await registerUser(t);
    const gone = await loginAgain(t, account, 'Lost phone');
    await clientWithToken(t, account.accessToken).api.sessions.revoke.mutate({
      id: gone.sessionId,
    });
    for (let i = 0; i < 5; i++)
      expect(
        await codeOf(t.client.api.auth.refresh.mutate({ refreshToken: gone.refreshToken })),
      ).toBe('UNAUTHORIZED');

    const live = await t.client.api.auth.refresh.mutate({ refreshToken: account.refreshToken });
    expect(live.sessionId).toBe(account.sessionId);
  });
});
