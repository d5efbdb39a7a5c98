import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inheritedPath, testDatabaseUrl, testRedisUrl } from './env';
import { testBlindIndexKey, testJwtSigningKey } from './testKeys';

const serverDir = fileURLToPath(new URL('../..', import.meta.url));

export type SpawnedServer = {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** The whole process (src/main.ts through tsx), as `npm start` runs it, on this run's backend. */
export function spawnServer(env: Record<string, string> = {}): Promise<SpawnedServer> {
  const databaseUrl = testDatabaseUrl.startsWith('sqlite')
    ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-proc-')), 'mvp.db')}`
    : testDatabaseUrl;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: serverDir,
    env: {
      PATH: inheritedPath,
      MVP_PORT: '0',
      DATABASE_URL: databaseUrl,
      ...(testRedisUrl
        ? { REDIS_URL: testRedisUrl, MVP_REDIS_PREFIX: `test:${randomUUID()}:` }
        : {}),
      MVP_SHUTDOWN_TIMEOUT_MS: '3000',
      // The keys of every test server: they share the MySQL database (helpers/testKeys.ts).
      MVP_JWT_SIGNING_KEY: JSON.stringify(testJwtSigningKey),
      MVP_BLIND_INDEX_KEY: testBlindIndexKey,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const onData = () => {
      const match = /"http":"(http:\/\/[^"]+)"/.exec(output);
      if (!match) return;
      child.stdout.off('data', onData);
      resolve({ child, url: match[1]!, output: () => output, exited });
    };
    child.stdout.on('data', onData);
    void exited.then(({ code }) =>
      reject(new Error(`server exited (${code}) before listening:\n${output}`)),
    );
  });
}
