import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createServer, type HttpTimeouts, type MvpServer } from '../src/createServer';
import { defaultConfig } from '../src/config';
import { backendLabel, testDatabaseUrl, testRedisUrl } from './helpers/env';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';

describe(`the per-address budget is spent before the body is read (${backendLabel})`, () => {
  const BUDGET = 4;
  let t: TestServer;
  beforeAll(async () => {
    // Behind one proxy, X-Forwarded-For names the client: one fresh address per test.
    t = await startServer({
      trustProxy: 1,
      ipRateLimit: { points: BUDGET, durationSeconds: 3600 },
    });
  });
  afterAll(() => t.stop());

  const from = (ip: string, headers: Record<string, string> = {}) => ({
    headers: { 'x-forwarded-for': ip, ...headers },
  });
  const json = { 'content-type': 'application/json' };

  it('a request is counted once: the budget lets that many calls through, then 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= BUDGET; i++) {
      statuses.push((await fetch(`${t.server.url}/api/v1/system/info`, from('192.0.2.1'))).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    // A tRPC batch costs one point per call, as when each call spent its own.
    const batch = (n: number) =>
      fetch(
        `${t.server.trpcUrl}/${Array.from({ length: n }, () => 'system.info').join(',')}?batch=1`,
        from('192.0.2.2'),
      );
    expect((await batch(3)).status).toBe(200);
    expect((await batch(1)).status).toBe(200);
    expect((await batch(1)).status).toBe(429);
    // A batch of more calls than the whole budget costs the budget, not a refusal for good.
    const wide = (ip: string) =>
      fetch(
        `${t.server.trpcUrl}/${Array.from({ length: BUDGET * 2 }, () => 'system.info').join(',')}?batch=1`,
        from(ip),
      );
    expect((await wide('192.0.2.9')).status).toBe(200);
    expect((await wide('192.0.2.9')).status).toBe(429);
  });

  it('requests refused before any procedure runs spend it too', async () => {
    const ip = '192.0.2.3';
    const refused = [
      await fetch(`${t.server.trpcUrl}/auth.login`, {
        method: 'POST',
        body: '{',
        ...from(ip, json),
      }),
      await fetch(`${t.server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: '{',
        ...from(ip, json),
      }),
      await fetch(`${t.server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: 'x',
        ...from(ip, { 'content-type': 'text/plain' }),
      }),
      await fetch(`${t.server.trpcUrl}/no.such.procedure`, from(ip)),
    ];
    expect(refused.map((r) => r.status)).toEqual([400, 400, 415, 404]);
    expect((await fetch(`${t.server.url}/api/v1/system/info`, from(ip))).status).toBe(429);
  });

  it('past the budget, a request is refused before its body arrives, in its surface’s shape', async () => {
    const ip = '192.0.2.4';
    for (let i = 0; i < BUDGET; i++) await fetch(`${t.server.url}/api/v1/system/info`, from(ip));

    /** Announces a body and sends none: only an answer that does not wait for it comes. */
    const headOnly = (url: string) =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>(
        (resolve, reject) => {
          const req = request(
            url,
            {
              method: 'POST',
              agent: false,
              headers: { ...json, 'content-length': '1000', 'x-forwarded-for': ip },
            },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => (body += chunk));
              res.on('end', () =>
                resolve({ status: res.statusCode ?? 0, headers: res.headers, body }),
              );
            },
          );
          req.on('error', reject);
          req.flushHeaders();
        },
      );

    const rest = await headOnly(`${t.server.url}/api/v1/auth/login`);
    expect(rest.status).toBe(429);
    expect(rest.headers.connection).toBe('close');
    expect(Number(rest.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(rest.body)).toMatchObject({ data: { appCode: 'TOO_MANY_REQUESTS' } });

    const trpc = await headOnly(`${t.server.trpcUrl}/auth.login,auth.login?batch=1`);
    expect(trpc.status).toBe(429);
    const calls = JSON.parse(trpc.body) as { error: { json: { data: Record<string, unknown> } } }[];
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      expect(call.error.json.data).toMatchObject({ appCode: 'TOO_MANY_REQUESTS' });
      expect(call.error.json.data.retryAfterMs).toBeGreaterThan(0);
      expect(typeof call.error.json.data.requestId).toBe('string');
    }
  });

  it('refusals are still counted per procedure in the metrics', async () => {
    const metrics = await (await fetch(`${t.server.url}/metrics`)).text();
    expect(metrics).toMatch(
      /mvp_trpc_calls_total\{path="system.info",type="query",outcome="TOO_MANY_REQUESTS"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /mvp_trpc_calls_total\{path="auth.login",type="mutation",outcome="TOO_MANY_REQUESTS"\} [1-9]/,
    );
  });
});

/** A server as startServer makes one, with its own HTTP timeouts, its logs dropped. */
async function startWithTimeouts(httpTimeouts: Partial<HttpTimeouts>): Promise<MvpServer> {
  const config = defaultConfig({
    dataDir: mkdtempSync(join(tmpdir(), 'mvp-data-')),
    auth: testAuthConfig(),
    host: '127.0.0.1',
    port: 0,
    databaseUrl: testDatabaseUrl,
    redisUrl: testRedisUrl,
    redisPrefix: `test:${randomUUID()}:`,
    shutdownTimeoutMs: 3_000,
    messageExpiryCheckMs: 2 ** 31 - 1,
  });
  const logDestination = new Writable({ write: (_chunk, _encoding, done) => done() });
  return createServer(config, { httpTimeouts, logDestination });
}

/** Writes `head` on a new connection; resolves with all the server wrote once it closes it. */
async function closedAfter(server: MvpServer, head: string): Promise<string> {
  const socket = connect(server.port, '127.0.0.1');
  let got = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (got += chunk));
  socket.write(head);
  await once(socket, 'close');
  return got;
}

describe(`slow clients are cut off (${backendLabel})`, () => {
  let server: MvpServer;
  beforeAll(async () => {
    server = await startWithTimeouts({
      headersMs: 300,
      requestMs: 600,
      bodyIdleMs: 60_000,
      checkEveryMs: 50,
    });
  });
  afterAll(() => server.shutdown());

  it('headers that never end: 408, connection closed', async () => {
    const answer = await closedAfter(server, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a body that never ends: 408 after requestMs, while an older WebSocket lives on', async () => {
    const ws = new WebSocket(server.wsUrl);
    await once(ws, 'open');
    const head =
      'POST /trpc/auth.login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 100\r\n\r\n{';
    expect(await closedAfter(server, head)).toMatch(/^HTTP\/1\.1 408/);
    // Older than requestMs when the request was cut, and not a request any more.
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.ping();
    await once(ws, 'pong');
    ws.close();
  });
});

describe(`a body that stalls is cut off before requestMs (${backendLabel})`, () => {
  let server: MvpServer;
  beforeAll(async () => {
    server = await startWithTimeouts({ bodyIdleMs: 200 });
  });
  afterAll(() => server.shutdown());

  it('the connection closes once no byte came for bodyIdleMs', async () => {
    const head =
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 100\r\n\r\n{"identifier":';
    const started = performance.now();
    await closedAfter(server, head);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
