import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { warmupRuns, type BenchConfig } from './config';
import {
  MESSAGING_GOALS,
  orderOf,
  progress,
  ratios,
  sideSummary,
  startRawMessaging,
  type Log,
  type Side,
} from './messaging';
import { runPersistLoad, runRedisPubSubLoad, runRelayLoad, type Added } from './messagingLoad';
import { anotherDevice, createPairs, randomCiphertext, registerUsers } from './messagingSetup';
import { median, rounded, type RoundResult } from './stats';
import { startTarget, type Target } from './targets';

/** The MVP server's pool size (createDb's default); the raw mysql2 side gets the same. */
const POOL_SIZE = 10;

/** Null when MySQL/MariaDB and Redis answer; else why not (the scenarios are then skipped). */
async function unavailable(mysqlUrl: string, redisUrl: string): Promise<string | null> {
  try {
    const conn = await mysql.createConnection({ uri: mysqlUrl, connectTimeout: 2_000 });
    await conn.query('SELECT 1');
    await conn.end();
  } catch (err) {
    return `MySQL/MariaDB at ${mysqlUrl.replace(/\/\/[^@]*@/, '//')}: ${(err as Error).message}`;
  }
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (err) {
    return `Redis at ${redisUrl}: ${(err as Error).message}`;
  } finally {
    redis.disconnect();
  }
}

/** Every run starts on empty tables (the MVP migrates them again), so runs compare. */
async function dropTables(mysqlUrl: string): Promise<void> {
  const conn = await mysql.createConnection({ uri: mysqlUrl, multipleStatements: false });
  try {
    const [tables] = await conn.query<mysql.RowDataPacket[]>(
      'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()',
    );
    await conn.query('SET FOREIGN_KEY_CHECKS = 0');
    for (const { name } of tables) await conn.query(`DROP TABLE \`${String(name)}\``);
  } finally {
    await conn.end();
  }
}

/**
 * Scenarios (c) `persist` and (d) `cluster`, on MySQL/MariaDB + Redis: sections are null when not
 * selected and `{ skipped }` when the services do not answer.
 */
