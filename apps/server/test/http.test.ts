import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { eventQueue } from './helpers/collect';
import { defaultConfig } from '../src/config';
import { MAX_BATCH_SIZE } from '../src/http/createHttpHandler';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

describe(`HTTP surface: REST shim, OpenAPI, docs, health, metrics (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ metricsToken: 'metrics-token-0123456789' });
  });
  afterAll(() => t.stop());

  it('REST shim: GET /api/v1/system/info answers plain JSON with a request id', async () => {
    const res = await fetch(`${t.server.url}/api/v1/system/info`, {
      headers: { 'x-request-id': 'trace-abc-12345' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('trace-abc-12345');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ name: 'mvp', version: '0.1.0' });
    expect(typeof body.installId).toBe('string');
  });

  it('REST shim: an unknown path is a typed NOT_FOUND; a wrong method is refused', async () => {
    const missing = await fetch(`${t.server.url}/api/v1/nothing/here`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({
      code: 'NOT_FOUND',
      data: { appCode: 'NOT_FOUND' },
    });
    const wrongMethod = await fetch(`${t.server.url}/api/v1/system/info`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD');
  });

  it('the request log keeps an invite’s code out of the path: whoever reads it could join', async () => {
    const code = 'Kq3vX9pLm2Tz7Wb4Rc8Yd1';
    await fetch(`${t.server.url}/api/v1/invites/${code}`);
    await fetch(`${t.server.url}/api/v1/invites/${code}/join`, { method: 'POST' });
    const requests = () => t.logs.lines.filter((l) => l.msg === 'request');
    await vi.waitFor(() =>
      expect(requests().map((l) => l.path)).toEqual(
        expect.arrayContaining(['/api/v1/invites/:code', '/api/v1/invites/:code/join']),
      ),
    );
    expect(t.logs.lines.filter((l) => JSON.stringify(l).includes(code))).toEqual([]);
  });

  it('/openapi.json is an OpenAPI 3 document listing the REST paths under /api/v1', async () => {
    const doc = (await (await fetch(`${t.server.url}/openapi.json`)).json()) as {
      openapi: string;
      servers: { url: string }[];
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.servers[0]!.url).toBe(`${t.server.url}/api/v1`);
    expect(Object.keys(doc.paths['/system/info']!)).toEqual(['get']);
    // The paths integrators rely on (issue 3), with bearer auth where a session is needed.
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        route: `${method.toUpperCase()} ${path}`,
        op: op as { security?: unknown },
      })),
    );
    const names = routes.map((r) => r.route);
    for (const route of [
      'POST /auth/register',
      'POST /auth/otp/send',
      'POST /auth/otp/verify',
      'POST /auth/login',
      'POST /auth/refresh',
      'POST /auth/logout',
      'GET /me',
      'PATCH /me',
      'GET /sessions',
      'DELETE /sessions/{id}',
      'POST /sessions/revoke-others',
    ]) {
      expect(names).toContain(route);
    }
    expect(routes.find((r) => r.route === 'GET /me')!.op.security).toEqual([{ bearer: [] }]);
    expect(routes.find((r) => r.route === 'POST /auth/login')!.op.security).toBeUndefined();
  });

  it('/docs serves the reference page and its script from this server (no CDN)', async () => {
    const page = await fetch(`${t.server.url}/docs`);
    const html = await page.text();
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(html).toContain('data-url="/openapi.json"');
    expect(html).not.toMatch(/https?:\/\//);
    const script = await fetch(`${t.server.url}/docs/scalar.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });

  it('/healthz and /readyz answer while the backends are up', async () => {
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.server.url}/readyz`);
    const body = (await ready.json()) as { status: string; checks: Record<string, boolean> };
    expect(ready.status).toBe(200);
    expect(body.status).toBe('ready');
    expect(Object.values(body.checks).every(Boolean)).toBe(true);
    if (t.server.config.redisUrl) expect(body.checks.redis).toBe(true);
  });

  it('/metrics needs its token and counts procedures and open WebSockets', async () => {
    expect((await fetch(`${t.server.url}/metrics`)).status).toBe(401);
    await t.client.api.system.info.query();
    const ticks = eventQueue<unknown>();
    const sub = t.client.api.system.ticks.subscribe(
      { intervalMs: 10 },
      { onData: (e) => ticks.push(e) },
    );
    await ticks.next();
    const res = await fetch(`${t.server.url}/metrics`, {
      headers: { authorization: 'Bearer metrics-token-0123456789' },
    });
    const text = await res.text();
    sub.unsubscribe();
    expect(res.status).toBe(200);
    expect(text).toMatch(
      /mvp_trpc_calls_total\{path="system.info",type="query",outcome="ok"\} [1-9]/,
    );
    expect(text).toMatch(
      /mvp_trpc_call_duration_seconds_count\{path="system.info",type="query"\} [1-9]/,
    );
    expect(text).toMatch(/mvp_ws_connections 1\b/);
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('a request-line that is no URL is a 400, as an upgrade too, and the server lives on', async () => {
    /** The first line of the server's answer to a raw request. */
    const rawStatus = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(t.server.port, '127.0.0.1');
        let got = '';
        socket.on('data', (chunk) => {
          got += chunk.toString();
          if (got.includes('\r\n')) {
            resolve(got.slice(0, got.indexOf('\r\n')));
            socket.destroy();
          }
        });
        socket.on('error', reject);
        socket.write(`${head}\r\nHost: x\r\n\r\n`);
      });
    for (const target of ['//', 'http://[']) {
      expect(await rawStatus(`GET ${target} HTTP/1.1`)).toMatch(/^HTTP\/1\.1 400/);
      expect(
        await rawStatus(`GET ${target} HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket`),
      ).toMatch(/^HTTP\/1\.1 400/);
    }
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);
  });

  it('a batch of more calls than MAX_BATCH_SIZE is refused whole, before any call runs', async () => {
    const batch = (n: number) =>
      fetch(
        `${t.server.url}/trpc/${Array.from({ length: n }, () => 'system.info').join(',')}?batch=1`,
      );
    expect((await batch(MAX_BATCH_SIZE)).status).toBe(200);
    const refused = await batch(MAX_BATCH_SIZE + 1);
    expect(refused.status).toBe(400);
  });

  it('an oversize body is refused with a typed PAYLOAD_TOO_LARGE before it is read', async () => {
    const res = await fetch(`${t.server.trpcUrl}/system.info`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(t.server.config.httpMaxBodyBytes + 1),
    });
    expect(res.status).toBe(413);
    // In tRPC's own shape, so that a tRPC client reads the code (a permanent failure to it, not
    // a network error to retry for ever).
    const refused = await t.client.api.messages.send
      .mutate({
        conversationId: '0193a8a0-0000-7000-8000-000000000000',
        clientMessageId: 'too-large-0001',
        contentType: 'text/plain',
        ciphertext: 'A'.repeat(t.server.config.httpMaxBodyBytes),
      })
      .then(
        () => null,
        (e: { data?: { code?: string; appCode?: string } }) => e,
      );
    expect(refused?.data).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      appCode: 'PAYLOAD_TOO_LARGE',
    });
  });

  it('CORS: an allowed origin gets its headers, another origin none', async () => {
    await t.stop();
    t = await startServer({ allowedOrigins: ['http://app.example'] });
    const allowed = await fetch(`${t.server.url}/trpc/system.info`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.example', 'access-control-request-method': 'GET' },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://app.example');
    const other = await fetch(`${t.server.url}/trpc/system.info`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'GET' },
    });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    // Answers without CORS headers say they depend on the origin too, so no cache serves them
    // to a page that needs the headers.
    const plain = await fetch(`${t.server.url}/.well-known/jwks.json`);
    expect(plain.headers.get('cache-control')).toContain('public');
    expect(plain.headers.get('vary')).toBe('origin');
  });
});

describe('/readyz when the database is unreachable', () => {
  let t: TestServer;
  beforeAll(async () => {
    // Nothing listens on port 1; the pool connects lazily, so the server starts and must say so.
    t = await startServer({ databaseUrl: 'mysql://mvp:x@127.0.0.1:1/mvp', migrateOnStart: false });
  });
  afterAll(() => t.stop());

  it('answers 503 with the failing check while /healthz stays 200', async () => {
    const res = await fetch(`${t.server.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'unavailable', checks: { database: false } });
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);
  });

  it('a procedure that needs the database fails with a generic message, details only in the log', async () => {
    const res = await fetch(`${t.server.url}/api/v1/system/info`);
    expect(res.status).toBe(500);
    const body = JSON.stringify(await res.json());
    expect(body).toContain('Internal server error');
    expect(body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|stack/);
    expect(t.logs.text()).toContain('ECONNREFUSED');
  });
});

