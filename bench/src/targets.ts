import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_NODE_FLAGS } from '@mvp/server/nodeFlags';
import { RAM_DISK, targetProcessEnv, type EmbeddedDb } from './config';

/**
 * `raw` and `mvp` answer system.info (HTTP and WebSocket); `mvp` also answers auth.login and
 * everything else, `raw-login` is the login baseline (one argon2 verify per POST, see
 * loginBaseline.ts), `raw-messaging` the relay / broadcast / mysql2 baseline of the
 * messaging scenarios (see messagingBaseline.ts), `raw-signalling` the call signalling relay
 * (see signallingBaseline.ts); `trpc-messaging` and `trpc-signalling` serve the messaging and
 * signalling baselines' work through tRPC (tRPC's floor, see trpcFloor.ts).
 */
export type TargetKind =
  | 'raw'
  | 'mvp'
  | 'raw-login'
  | 'raw-messaging'
  | 'raw-signalling'
  | 'trpc-messaging'
  | 'trpc-signalling';

/** The MVP target's backend: embedded (SQLite, in-process bus) unless `databaseUrl` is set. */
export type MvpTargetOptions = {
  /**
   * Where the server keeps its generated keys. Instances of one deployment must share it (a
   * token signed by one is verified by the other); the caller then removes it. Default: a fresh
   * directory of the target's own (on the RAM disk with `embeddedDb: 'ram'`), removed after.
   */
  dataDir?: string;
  databaseUrl?: string;
  /** Without `databaseUrl`: where SQLite is (see BenchConfig.embeddedDb). Default `memory`. */
  embeddedDb?: EmbeddedDb;
  redisUrl?: string;
  redisPrefix?: string;
};

/** Where the load generators point; a target reports the ones it serves. */
export type TargetEndpoints = {
  /** GET answers system.info's JSON. */
  httpUrl: string;
  /** tRPC WebSocket protocol, or the raw server's imitation of it. */
  wsUrl: string;
  /** POST with a tRPC mutation body `{"json":{identifier,password,device}}`. */
  loginUrl: string;
  /** tRPC over HTTP, for setup calls (`<trpcUrl>/<path>`). */
  trpcUrl: string;
};

/** Argon2id cost, as the server's `auth.argon2` config has it. */
export type Argon2Params = { memoryCost: number; timeCost: number; parallelism: number };

/** What a target says about itself once listening. */
export type TargetInfo = {
  endpoints: Partial<TargetEndpoints>;
  /** Login targets: the argon2 cost in use and how many verifications may run at once. */
  argon2?: Argon2Params & { concurrency: number; version: string };
};

/**
 * Event-loop delay inside the target, from `perf_hooks.monitorEventLoopDelay` (ms). The
 * histogram samples a timer that should fire every `resolutionMs`: a value is the time between
 * two firings, so an idle loop reads about `resolutionMs`, and the delay proper is the excess.
 */
export type LoopDelay = {
  resolutionMs: number;
  count: number;
  minMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
};

/**
 * The target's garbage collections, from `perf_hooks`' `gc` entries: young-generation
 * scavenges apart from the rest (mark-compacts and their incremental steps). A pause stops the
 * main thread, so a message that meets one is that much later.
 */
export type GcPauses = {
  scavenges: number;
  scavengeMs: number;
  longestScavengeMs: number;
  others: number;
  otherMs: number;
  longestOtherMs: number;
};

/** What a target measured of itself since the previous reset (or start). */
export type TargetStats = {
  loopDelay: LoopDelay;
  gc: GcPauses;
  /** CPU time of the whole process (main thread and libuv's threadpool), user + system, ms. */
  cpuMs: number;
  /** Time the event loop (main thread) was busy, from `performance.eventLoopUtilization`, ms. */
  loopActiveMs: number;
};

/** Child → parent over IPC. */
export type TargetReady = { type: 'ready' } & TargetInfo;
export type TargetStatsReply = { type: 'stats'; id: number; stats: TargetStats };
/** Parent → child over IPC. */
export type TargetStop = { type: 'stop' };
/** Reads the stats since the last reset (or start), then resets them when asked. */
export type TargetStatsRequest = { type: 'stats'; id: number; reset: boolean };