export async function runMysqlMessaging(config: BenchConfig, log: Log) {
  const m = config.messaging;
  const persistOn = config.only.has('persist');
  const clusterOn = config.only.has('cluster');
  if (!persistOn && !clusterOn) return { persist: null, cluster: null };
  const why = await unavailable(m.mysqlUrl, m.redisUrl);
  if (why) {
    log(`persist/cluster skipped: ${why}`);
    const skipped = { skipped: why };
    return { persist: persistOn ? skipped : null, cluster: clusterOn ? skipped : null };
  }

  await dropTables(m.mysqlUrl);
  // A and B are one deployment: one database, one Redis prefix, one set of keys.
  const dataDir = mkdtempSync(join(tmpdir(), 'mvp-bench-cluster-'));
  const backend = {
    dataDir,
    databaseUrl: m.mysqlUrl,
    redisUrl: m.redisUrl,
    redisPrefix: `bench:${randomBytes(6).toString('hex')}:`,
  };
  const targets: Target[] = [];
  try {
    const a = await startTarget('mvp', backend);
    targets.push(a);
    const trpcUrl = a.url('trpcUrl');
    const persistUsers = persistOn ? 4 * m.persistPairs : 0;
    log(`mysql setup: ${persistUsers + (clusterOn ? 2 * m.clusterPairs : 0)} accounts`);
    const users = await registerUsers(trpcUrl, persistUsers + (clusterOn ? 2 * m.clusterPairs : 0));
    const mvpPairs = await createPairs(trpcUrl, users.slice(0, 2 * m.persistPairs * +persistOn));
    const rawPairs = await createPairs(
      trpcUrl,
      users.slice(2 * m.persistPairs * +persistOn, persistUsers),
    );
    const clusterPairs = await createPairs(trpcUrl, users.slice(persistUsers));
    const ciphertext = randomCiphertext(m.ciphertextBytes);

    let persist = null;
    if (persistOn) {
      const raw = await startRawMessaging(rawPairs, { url: m.mysqlUrl, poolSize: POOL_SIZE });
      targets.push(raw);
      const run = (side: Side, durationS: number) =>
        runPersistLoad({
          url: (side === 'raw' ? raw : a).url('wsUrl'),
          conversations: side === 'raw' ? rawPairs : mvpPairs,
          inFlight: m.persistInFlight,
          durationS,
          ciphertext,
        });
      for (const side of ['raw', 'mvp'] as const) {
        for (const seconds of warmupRuns(config)) {
          log(`warm-up ${side}-persist ${seconds}s`);
          await run(side, seconds);
        }
      }
      const results: Record<Side, RoundResult[]> = { raw: [], mvp: [] };
      for (let round = 0; round < config.rounds; round++) {
        for (const side of orderOf<Side>(['raw', 'mvp'], round)) {
          const r = await run(side, config.durationS);
          results[side].push(r);
          log(progress(`round ${round + 1}/${config.rounds} ${side}-persist`, r, 'sends/s'));
        }
      }
      const ratio = ratios(results);
      persist = {
        what:
          `persisted sends/s: messages.send on MariaDB + Redis, ${m.persistPairs} direct pairs, ` +
          `one sender each with ${m.persistInFlight} in flight (closed loop), nobody subscribed`,
        baseline:
          'the same frames to a ws server in its own process that runs, per send, one mysql2 ' +
          'transaction: INSERT the message row, INSERT one user_events row per member (same ' +
          `columns, same schema), COMMIT; pool of ${POOL_SIZE} as the MVP's`,
        raw: sideSummary(results.raw, 'sendsPerS'),
        mvp: sideSummary(results.mvp, 'sendsPerS'),
        ratio,
        goal: {
          goal: `sends/s mvp/raw >= ${MESSAGING_GOALS.persistThroughputRatioMin}`,
          value: ratio.throughput,
          met: ratio.throughput >= MESSAGING_GOALS.persistThroughputRatioMin,
        },
      };
    }

    let cluster = null;
    if (clusterOn) {
      const b = await startTarget('mvp', backend);
      targets.push(b);
      // Context: one instance on the same database with the in-process bus, what a deployment
      // that has not scaled out runs.
      const single = await startTarget('mvp', { ...backend, redisUrl: undefined });
      targets.push(single);
      // Each receiver is signed in on a second device, subscribed on B while the first is on A.
      const onB = await Promise.all(clusterPairs.map((c) => anotherDevice(trpcUrl, c.members[1]!)));
      // Capacity first: closed loop through A with the receivers' devices subscribed as in the
      // measured rounds (on A and on B), so the load is a share of what this work can reach. The
      // first run warms the freshly created tables up and is not used.
      const closedLoop = () =>
        runPersistLoad({
          url: a.url('wsUrl'),
          conversations: clusterPairs,
          inFlight: 1,
          durationS: Math.max(config.warmupS, 2),
          ciphertext,
          listeners: [
            { url: a.url('wsUrl'), users: clusterPairs.map((c) => c.members[1]!) },
            { url: b.url('wsUrl'), users: onB },
          ],
        });
      await closedLoop();
      const capacity = await closedLoop();
      const rate = Math.max(1, Math.round(capacity.rps * m.clusterLoadShare));
      log(`cluster: capacity ${capacity.rps.toFixed(0)} sends/s through A, load ${rate} sends/s`);
      type Variant = 'redis' | 'single' | 'paired';
      const variants = ['redis', 'single', 'paired'] as const;
      type Paired = RoundResult & { second?: RoundResult & { added: Added } };
      const run = (variant: Variant, durationS: number): Promise<Paired> => {
        const load = { conversations: clusterPairs, rate, durationS, ciphertext };
        if (variant === 'redis')
          return runRedisPubSubLoad({
            redisUrl: m.redisUrl,
            channels: clusterPairs.length,
            rate,
            durationS,
          });
        if (variant === 'single')
          return runRelayLoad({
            ...load,
            sendUrl: single.url('wsUrl'),
            receiveUrl: single.url('wsUrl'),
          });
        return runRelayLoad({
          ...load,
          sendUrl: a.url('wsUrl'),
          receiveUrl: a.url('wsUrl'),
          second: { url: b.url('wsUrl'), receivers: onB },
        });
      };
      const results: Record<'redis' | 'single' | 'onA' | 'onB', RoundResult[]> = {
        redis: [],
        single: [],
        onA: [],
        onB: [],
      };
      const added: Added[] = [];
      for (const variant of variants)
        for (const seconds of warmupRuns(config)) await run(variant, seconds);
      for (let round = 0; round < config.rounds; round++) {
        for (const variant of orderOf<Variant>([...variants], round)) {
          const r = await run(variant, m.latencyDurationS);
          const tag = `round ${round + 1}/${config.rounds} cluster`;
          if (variant !== 'paired' || !r.second) {
            results[variant === 'paired' ? 'onA' : variant].push(r);
            log(progress(`${tag}-${variant}`, r, '/s'));
            continue;
          }
          results.onA.push(r);
          results.onB.push(r.second);
          added.push(r.second.added);
          log(progress(`${tag}-on-A`, r, '/s'));
          log(
            `${progress(`${tag}-on-B`, r.second, '/s')}; B − A per message: ` +
              `p50 ${r.second.added.p50Ms.toFixed(3)} ms, p99 ${r.second.added.p99Ms.toFixed(3)} ms`,
          );
        }
      }
      const p = (v: keyof typeof results, key: 'p50Ms' | 'p99Ms') =>
        median(results[v].map((r) => r[key]));
      const addedP99 = rounded(median(added.map((x) => x.p99Ms)), 3);
      cluster = {
        what:
          `send→deliver latency across two MVP instances on MariaDB + Redis: ${clusterPairs.length} ` +
          'direct pairs, sends through instance A; each receiver is subscribed on two devices, ' +
          'one on A and one on B, so every message reaches both after the same commit; ' +
          `open loop at ${rate} sends/s = ${m.clusterLoadShare} × the capacity measured ` +
          `through A just before (${rounded(capacity.rps, 1)} sends/s, closed loop, the same ` +
          'devices subscribed)',
        baseline:
          'raw Redis PUBLISH on one connection → message on another SUBSCRIBEd connection, ' +
          `same rate over ${clusterPairs.length} channels, wake-up-sized payload: the hop a ` +
          'second instance cannot avoid',
        rate,
        rawRedis: sideSummary(results.redis, 'messagesPerS'),
        singleInstance: sideSummary(results.single, 'deliveriesPerS'),
        deviceOnA: sideSummary(results.onA, 'deliveriesPerS'),
        deviceOnB: sideSummary(results.onB, 'deliveriesPerS'),
        added: {
          perMessageP50Ms: rounded(median(added.map((x) => x.p50Ms)), 3),
          perMessageP99Ms: addedP99,
          perMessageP99PerRound: added.map((x) => rounded(x.p99Ms, 3)),
          onBOverSingleInstanceP50Ms: rounded(p('onB', 'p50Ms') - p('single', 'p50Ms'), 3),
          onBOverSingleInstanceP99Ms: rounded(p('onB', 'p99Ms') - p('single', 'p99Ms'), 3),
          rawRedisP99Ms: p('redis', 'p99Ms'),
        },
        goal: {
          goal:
            `per message, arrival on B − arrival on A (the instance that wrote it), p99 <= ` +
            `${MESSAGING_GOALS.clusterAddedP99MsMax} ms`,
          value: addedP99,
          met: addedP99 <= MESSAGING_GOALS.clusterAddedP99MsMax,
        },
      };
    }
    return { persist, cluster };
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
    rmSync(dataDir, { recursive: true, force: true });
  }
}