describe(`/metrics without MVP_METRICS_TOKEN (${backendLabel})`, () => {
  // Production refuses the development OTP sender; a webhook that is never called will do.
  const productionAuth = {
    otp: {
      ...testAuthConfig().otp,
      sender: 'webhook' as const,
      webhookUrl: 'http://127.0.0.1:9/otp',
      webhookSecret: 'webhook-secret-0123456789',
    },
  };

  it('in production it does not exist: 404 NOT_FOUND, as any unknown path, token or not', async () => {
    const t = await startServer({ nodeEnv: 'production' }, { auth: productionAuth });
    try {
      const unknown = await fetch(`${t.server.url}/no-such-route`);
      const unknownBody = (await unknown.json()) as { data: Record<string, unknown> };
      const tokens: Record<string, string>[] = [
        {},
        { authorization: 'Bearer metrics-token-0123456789' },
      ];
      for (const headers of tokens) {
        const res = await fetch(`${t.server.url}/metrics`, { headers });
        expect(res.status).toBe(404);
        const body = (await res.json()) as { data: Record<string, unknown> };
        expect({ ...body, data: { ...body.data, requestId: '' } }).toEqual({
          ...unknownBody,
          data: { ...unknownBody.data, requestId: '' },
        });
      }
      expect(t.logs.text()).toContain('/metrics is off: set MVP_METRICS_TOKEN');
      expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);
    } finally {
      await t.stop();
    }
  });

  it('in production with a token it is served to that token only', async () => {
    const t = await startServer(
      { nodeEnv: 'production', metricsToken: 'metrics-token-0123456789' },
      { auth: productionAuth },
    );
    try {
      expect((await fetch(`${t.server.url}/metrics`)).status).toBe(401);
      const res = await fetch(`${t.server.url}/metrics`, {
        headers: { authorization: 'Bearer metrics-token-0123456789' },
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('process_cpu_user_seconds_total');
    } finally {
      await t.stop();
    }
  });

  it('in development (the embedded default) it stays open', async () => {
    const t = await startServer();
    try {
      expect(t.server.config.nodeEnv).toBe('development');
      const res = await fetch(`${t.server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('process_cpu_user_seconds_total');
      expect(t.logs.text()).not.toContain('/metrics is off');
    } finally {
      await t.stop();
    }
  });
});

/** The defaults, which a test lowers one at a time. */
const defaultHttpLimits = () => defaultConfig().httpLimits;

describe(`/readyz is limited per client address (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      // Behind one proxy, X-Forwarded-For names the client: two addresses from one test.
      trustProxy: 1,
      httpLimits: { ...defaultHttpLimits(), readyzIp: { points: 3, durationSeconds: 60 } },
    });
  });
  afterAll(() => t.stop());

  const readyz = (ip: string, method = 'GET') =>
    fetch(`${t.server.url}/readyz`, { method, headers: { 'x-forwarded-for': ip } });

  it('answers within the limit, then 429 with Retry-After; other addresses and routes go on', async () => {
    const first = await readyz('203.0.113.1');
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ status: 'ready' });
    expect((await readyz('203.0.113.1', 'HEAD')).status).toBe(200);
    expect((await readyz('203.0.113.1')).status).toBe(200);

    const over = await readyz('203.0.113.1');
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await over.json()) as { code: string; data: Record<string, unknown> };
    expect(body).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      data: { appCode: 'TOO_MANY_REQUESTS', httpStatus: 429 },
    });
    expect(body.data.retryAfterMs).toBeGreaterThan(0);

    expect((await readyz('203.0.113.2')).status).toBe(200);
    // IPv4-mapped, the same client: refused too.
    expect((await readyz('::ffff:203.0.113.1')).status).toBe(429);
    const others = { headers: { 'x-forwarded-for': '203.0.113.1' } };
    expect((await fetch(`${t.server.url}/healthz`, others)).status).toBe(200);
    expect((await fetch(`${t.server.url}/api/v1/system/info`, others)).status).toBe(200);
    expect((await fetch(`${t.server.url}/metrics`, others)).status).toBe(200);
  });

  it('an IPv6 client is its /64: a new address of the same network changes nothing', async () => {
    for (const host of ['1', '2', '3']) {
      expect((await readyz(`2001:db8:a:b::${host}`)).status).toBe(200);
    }
    expect((await readyz('2001:db8:a:b:ffff:1:2:3')).status).toBe(429);
    expect((await readyz('2001:db8:a:c::1')).status).toBe(200);
  });
});