export type Target = TargetInfo & {
  kind: TargetKind;
  /** The endpoint, or an error if this target does not serve it. */
  url(name: keyof TargetEndpoints): string;
  /** Reads the target's event-loop delay and CPU time since the previous reset or start. */
  stats(options: { reset: boolean }): Promise<TargetStats>;
  stop(): Promise<void>;
};

/** RAM disk directories of running targets: removed when the child exits, or when this does. */
const ramDirs = new Set<string>();
process.once('exit', () => ramDirs.forEach(removeRamDir));

function removeRamDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  ramDirs.delete(dir);
}

/**
 * An embedded MVP target's data directory on the RAM disk (`embeddedDb: 'ram'`), with its
 * database. Made and removed here, not in the child: a child that is killed or fails to stop
 * would leave a database that may hold hundreds of megabytes in RAM.
 */
function ramDataDir(options: MvpTargetOptions | undefined): string | undefined {
  if (options?.embeddedDb !== 'ram' || options.dataDir || options.databaseUrl) return undefined;
  if (!existsSync(RAM_DISK))
    throw new Error(
      `BENCH_EMBEDDED_DB=ram (the default) keeps SQLite on the RAM disk ${RAM_DISK}, which ` +
        'this machine does not have: set BENCH_EMBEDDED_DB=file or memory',
    );
  const dir = mkdtempSync(join(RAM_DISK, 'mvp-bench-'));
  ramDirs.add(dir);
  return dir;
}

/**
 * Each server runs in its own child process and the load generators run in this one. On a small
 * machine a shared event loop would make client and server steal each other's time in a way
 * that depends on the server's speed, which skews exactly the ratio being measured. Raw and MVP
 * are started the same way, so both pay the same IPC/process costs (none while measuring: the
 * only messages are the stats reads at round boundaries).
 */
export async function startTarget(kind: TargetKind, argument?: unknown): Promise<Target> {
  const ramDir = kind === 'mvp' ? ramDataDir(argument as MvpTargetOptions | undefined) : undefined;
  if (ramDir) argument = { ...(argument as MvpTargetOptions), dataDir: ramDir };
  // A large argument (the messaging baseline's token table) goes through a file: one argv
  // string may not exceed 128 KiB on Linux.
  const json = argument === undefined ? undefined : JSON.stringify(argument);
  const spill =
    json !== undefined && json.length > 32_768
      ? mkdtempSync(join(tmpdir(), 'mvp-bench-arg-'))
      : undefined;
  if (spill) writeFileSync(join(spill, 'argument.json'), json!);
  const args =
    json === undefined ? [kind] : [kind, spill ? `@${join(spill, 'argument.json')}` : json];
  // fork() reuses this process's execArgv, which under `tsx` includes its loader, so the child
  // can run TypeScript (and @mvp/server's source) too. Every target runs with the flags the
  // server's start commands pass, the raw servers and the floor too: a hand-written server would
  // be deployed with the same GC settings, and a pause one side is spared and the other is not
  // would be priced as the MVP's (bench/README, session 12). `npm run bench` gives this process
  // the same flags (package.json), so none is passed twice.
  const child: ChildProcess = fork(new URL('./targetProcess.ts', import.meta.url), args, {
    execArgv: [
      ...process.execArgv,
      ...SERVER_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag)),
    ],
    env: targetProcessEnv(),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      if (spill) rmSync(spill, { recursive: true, force: true });
      if (ramDir) removeRamDir(ramDir);
      resolve();
    }),
  );

  const info = await new Promise<TargetInfo>((resolve, reject) => {
    child.once('message', (message: TargetReady) => resolve(message));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${kind} target exited early (code ${code})`)));
  });

  const pending = new Map<number, (stats: TargetStats) => void>();
  let nextId = 1;
  child.on('message', (message: TargetStatsReply) => {
    if (message.type !== 'stats') return;
    pending.get(message.id)?.(message.stats);
    pending.delete(message.id);
  });

  return {
    kind,
    endpoints: info.endpoints,
    ...(info.argon2 ? { argon2: info.argon2 } : {}),
    url(name) {
      const url = info.endpoints[name];
      if (url === undefined) throw new Error(`${kind} target has no ${name}`);
      return url;
    },
    stats: ({ reset }) =>
      new Promise<TargetStats>((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        child.send({ type: 'stats', id, reset } satisfies TargetStatsRequest);
      }),
    stop: async () => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.send({ type: 'stop' } satisfies TargetStop);
      await exited;
      clearTimeout(timer);
    },
  };
}
