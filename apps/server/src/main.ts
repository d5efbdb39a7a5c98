import { createDb, migrateToLatest } from '@mvp/db';
import { yieldBackgroundThreads } from './backgroundThreads';
import { configFromEnv } from './config';
import { createServer } from './createServer';
import { EnvError, parseEnv } from './env';
import { forgetKeyFingerprint } from './keyFingerprint';
import { createLogger } from './logger';

function loadConfigOrExit() {
  try {
    return configFromEnv(parseEnv());
  } catch (err) {
    if (err instanceof EnvError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function migrate(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel });
  const db = createDb(config.databaseUrl);
  try {
    const { applied } = await migrateToLatest(db);
    logger.info({ applied }, applied.length ? 'migrations applied' : 'schema already up to date');
  } finally {
    await db.destroy();
  }
}

/**
 * For when the keys a database was used with are lost for good: the next start records its own.
 * Deliberately a separate command, so that a server never does this on its own.
 */
async function resetKeyFingerprint(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel });
  const db = createDb(config.databaseUrl);
  try {
    const removed = await forgetKeyFingerprint(db);
    logger.warn(
      { removed },
      removed
        ? 'key fingerprint removed: the next server start records the keys it has'
        : 'no key fingerprint recorded: nothing to do',
    );
  } finally {
    await db.destroy();
  }
}

async function serve(): Promise<void> {
  const config = loadConfigOrExit();
  // Before createServer starts threads of its own (they inherit the main thread's priority).
  const lowered = yieldBackgroundThreads(config.backgroundThreadNice);
  const server = await createServer(config);
  const { logger } = server;
  logger.info({ threads: lowered, by: config.backgroundThreadNice }, 'background threads niced');
  // A shared MySQL database without Redis works for one instance only: a second would run every
  // job at the same time as this one, and neither would wake the other's streams.
  if (config.databaseUrl.startsWith('mysql') && !config.redisUrl)
    logger.warn(
      'MySQL without REDIS_URL: locks, wake-ups, presence and rate limits stay in this process, so run one instance only',
    );
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'unhandled rejection'),
  );
  const stop = (signal: string) => {
    logger.info({ signal }, 'signal received');
    // The bound is enforced inside shutdown(); this only guards against a hang in a backend.
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 5_000).unref();
    server.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Announced last: whoever waits for this line can already signal the process.
  logger.info(
    { http: server.url, trpc: server.trpcUrl, ws: server.wsUrl, docs: server.docsUrl },
    `MVP listening on ${server.url} (WebSocket ${server.wsUrl}, docs ${server.docsUrl})`,
  );
}

const command = process.argv[2] ?? 'serve';
const commands: Record<string, () => Promise<void>> = {
  serve,
  migrate,
  'reset-key-fingerprint': resetKeyFingerprint,
};
const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
if (!run) {
  process.stderr.write(
    `unknown command "${command}": use "serve" (default), "migrate" or "reset-key-fingerprint"\n`,
  );
  process.exit(2);
}
run().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
