import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runJobsOnce, runMessageExpiryOnce, type KeyValue } from '@mvp/api';
import { createMvpClient, type ConnectionState, type MvpClient } from '@mvp/sdk';
import { eventQueue } from './helpers/collect';
import { spawnServer, type SpawnedServer } from './helpers/spawnServer';
import { startServer } from './helpers/startServer';
import { backendLabel } from './helpers/env';

describe(`graceful shutdown (${backendLabel})`, () => {
  let proc: SpawnedServer | undefined;
  let client: MvpClient | undefined;
  afterEach(async () => {
    await client?.close();
    proc?.child.kill('SIGKILL');
  });

  it('SIGTERM with an open subscription: clients are told, the process exits 0 within the bound', async () => {
    proc = await spawnServer({ MVP_SHUTDOWN_TIMEOUT_MS: '3000' });
    const states = eventQueue<ConnectionState>();
    client = createMvpClient({
      url: proc.url,
      WebSocket,
      onConnectionStateChange: (s) => states.push(s),
      reconnect: { minDelayMs: 50, maxDelayMs: 100 },
    });
    const ticks = eventQueue<{ id: string }>();
    const sub = client.api.system.ticks.subscribe(
      { intervalMs: 20 },
      { onData: (e) => ticks.push(e) },
    );
    await ticks.next();
    expect(await states.next()).toBe('connecting');
    expect(await states.next()).toBe('open');

    const started = Date.now();
    proc.child.kill('SIGTERM');
    const { code } = await proc.exited;
    const elapsed = Date.now() - started;
    sub.unsubscribe();

    expect(code).toBe(0);
    expect(elapsed).toBeLessThan(3000 + 2000); // the bound, plus process teardown slack
    expect(await states.next()).toBe('closed');
    const log = proc.output();
    expect(log).toContain('"msg":"shutting down"');
    expect(log).toContain('"msg":"shutdown complete"');
    expect(log).not.toContain('"level":50');
  });

  it('SIGINT on an idle server exits 0 as well', async () => {
    proc = await spawnServer();
    proc.child.kill('SIGINT');
    expect((await proc.exited).code).toBe(0);
  });

  it('in process: shutdown() closes open sockets, refuses new work and resolves', async () => {
    const t = await startServer({ shutdownTimeoutMs: 2000 });
    const ticks = eventQueue<unknown>();
    const states = eventQueue<ConnectionState>();
    const c = t.newClient({ onConnectionStateChange: (s) => states.push(s) });
    const sub = c.api.system.ticks.subscribe({ intervalMs: 10 }, { onData: (e) => ticks.push(e) });
    await ticks.next();
    await t.server.shutdown();
    sub.unsubscribe();
    expect(await states.next()).toBe('connecting');
    expect(await states.next()).toBe('open');
    expect(await states.next()).toBe('closed');
    await expect(fetch(`${t.server.url}/healthz`)).rejects.toThrow();
    await t.stop(); // idempotent
  });
});

/** A GET through `agent`; resolves with its answer once the body is read. */
function get(agent: Agent, url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve(res));
    });
    req.end();
  });
}

