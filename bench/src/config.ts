import os from 'node:os';
import { parseEnv } from '@mvp/server/env';

/**
 * Bench knobs. Defaults give a full run of about a minute; every knob can be overridden from the
 * environment so a quick check (BENCH_DURATION_S=1 BENCH_ROUNDS=1) takes a few seconds.
 * This is the only file in bench/ that reads process.env.
 */
export type BenchConfig = {
  /** Measured seconds per round, per scenario. */
  durationS: number;
  /** Unmeasured seconds per scenario before round 1, so the JIT and pools settle first. */
  warmupS: number;
  /**
   * How many times each warm-up against a server runs its load (`warmupS` each), the clients
   * connecting anew each time (crypto, which has no server, warms up once). After one pass, a
   * server's first measured round cost ~15 % more CPU per message however long that pass was
   * (10 or 40 s): it was the server's first reconnect of its clients. With a second pass most of
   * that went into the warm-up (bench/README, session 24).
   */
  warmupPasses: number;
  /** Rounds per scenario; raw and MVP alternate inside each round. */
  rounds: number;
  /** Keep-alive HTTP connections autocannon holds open (one request in flight each). */
  httpConnections: number;
  wsSockets: number;
  /** Requests each socket keeps in flight (closed loop: a response triggers the next request). */
  wsInFlight: number;
  /**
   * Keep-alive connections of the login storm. Default 2 × the cores: the server verifies at
   * most `availableParallelism()` passwords at once, so twice that keeps its queue non-empty
   * (no idle gap while an answer travels back and the next request arrives) without piling up
   * latency that says nothing more about throughput.
   */
  loginConnections: number;
  /** Accounts registered before the login storm (not measured); logins cycle through them. */
  loginUsers: number;
  /** Which scenarios run (`--only a,b` or BENCH_ONLY); all of them when not set. */
  only: Set<Scenario>;
  /**
   * Where the embedded MVP targets keep SQLite (BENCH_EMBEDDED_DB): `ram` (the default since
   * session 23), a WAL file as a server started with no DATABASE_URL keeps it, on the RAM disk
   * `/dev/shm`; `file`, the same in the target's data directory under the system's temporary
   * directory; `memory`, SQLite's `:memory:` (the default until session 23), whose commits slow
   * down as it grows.
   */
  embeddedDb: EmbeddedDb;
  messaging: MessagingConfig;
  crypto: CryptoConfig;
  signalling: SignallingConfig;
};

/**
 * `info`: system.info over HTTP and WS; `login`; the messaging scenarios of issue 5: `relay`
 * (send→deliver latency, direct pairs), `fanout` (group deliveries/s), `persist` (sends/s on
 * MySQL/MariaDB), `cluster` (two instances on MariaDB + Redis). `messaging` names the four.
 * `crypto` (issue 6): Double Ratchet encrypt+decrypt against raw XChaCha20-Poly1305;
 * `signalling` (issue 7): call setup time against a raw ws relay of the same frames.
 */
export const SCENARIOS = [
  'info',
  'login',
  'relay',
  'fanout',
  'persist',
  'cluster',
  'crypto',
  'signalling',
] as const;
export type Scenario = (typeof SCENARIOS)[number];
const GROUPS: Record<string, Scenario[]> = {
  messaging: ['relay', 'fanout', 'persist', 'cluster'],
  system: ['info'],
};

export type MessagingConfig = {
  /** Bytes of ciphertext per message (random, sent base64). */
  ciphertextBytes: number;
  /** `relay`: direct pairs (2 connected clients each) and the aggregate send rate, msgs/s. */
  relayPairs: number;
  relayRate: number;
  /** `fanout`: group members (all subscribed) and messages in flight (sent, not fully delivered). */
  groupSize: number;
  fanoutWindow: number;
  /** `persist`: direct pairs, one sender each, each with this many sends in flight. */
  persistPairs: number;
  persistInFlight: number;
  /** `cluster`: direct pairs; the rate is this share of the measured capacity. */
  clusterPairs: number;
  clusterLoadShare: number;
  /**
   * The round of the two latency scenarios, `relay` and `cluster`. 4 × `durationS` (12 s) by
   * default: (a) at 200 sends/s gets 2 400 messages a round, whose p99 is the 24th largest; in
   * 3 s it was the 6th, so one 5 ms stall of any process decided the round.
   */
  latencyDurationS: number;
  /** MySQL/MariaDB for `persist` and `cluster`: a database of the bench's own. */
  mysqlUrl: string;
  redisUrl: string;
};

