import { request, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defaultConfig } from '../src/config';
import { clientWithToken, PASSWORD, registerUser, type Account } from './helpers/accounts';
import { hasChromium, launchChromium } from './helpers/browser';
import { backendLabel } from './helpers/env';
import { startServer, type TestServer } from './helpers/startServer';

type RawAnswer = { status: number; headers: IncomingHttpHeaders; body: string };

/**
 * A request fetch will not send (a Host that is no host, a body announced and never sent), and
 * the server's answer to it. With no `body` only the head is sent: the answer must come without
 * the rest.
 */
function rawRequest(url: string, options: RequestOptions, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      );
    });
    // Once answered, the server may close on the body still announced: that error comes late.
    req.on('error', reject);
    if (body === undefined) req.flushHeaders();
    else req.end(body);
  });
}

type ErrorBody = { code: string; message: string; data: Record<string, unknown> };

const errorLogs = (t: TestServer) => t.logs.lines.filter((l) => Number(l.level) >= 50);

const bearer = (account: Account) => ({ authorization: `Bearer ${account.accessToken}` });

describe(`HTTP hardening: inputs, headers, methods (${backendLabel})`, () => {
  let t: TestServer;
  let alice: Account;
  beforeAll(async () => {
    t = await startServer({ metricsToken: 'metrics-token-0123456789' });
    alice = await registerUser(t);
  });
  afterAll(() => t.stop());

  it('query keys named like Object members are ordinary keys: never a 500, nothing logged', async () => {
    const query = 'constructor=1&__proto__=2&__proto__=3&hasOwnProperty=4&toString=5';
    const anonymous = await fetch(`${t.server.url}/api/v1/calls?${query}`);
    expect(anonymous.status).toBe(401);
    const mine = await fetch(`${t.server.url}/api/v1/calls?${query}`, { headers: bearer(alice) });
    expect(mine.status).toBe(200);
    expect(await mine.json()).toMatchObject({ calls: [], more: false });
    // Coercion still reads the keys the input has, and zod still refuses bad values.
    const bad = await fetch(`${t.server.url}/api/v1/calls?constructor=1&limit=0`, {
      headers: bearer(alice),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorBody).data.appCode).toBe('BAD_REQUEST');
    expect(errorLogs(t)).toEqual([]);
  });

  it('a tRPC batch naming thousands of calls is refused with one error, not one per comma', async () => {
    const declared = { 'content-type': 'application/json', 'content-length': '10000000' };
    const many = Array.from({ length: 7000 }, () => 'a').join(',');
    const huge = await rawRequest(`${t.server.trpcUrl}/${many}?batch=1`, {
      method: 'POST',
      headers: declared,
    });
    expect(huge.status).toBe(413);
    expect(huge.body.length).toBeLessThan(1000);
    const one = JSON.parse(huge.body) as { error: { json: { data: { appCode: string } } } };
    expect(one.error.json.data.appCode).toBe('PAYLOAD_TOO_LARGE');
    // Within the batch limit, each call still gets its error, as tRPC answers.
    const two = await rawRequest(`${t.server.trpcUrl}/system.info,system.info?batch=1`, {
      method: 'POST',
      headers: declared,
    });
    expect(two.status).toBe(413);
    expect(JSON.parse(two.body)).toHaveLength(2);
  });

  it('a Host header that is no host is a 400 on REST and tRPC, with no error logged', async () => {
    for (const url of [`${t.server.url}/api/v1/system/info`, `${t.server.trpcUrl}/system.info`]) {
      const res = await rawRequest(url, { headers: { host: '[' } }, '');
      expect(res.status).toBe(400);
      expect((JSON.parse(res.body) as ErrorBody).data.appCode).toBe('BAD_REQUEST');
    }
    expect(errorLogs(t)).toEqual([]);
  });

  it('a POST that carries nothing needs no Content-Type; one with a body still does', async () => {
    const bob = await registerUser(t);
    const asked = await clientWithToken(t, bob.accessToken).api.contacts.request.mutate({
      userId: alice.userId,
    });
    // fetch sends no Content-Type for a POST without a body.
    const accept = await fetch(
      `${t.server.url}/api/v1/contacts/requests/${asked.requestId}/accept`,
      { method: 'POST', headers: bearer(alice) },
    );
    expect(accept.status).toBe(200);
    expect(await accept.json()).toEqual({ ok: true });
    const unknownInvite = await fetch(
      `${t.server.url}/api/v1/invites/Kq3vX9pLm2Tz7Wb4Rc8Yd1/join`,
      {
        method: 'POST',
        headers: bearer(alice),
      },
    );
    expect(unknownInvite.status).toBe(404);

    const typeless = await rawRequest(
      `${t.server.url}/api/v1/auth/login`,
      { method: 'POST', headers: { 'content-length': '2' } },
      '{}',
    );
    expect(typeless.status).toBe(415);
  });

  it('errors raised before the context exists carry the request id', async () => {
    const post = (body: string, type: string) =>
      fetch(`${t.server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': type, 'x-request-id': 'early-error-0001' },
        body,
      });
    for (const res of [await post('{', 'application/json'), await post('{}', 'text/plain')]) {
      expect([400, 415]).toContain(res.status);
      expect(((await res.json()) as ErrorBody).data.requestId).toBe('early-error-0001');
    }
  });

  it('API answers are never cached nor sniffed; a 401 says Bearer', async () => {
    const login = await fetch(`${t.server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        identifier: alice.username,
        password: PASSWORD,
        device: { name: 'REST', platform: 'node' },
      }),
    });
    expect(login.status).toBe(200);
    expect(await login.json()).toHaveProperty('accessToken');
    const trpc = await fetch(`${t.server.trpcUrl}/system.info`);
    for (const res of [login, trpc]) {
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const unauthenticated = [
      await fetch(`${t.server.url}/api/v1/me`),
      await fetch(`${t.server.trpcUrl}/me.get`),
      await fetch(`${t.server.url}/api/v1/me`, { headers: { authorization: 'Bearer nonsense' } }),
      await fetch(`${t.server.url}/metrics`),
    ];
    for (const res of unauthenticated) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    }
  });

  it('HEAD is GET without a body; a wrong method on a real path is 405 with Allow', async () => {
    const head = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${t.server.url}/api/v1${path}`, { method: 'HEAD', headers });
    expect((await head('/me')).status).toBe(401);
    const mine = await head('/me', bearer(alice));
    expect(mine.status).toBe(200);
    expect(await mine.text()).toBe('');
    expect((await head('/no/such/path')).status).toBe(404);

    const wrong = await fetch(`${t.server.url}/api/v1/system/info`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, HEAD');
    expect(((await wrong.json()) as ErrorBody).data.httpStatus).toBe(405);
    const put = await fetch(`${t.server.url}/api/v1/me`, { method: 'PUT', headers: bearer(alice) });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'PATCH']);
  });

  it('/docs may run only its own script, reach only this server, and be framed by no one', async () => {
    const page = await fetch(`${t.server.url}/docs`);
    const policy = page.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("default-src 'none'");
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).not.toMatch(/unsafe-eval|https:/);
  });

  it.skipIf(!hasChromium)('/docs still renders in a browser under that policy', async () => {
    const browser = await launchChromium(t.server.url);
    try {
      const tab = await browser.context.newPage();
      const violations: string[] = [];
      await tab.exposeFunction('reportViolation', (v: string) => violations.push(v));
      // Page code, as text: this file is typed for Node, not the DOM.
      await tab.addInitScript({
        content: `document.addEventListener('securitypolicyviolation', (e) =>
          reportViolation(e.violatedDirective + ' ' + e.blockedURI));`,
      });
      await tab.goto(`${t.server.url}/docs`);
      // An operation's summary: the document was fetched and drawn.
      await tab.getByText('Server name, version, time and installation id').first().waitFor();
      // Scalar only feature-tests `new Function` (and does without): the one refusal allowed.
      expect(
        violations.filter((v) => v !== 'script-src-elem eval' && v !== 'script-src eval'),
      ).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe(`HTTP hardening: the OpenAPI document describes the real errors (${backendLabel})`, () => {
  let t: TestServer;
  let alice: Account;
  type Doc = {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, unknown> };
  };
  let doc: Doc;
  beforeAll(async () => {
    t = await startServer();
    alice = await registerUser(t);
    doc = (await (await fetch(`${t.server.url}/openapi.json`)).json()) as Doc;
  });
  afterAll(() => t.stop());

  it('every error answer of every route is the real error shape, which real errors fit', async () => {
    const errorRef = { $ref: '#/components/schemas/Error' };
    const schema = z.fromJSONSchema(doc.components.schemas.Error as never);
    expect(Object.keys(doc.components.schemas).filter((n) => n.startsWith('error.'))).toEqual([]);
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, { responses }] of Object.entries(operations)) {
        const route = `${method} ${path}`;
        for (const [status, response] of Object.entries(responses)) {
          if (Number(status) < 400) continue;
          expect(response, `${route} ${status}`).toMatchObject({
            content: { 'application/json': { schema: errorRef } },
          });
        }
        expect(Object.keys(responses), route).toContain('429');
        if (['post', 'put', 'patch'].includes(method)) {
          expect(Object.keys(responses), route).toEqual(expect.arrayContaining(['413', '415']));
        }
      }
    }

    const url = t.server.url;
    const json = { 'content-type': 'application/json' };
    const answers = [
      await fetch(`${url}/api/v1/me`),
      await fetch(`${url}/api/v1/calls?limit=0`, { headers: bearer(alice) }),
      await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: json, body: '{' }),
      await fetch(`${url}/api/v1/auth/login`, { method: 'POST', body: 'x' }),
      await fetch(`${url}/api/v1/system/info`, { method: 'DELETE' }),
      await fetch(`${url}/api/v1/nothing`),
      await fetch(`${url}/api/v1/auth/login`, {
        method: 'POST',
        headers: json,
        body: 'x'.repeat(defaultConfig().httpMaxBodyBytes + 1),
      }),
    ];
    expect(answers.map((a) => a.status)).toEqual([401, 400, 400, 415, 405, 404, 413]);
    for (const answer of answers) {
      const body: unknown = await answer.json();
      expect(schema.safeParse(body).error, JSON.stringify(body)).toBeUndefined();
    }
  });

  it('so does a 429', async () => {
    const limited = await startServer({ ipRateLimit: { points: 1, durationSeconds: 3600 } });
    try {
      expect((await fetch(`${limited.server.url}/api/v1/system/info`)).status).toBe(200);
      const refused = await fetch(`${limited.server.url}/api/v1/system/info`);
      expect(refused.status).toBe(429);
      const schema = z.fromJSONSchema(doc.components.schemas.Error as never);
      expect(schema.safeParse(await refused.json()).error).toBeUndefined();
    } finally {
      await limited.stop();
    }
  });
});
