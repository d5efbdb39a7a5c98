import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createMvpClient, errorCodeOf, isMvpError } from '@mvp/sdk';
import { eventQueue } from './helpers/collect';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

type Tick = { id: string; data: { seq: number; at: string } };

describe(`system procedures (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.stop());

  it('system.info over HTTP answers version, time and the install id stored by the migration', async () => {
    const info = await t.client.api.system.info.query();
    const row = await t.server.infra.ports.db
      .selectFrom('app_meta')
      .select('value')
      .where('key', '=', 'install_id')
      .executeTakeFirstOrThrow();
    expect(info).toMatchObject({ name: 'mvp', version: '0.1.0', installId: row.value });
    expect(Math.abs(Date.parse(info.serverTime) - Date.now())).toBeLessThan(60_000);
  });

  it('batches concurrent queries into one HTTP request', async () => {
    const urls: string[] = [];
    const client = t.newClient({
      fetch: (input, init) => {
        urls.push(String(input instanceof Request ? input.url : input));
        return fetch(input, init);
      },
    });
    const [a, b] = await Promise.all([
      client.api.system.info.query(),
      client.api.system.info.query(),
    ]);
    expect(a.installId).toBe(b.installId);
    expect(urls).toHaveLength(1);
    expect(urls[0]).toContain('batch=1');
  });

  it('system.ticks over WebSocket yields tracked ids in order', async () => {
    const events = eventQueue<Tick>();
    const sub = t.client.api.system.ticks.subscribe(
      { intervalMs: 10 },
      { onData: (e) => events.push(e as Tick) },
    );
    const got = [await events.next(), await events.next(), await events.next()];
    sub.unsubscribe();
    expect(got.map((e) => e.id)).toEqual(['1', '2', '3']);
    expect(got.map((e) => e.data.seq)).toEqual([1, 2, 3]);
  });

  it('resumes after lastEventId', async () => {
    const events = eventQueue<Tick>();
    const sub = t.client.api.system.ticks.subscribe(
      { intervalMs: 10, lastEventId: '41' },
      { onData: (e) => events.push(e as Tick) },
    );
    const first = await events.next();
    sub.unsubscribe();
    expect(first.id).toBe('42');
  });

  it('after a dropped connection the client reconnects and resumes with no gap and no duplicate', async () => {
    const sockets: WebSocket[] = [];
    class TrackedWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
      }
    }
    const client = t.newClient({ WebSocket: TrackedWebSocket });
    const events = eventQueue<Tick>();
    const sub = client.api.system.ticks.subscribe(
      { intervalMs: 20 },
      { onData: (e) => events.push(e as Tick) },
    );
    const seen = [await events.next(), await events.next()];
    sockets[0]!.terminate(); // the network drops: no close handshake
    for (let i = 0; i < 4; i++) seen.push(await events.next());
    sub.unsubscribe();
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    expect(seen.map((e) => e.data.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('close() ends the socket; a later subscription opens a fresh one', async () => {
    const client = t.newClient();
    const first = eventQueue<Tick>();
    client.api.system.ticks.subscribe({ intervalMs: 10 }, { onData: (e) => first.push(e as Tick) });
    await first.next();
    await client.close();
    const second = eventQueue<Tick>();
    const sub = client.api.system.ticks.subscribe(
      { intervalMs: 10 },
      { onData: (e) => second.push(e as Tick) },
    );
    expect((await second.next()).id).toBe('1');
    sub.unsubscribe();
  });

  it('a query-only client needs no WebSocket (Node 20 has no global one)', async () => {
    const client = createMvpClient({ url: t.server.url });
    expect((await client.api.system.info.query()).name).toBe('mvp');
    await client.close();
  });

  it('malformed subscription input is a typed BAD_REQUEST naming the field', async () => {
    const errors = eventQueue<unknown>();
    const sub = t.client.api.system.ticks.subscribe(
      { intervalMs: 1 },
      { onData: () => errors.push(new Error('no data expected')), onError: (e) => errors.push(e) },
    );
    const error = await errors.next();
    sub.unsubscribe();
    expect(isMvpError(error)).toBe(true);
    expect(errorCodeOf(error)).toBe('BAD_REQUEST');
    const data = (error as { data: { issues: { path: string }[]; stack?: string } }).data;
    expect(data.issues.map((i) => i.path)).toEqual(['intervalMs']);
    expect(data.stack).toBeUndefined();
  });

  it('malformed HTTP input (bad JSON, wrong method) is BAD_REQUEST without a stack trace', async () => {
    const res = await fetch(`${t.server.trpcUrl}/system.info?input=%7Bnot-json`);
    const body = (await res.json()) as { error: { json: { data: Record<string, unknown> } } };
    expect(res.status).toBe(400);
    expect(body.error.json.data.appCode).toBe('BAD_REQUEST');
    expect(JSON.stringify(body)).not.toMatch(/stack|at .*\.ts:/);
  });

  it('an unknown procedure is NOT_FOUND', async () => {
    const res = await fetch(`${t.server.trpcUrl}/system.nope`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { json: { data: { appCode: string } } } };
    expect(body.error.json.data.appCode).toBe('NOT_FOUND');
  });

  it('an oversize HTTP body is PAYLOAD_TOO_LARGE', async () => {
    const res = await fetch(`${t.server.trpcUrl}/system.info`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(t.server.config.httpMaxBodyBytes + 1) }),
    });
    expect(res.status).toBe(413);
  });
});

describe(`per-address rate limit (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    // A window that cannot roll over during the test (each test server has its own Redis prefix).
    t = await startServer({
      ipRateLimit: { points: 3, durationSeconds: 3600 },
      metricsToken: 'metrics-token-0123456789',
    });
  });
  afterAll(() => t.stop());

  it('answers TOO_MANY_REQUESTS with retryAfterMs and Retry-After once the budget is spent', async () => {
    for (let i = 0; i < 3; i++) await t.client.api.system.info.query();
    const error = await t.client.api.system.info.query().catch((e: unknown) => e);
    expect(errorCodeOf(error)).toBe('TOO_MANY_REQUESTS');
    expect((error as { data: { retryAfterMs: number } }).data.retryAfterMs).toBeGreaterThan(0);

    const res = await fetch(`${t.server.url}/api/v1/system/info`);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);

    // Refusals are counted like any other outcome.
    const metrics = await fetch(`${t.server.url}/metrics`, {
      headers: { authorization: 'Bearer metrics-token-0123456789' },
    });
    expect(await metrics.text()).toMatch(
      /mvp_trpc_calls_total\{path="system.info",type="query",outcome="TOO_MANY_REQUESTS"\} [1-9]/,
    );
  });
});

describe(`per-address rate limit behind a proxy (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ trustProxy: 1, ipRateLimit: { points: 3, durationSeconds: 3600 } });
  });
  afterAll(() => t.stop());

  const from = (forwardedFor: string) =>
    fetch(`${t.server.url}/api/v1/system/info`, { headers: { 'x-forwarded-for': forwardedFor } });

  it('counts the address the proxy saw, whatever the client wrote before it', async () => {
    // The proxy (this socket) appends the address it saw; the client chose the entries before.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await from(`10.9.${i}.1, 203.0.113.9`)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    // Someone else behind the same proxy has a budget of their own.
    expect((await from('203.0.113.10')).status).toBe(200);
  });
});