export type CryptoConfig = {
  /** Plaintext bytes per message (random), encrypted and decrypted on both sides. */
  plaintextBytes: number;
};

export type SignallingConfig = {
  /** Caller/callee pairs (befriended at setup); each pair has at most one call at a time. */
  pairs: number;
  /** Open-loop rate of call setups, per minute, over all pairs. */
  ratePerMinute: number;
  /** ICE candidates each way, one `calls.signal` each. */
  candidates: number;
  /** Bytes of the encrypted offer and of the answer (random, sent base64). */
  sdpBytes: number;
  /** Bytes of each encrypted candidate (random, sent base64). */
  candidateBytes: number;
  /** Measured seconds per round: at ~17 setups/s a 3 s round holds too few for a p99. */
  durationS: number;
};

function onlyFrom(value: string | undefined): Set<Scenario> {
  if (value === undefined || value === '' || value === 'true') return new Set(SCENARIOS);
  const picked = value.split(',').flatMap((name) => {
    const trimmed = name.trim();
    if (GROUPS[trimmed]) return GROUPS[trimmed];
    const scenario = SCENARIOS.find((name) => name === trimmed);
    if (scenario) return [scenario];
    throw new Error(
      `unknown scenario "${trimmed}": use ${[...SCENARIOS, ...Object.keys(GROUPS)].join(', ')}`,
    );
  });
  return new Set(picked);
}

/**
 * `--only x,y` on the bench's own command line (`npm run -s bench -- --only messaging` inside
 * bench/), else BENCH_ONLY (from the root, whose script runs a build first and does not pass
 * arguments through: `BENCH_ONLY=messaging npm run bench`).
 */
function onlyArgument(): string | undefined {
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (at >= 0) return argv[at]!.includes('=') ? argv[at]!.split('=')[1] : argv[at + 1];
  return process.env.BENCH_ONLY || undefined;
}

/** Refuses the databases the test suites and developers use: the bench drops its tables. */
function benchDatabaseUrl(url: string): string {
  const name = new URL(url).pathname.replace(/^\//, '');
  if (name === '' || name === 'mvp_test' || name === 'mvp_dev' || name === 'mvp')
    throw new Error(`BENCH_MYSQL_URL must name a database of the bench's own, not "${name}"`);
  return url;
}

export type EmbeddedDb = 'ram' | 'file' | 'memory';
const EMBEDDED_DBS: readonly EmbeddedDb[] = ['ram', 'file', 'memory'];

/** Where `ram` keeps the embedded targets' data directories (with their database). */
export const RAM_DISK = '/dev/shm';

function embeddedDbFromEnv(): EmbeddedDb {
  const raw = process.env.BENCH_EMBEDDED_DB || 'ram';
  if (!EMBEDDED_DBS.includes(raw as EmbeddedDb))
    throw new Error(`BENCH_EMBEDDED_DB must be ram, file or memory, got "${raw}"`);
  return raw as EmbeddedDb;
}

/** The warm-up's runs of a load, in seconds each: none without a warm-up (see warmupPasses). */
export function warmupRuns(config: Pick<BenchConfig, 'warmupS' | 'warmupPasses'>): number[] {
  return config.warmupS > 0 ? Array<number>(config.warmupPasses).fill(config.warmupS) : [];
}

function numberFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return value;
}

