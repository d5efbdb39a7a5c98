import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MAX_BATCH_SIZE } from '../src/http/createHttpHandler';
import { eventQueue } from './helpers/collect';
import { startServer, type TestServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

/** Resolves with how the handshake ended: 'open', or the HTTP status it was refused with. */
function handshake(url: string, headers: Record<string, string> = {}): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

function openRaw(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe(`WebSocket edge (${backendLabel})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ allowedOrigins: ['http://app.example'], wsMaxPayloadBytes: 4096 });
  });
  afterAll(() => t.stop());

  it('accepts no Origin (native clients) and an allowed Origin; refuses others with 403', async () => {
    expect(await handshake(t.server.wsUrl)).toBe('open');
    expect(await handshake(t.server.wsUrl, { origin: 'http://app.example' })).toBe('open');
    expect(await handshake(t.server.wsUrl, { origin: 'http://evil.example' })).toBe(403);
    expect(await handshake(t.server.wsUrl, { origin: 'null' })).toBe(403);
  });

  it('refuses upgrades on other paths', async () => {
    expect(await handshake(t.server.wsUrl.replace('/trpc', '/elsewhere'))).toBe(404);
  });

  it('an oversize frame closes that socket only (1009); other sockets keep streaming', async () => {
    const ticks = eventQueue<unknown>();
    const sub = t.client.api.system.ticks.subscribe(
      { intervalMs: 10 },
      { onData: (e) => ticks.push(e) },
    );
    await ticks.next();

    const raw = await openRaw(t.server.wsUrl);
    const closed = new Promise<number>((resolve) => raw.once('close', (code) => resolve(code)));
    raw.on('error', () => {}); // the server's close may surface as an error on this side
    raw.send('x'.repeat(t.server.config.wsMaxPayloadBytes + 1));
    expect(await closed).toBe(1009);

    await ticks.next(); // the other connection is unaffected
    sub.unsubscribe();
    expect((await t.client.api.system.info.query()).name).toBe('mvp');
  });

  it('a malformed frame gets a typed error and the socket stays usable', async () => {
    const raw = await openRaw(t.server.wsUrl);
    const replies = eventQueue<Record<string, unknown>>();
    raw.on('message', (data: Buffer) =>
      replies.push(JSON.parse(data.toString()) as Record<string, unknown>),
    );

    raw.send('{not json');
    const parseError = (await replies.next()) as { error: { json: { data: { appCode: string } } } };
    expect(parseError.error.json.data.appCode).toBe('BAD_REQUEST');

    raw.send(
      JSON.stringify({ id: 7, method: 'query', params: { path: 'system.info', input: {} } }),
    );
    const answer = (await replies.next()) as {
      id: number;
      result: { data: { json: { name: string } } };
    };
    expect(answer.id).toBe(7);
    expect(answer.result.data.json.name).toBe('mvp');
    raw.close();
  });

  it('a batch of more than MAX_BATCH_SIZE calls in one frame is refused, each call told', async () => {
    const raw = await openRaw(t.server.wsUrl);
    const frames = eventQueue<{ id?: number; result?: unknown; error?: unknown }>();
    raw.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString()) as never));
    const batch = (n: number, from: number) =>
      JSON.stringify(
        Array.from({ length: n }, (_, i) => ({
          id: from + i,
          method: 'query',
          params: { path: 'system.info', input: {} },
        })),
      );
    raw.send(batch(MAX_BATCH_SIZE + 1, 1000));
    const refused = await frames.next();
    expect(refused.result).toBeUndefined();
    expect(JSON.stringify(refused.error)).toContain('BAD_REQUEST');
    for (let i = 1; i <= MAX_BATCH_SIZE; i++) expect((await frames.next()).error).toBeDefined();
    raw.send(batch(2, 1));
    const answered = [await frames.next(), await frames.next()];
    expect(answered.map((f) => f.id).sort()).toEqual([1, 2]);
    expect(answered.every((f) => f.result !== undefined)).toBe(true);
    raw.close();
  });

  it('survives a burst of garbage from many sockets', async () => {
    const sockets = await Promise.all(Array.from({ length: 10 }, () => openRaw(t.server.wsUrl)));
    for (const ws of sockets) {
      ws.on('error', () => {});
      ws.send(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
      ws.send('[]');
      ws.send(
        JSON.stringify({ id: 1, method: 'subscription', params: { path: 'nope', input: null } }),
      );
    }
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise((r) => {
            ws.once('message', r);
          }),
      ),
    );
    sockets.forEach((ws) => ws.terminate());
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);
  });
});