describe(`the public documents are limited per client address, /healthz never (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({
      // Behind one proxy, X-Forwarded-For names the client: several addresses from one test.
      trustProxy: 1,
      httpLimits: {
        ...defaultHttpLimits(),
        publicDocsIp: { points: 4, durationSeconds: 60 },
      },
    });
  });
  afterAll(() => t.stop());

  const get = (path: string, ip: string, method = 'GET') =>
    fetch(`${t.server.url}${path}`, { method, headers: { 'x-forwarded-for': ip } });

  /** The refusal every plain route gives: 429, Retry-After, the REST shim's error body. */
  const expectRefused = async (res: Response) => {
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await res.json()) as { code: string; data: Record<string, unknown> };
    expect(body).toMatchObject({
      code: 'TOO_MANY_REQUESTS',
      data: { appCode: 'TOO_MANY_REQUESTS', httpStatus: 429 },
    });
    expect(body.data.retryAfterMs).toBeGreaterThan(0);
  };

  it('/healthz is never refused, also past every other budget of the address', async () => {
    for (let i = 0; i < 4; i++)
      expect((await get('/openapi.json', '198.51.100.1')).status).toBe(200);
    await expectRefused(await get('/openapi.json', '198.51.100.1'));
    for (let i = 0; i < 20; i++) {
      const res = await get('/healthz', '198.51.100.1', i % 2 ? 'HEAD' : 'GET');
      expect(res.status).toBe(200);
    }
  });

  it('/openapi.json, the JWKS and /docs share one budget, then each answers 429', async () => {
    const doc = await get('/openapi.json', '198.51.100.3');
    expect(doc.status).toBe(200);
    expect(((await doc.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    const jwks = await get('/.well-known/jwks.json', '198.51.100.3');
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    const page = await get('/docs', '198.51.100.3');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-url="/openapi.json"');
    expect((await get('/docs/scalar.js', '198.51.100.3', 'HEAD')).status).toBe(200);

    for (const path of ['/openapi.json', '/.well-known/jwks.json', '/docs', '/docs/scalar.js']) {
      await expectRefused(await get(path, '198.51.100.3'));
    }

    expect((await get('/.well-known/jwks.json', '198.51.100.4')).status).toBe(200);
    expect((await get('/healthz', '198.51.100.3')).status).toBe(200);
    expect((await get('/api/v1/system/info', '198.51.100.3')).status).toBe(200);
  });
});
