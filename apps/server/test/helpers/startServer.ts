import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { createMvpClient, type MvpClient, type MvpClientOptions } from '@mvp/sdk';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '@mvp/api';
import type { AuthConfig } from '../../src/config';
import { createServer, defaultConfig, type MvpServer, type ServerConfig } from '../../src/index';
import { testDatabaseUrl, testRedisUrl } from './env';
import { testBlindIndexKey, testJwtSigningKey } from './testKeys';

type LogLine = Record<string, unknown>;

/** Log lines the server wrote, parsed, so tests can assert on them (and on what is absent). */
export type CapturedLogs = {
  lines: LogLine[];
  text: () => string;
  /** The first line, written already or still to come, that `matches`. */
  waitFor: (matches: (line: LogLine) => boolean) => Promise<LogLine>;
};

function captureLogs(): { logs: CapturedLogs; destination: Writable } {
  const lines: LogLine[] = [];
  const chunks: string[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      chunks.push(text);
      for (const raw of text.split('\n').filter(Boolean)) {
        const line = JSON.parse(raw) as LogLine;
        lines.push(line);
        for (const waiter of waiters) waiter(line);
      }
      done();
    },
  });
  const waitFor = (matches: (line: LogLine) => boolean) => {
    const written = lines.find(matches);
    if (written) return Promise.resolve(written);
    return new Promise<LogLine>((resolve) => {
      const waiter = (line: LogLine) => {
        if (!matches(line)) return;
        waiters.delete(waiter);
        resolve(line);
      };
      waiters.add(waiter);
    });
  };
  return { logs: { lines, text: () => chunks.join(''), waitFor }, destination };
}

export type TestServer = {
  server: MvpServer;
  logs: CapturedLogs;
  /** A real SDK client against this server; more with `newClient`. */
  client: MvpClient;
  newClient(options?: Partial<MvpClientOptions>): MvpClient;
  stop(): Promise<void>;
};

const roomy = { points: 100_000, durationSeconds: 60 };

/** Test servers get generous limits; tests of a limit lower the one they test. */
export function testAuthConfig(overrides: Partial<AuthConfig> = {}): AuthConfig {
  const base = defaultConfig().auth;
  return {
    ...base,
    limits: {
      registerIp: roomy,
      loginIp: roomy,
      loginAccount: roomy,
      loginDevice: roomy,
      otpSendIp: roomy,
      otpSendPhone: roomy,
      otpSendAll: roomy,
      otpVerifyIp: roomy,
      refreshIp: roomy,
      refreshAccount: roomy,
    },
    otp: { ...base.otp, resendSeconds: 0 },
    jwt: { ...base.jwt, signingKey: JSON.stringify(testJwtSigningKey) },
    blindIndexKey: testBlindIndexKey,
    ...overrides,
  };
}

export type StartOptions = { auth?: Partial<AuthConfig>; clock?: Clock };

/** A real server on port 0 with the backend of this run, and the real SDK client. */
export async function startServer(
  overrides: Partial<ServerConfig> = {},
  options: StartOptions = {},
): Promise<TestServer> {
  const { logs, destination } = captureLogs();
  const server = await createServer(
    defaultConfig({
      dataDir: mkdtempSync(join(tmpdir(), 'mvp-data-')),
      auth: testAuthConfig(options.auth),
      host: '127.0.0.1',
      port: 0,
      databaseUrl: testDatabaseUrl,
      redisUrl: testRedisUrl,
      // Each test server its own Redis namespace: runs and files never share budgets or keys.
      redisPrefix: `test:${randomUUID()}:`,
      logLevel: 'info',
      shutdownTimeoutMs: 3_000,
      // No expiry loop unless a test asks for one: on the shared MySQL database a server whose
      // clock a test moved ahead would purge other tests' disappearing messages every second,
      // and tell it to its own Redis namespace only.
      messageExpiryCheckMs: 2 ** 31 - 1,
      ...overrides,
    }),
    { logDestination: destination, clock: options.clock },
  );
  const clients: MvpClient[] = [];
  const newClient = (options: Partial<MvpClientOptions> = {}) => {
    const client = createMvpClient({
      url: server.url,
      WebSocket,
      reconnect: { minDelayMs: 20, maxDelayMs: 200 },
      ...options,
    });
    clients.push(client);
    return client;
  };
  const client = newClient();
  return {
    server,
    logs,
    client,
    newClient,
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      await server.shutdown();
    },
  };
}