export function benchConfigFromEnv(): BenchConfig {
  const durationS = numberFromEnv('BENCH_DURATION_S', 3, 0.5);
  return {
    durationS,
    warmupS: numberFromEnv('BENCH_WARMUP_S', 2, 0),
    warmupPasses: Math.round(numberFromEnv('BENCH_WARMUP_PASSES', 2, 1)),
    rounds: Math.round(numberFromEnv('BENCH_ROUNDS', 3, 1)),
    httpConnections: Math.round(numberFromEnv('BENCH_CONNECTIONS', 16, 1)),
    wsSockets: Math.round(numberFromEnv('BENCH_WS_SOCKETS', 16, 1)),
    wsInFlight: Math.round(numberFromEnv('BENCH_WS_IN_FLIGHT', 4, 1)),
    loginConnections: Math.round(
      numberFromEnv('BENCH_LOGIN_CONNECTIONS', 2 * os.availableParallelism(), 1),
    ),
    loginUsers: Math.round(numberFromEnv('BENCH_LOGIN_USERS', 32, 1)),
    only: onlyFrom(onlyArgument()),
    embeddedDb: embeddedDbFromEnv(),
    messaging: {
      ciphertextBytes: Math.round(numberFromEnv('BENCH_CIPHERTEXT_BYTES', 256, 1)),
      relayPairs: Math.round(numberFromEnv('BENCH_RELAY_PAIRS', 100, 1)),
      relayRate: numberFromEnv('BENCH_RELAY_RATE', 200, 1),
      groupSize: Math.round(numberFromEnv('BENCH_GROUP_SIZE', 100, 2)),
      fanoutWindow: Math.round(numberFromEnv('BENCH_FANOUT_WINDOW', 4, 1)),
      persistPairs: Math.round(numberFromEnv('BENCH_PERSIST_PAIRS', 16, 1)),
      persistInFlight: Math.round(numberFromEnv('BENCH_PERSIST_IN_FLIGHT', 1, 1)),
      clusterPairs: Math.round(numberFromEnv('BENCH_CLUSTER_PAIRS', 16, 1)),
      clusterLoadShare: numberFromEnv('BENCH_CLUSTER_LOAD_SHARE', 0.5, 0.01),
      latencyDurationS: numberFromEnv('BENCH_LATENCY_DURATION_S', 4 * durationS, 0.5),
      mysqlUrl: benchDatabaseUrl(
        process.env.BENCH_MYSQL_URL || 'mysql://mvp:mvp-test-password@127.0.0.1:3306/mvp_bench',
      ),
      redisUrl: process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
    },
    crypto: {
      plaintextBytes: Math.round(numberFromEnv('BENCH_CRYPTO_BYTES', 1024, 1)),
    },
    signalling: {
      pairs: Math.round(numberFromEnv('BENCH_SIGNAL_PAIRS', 64, 1)),
      ratePerMinute: numberFromEnv('BENCH_SIGNAL_RATE_PER_MIN', 1000, 1),
      candidates: Math.round(numberFromEnv('BENCH_SIGNAL_CANDIDATES', 8, 1)),
      sdpBytes: Math.round(numberFromEnv('BENCH_SIGNAL_SDP_BYTES', 2700, 1)),
      candidateBytes: Math.round(numberFromEnv('BENCH_SIGNAL_CANDIDATE_BYTES', 256, 1)),
      // 4 × the other scenarios' round (12 s by default: ~200 setups, whose p99 is the third
      // largest; 50 setups in 3 s would make the p99 their maximum).
      durationS: numberFromEnv('BENCH_SIGNAL_DURATION_S', 4 * durationS, 0.5),
    },
  };
}

/**
 * The target processes get the parent's environment plus NODE_ENV=production: libraries (tRPC
 * among them) do extra dev-only work otherwise, which is not what a deployment pays.
 */
/** The server's MVP_BACKGROUND_THREAD_NICE (validated by its schema), for every target. */
export function backgroundThreadNice(): number {
  const { MVP_BACKGROUND_THREAD_NICE } = process.env;
  return parseEnv({ MVP_BACKGROUND_THREAD_NICE }).MVP_BACKGROUND_THREAD_NICE;
}

export function targetProcessEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NODE_ENV: 'production' };
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: os.availableParallelism(),
    node: process.version,
    /** The load generator's own (the targets add the server's flags it lacks, see targets.ts). */
    nodeFlags: process.execArgv,
  };
}