describe(`shutdown and keep-alive connections (${backendLabel})`, () => {
  it('a connection busy when shutdown starts ends with its answer, not at the deadline', async () => {
    // A deadline far past the test timeout: only closing the connection lets shutdown finish.
    const t = await startServer({ shutdownTimeoutMs: 60_000 });
    // One socket, kept alive and reused, as pooled clients and proxies in front of us do.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = JSON.stringify({ json: {} });
      const held = request(`${t.server.trpcUrl}/auth.register`, {
        agent,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(body.length),
          // The 100 Continue tells us the server has the request in hand before shutdown starts.
          expect: '100-continue',
        },
      });
      const answered = new Promise<IncomingMessage>((resolve, reject) => {
        held.once('error', reject);
        held.once('response', (res) => {
          res.resume();
          res.once('end', () => resolve(res));
        });
      });
      await once(held, 'continue');
      const socket = held.socket!;
      const socketClosed = once(socket, 'close');

      const stopped = t.server.shutdown();
      held.end(body);
      const res = await answered;
      expect(res.statusCode).toBe(400);
      expect(res.headers.connection).toBe('close');
      // Kept alive, the pool would send this on the same socket and the draining server would
      // serve it, and the next, until the deadline; closed, the only way left is the listener,
      // which is gone.
      await expect(get(agent, `${t.server.url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
      await socketClosed;
      await stopped;
    } finally {
      agent.destroy();
      await t.stop();
    }
  });
});

describe(`background jobs at shutdown (${backendLabel})`, () => {
  it('a run in flight is stopped and awaited: its lock goes back before the backends close', async () => {
    // The disappearing-messages loop ticks at once; its first run is held just after its lock.
    const t = await startServer({ messageExpiryCheckMs: 10 });
    try {
      const { infra } = t.server;
      const { kv } = infra.ports;
      const acquire = kv.acquireLock.bind(kv);
      const steps: string[] = [];
      const held = eventQueue<true>();
      let resume!: () => void;
      const resumed = new Promise<void>((r) => (resume = r));
      let holding = false;
      kv.acquireLock = async (name, ttlMs) => {
        const lock = await acquire(name, ttlMs);
        if (!lock || name !== 'job:purgeExpiredMessages' || holding) return lock;
        holding = true;
        held.push(true);
        await resumed;
        return {
          extend: (ms) => lock.extend(ms),
          async release() {
            await lock.release();
            steps.push('lock released');
          },
        };
      };
      const close = infra.close.bind(infra);
      let closed!: () => void;
      const backendsClosed = new Promise<void>((r) => (closed = r));
      infra.close = async () => {
        steps.push('backends closing');
        await close();
        closed();
      };
      await held.next();

      const stopped = t.server.shutdown();
      // A server that waits for the run says so; one that does not closes the backends under it.
      await Promise.race([
        t.logs.waitFor((l) => l.msg === 'waiting for background jobs in progress'),
        backendsClosed,
      ]);
      resume();
      await stopped;
      expect(steps).toEqual(['lock released', 'backends closing']);
      expect(t.logs.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it('once stopped, no job starts and no lock is taken', async () => {
    const t = await startServer();
    try {
      const { ports } = t.server.infra;
      const taken: string[] = [];
      const kv: KeyValue = {
        ...ports.kv,
        acquireLock(name, ttlMs) {
          taken.push(name);
          return ports.kv.acquireLock(name, ttlMs);
        },
      };
      const stop = AbortSignal.abort();
      expect(await runJobsOnce({ ...ports, kv }, t.server.settings, undefined, stop)).toEqual({
        reencryptPersonalData: null,
        deleteInactiveAccounts: null,
        pruneStreams: null,
        pruneEndedSessions: null,
      });
      expect(await runMessageExpiryOnce({ ...ports, kv }, t.server.settings, stop)).toBeNull();
      expect(taken).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it('a lock that cannot be given back is logged without its token; the run still ends', async () => {
    const t = await startServer();
    try {
      const { ports } = t.server.infra;
      const stop = new AbortController();
      const token = randomUUID();
      const kv: KeyValue = {
        ...ports.kv,
        acquireLock() {
          // Shutdown begins while the lock is on its way, and the store is gone by the release
          // (ioredis puts the command, the lock's token among its arguments, on its errors).
          stop.abort();
          const gone = Object.assign(new Error('Connection is closed.'), {
            command: { name: 'eval', args: [token] },
          });
          return Promise.resolve({
            extend: () => Promise.resolve(true),
            release: () => Promise.reject(gone),
          });
        },
      };
      expect(
        await runMessageExpiryOnce({ ...ports, kv }, t.server.settings, stop.signal),
      ).toBeNull();
      expect(await t.logs.waitFor((l) => l.event === 'job_lock_release_failed')).toMatchObject({
        job: 'purgeExpiredMessages',
        reason: 'Connection is closed.',
      });
      expect(t.logs.text()).not.toContain(token);
    } finally {
      await t.stop();
    }
  });
});

describe('configuration errors', () => {
  it('a bad variable exits 1 with one line naming it, never echoing its value', async () => {
    const err = await spawnServer({ MVP_PORT: 'not-a-port-s3cret' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toContain('server exited (1)');
    const lines = message.split('\n').filter(Boolean).slice(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^invalid environment: MVP_PORT: /);
    expect(message).not.toContain('s3cret');
  });
});
