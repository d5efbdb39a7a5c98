/**
 * Entry point of a target child process: `targetProcess.ts raw <payload json>`,
 * `targetProcess.ts mvp [options json]`, `targetProcess.ts raw-login <payload json>` or
 * `targetProcess.ts raw-messaging <payload json>`, `targetProcess.ts raw-signalling <payload json>`
 * or `targetProcess.ts trpc-messaging|trpc-signalling <payload json>`
 * (`@<file>` instead of the JSON: read from there).
 * Starts one server,
 * reports its endpoints over IPC, answers stats reads (event-loop delay, GC pauses, CPU time), and
 * stops on request.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  constants,
  monitorEventLoopDelay,
  performance,
  PerformanceObserver,
} from 'node:perf_hooks';
import { createServer, defaultConfig, type ServerConfig } from '@mvp/server';
import { yieldBackgroundThreads } from '@mvp/server/backgroundThreads';
import { backgroundThreadNice } from './config';
import { startBaseline, type BaselinePayload } from './baselines';
import { startLoginBaseline, type LoginBaselinePayload } from './loginBaseline';
import { startMessagingBaseline, type MessagingBaselinePayload } from './messagingBaseline';
import { startMessagingFloor } from './messagingFloor';
import { startSignallingBaseline, type SignallingBaselinePayload } from './signallingBaseline';
import { startSignallingFloor } from './signallingFloor';
import type {
  GcPauses,
  LoopDelay,
  MvpTargetOptions,
  TargetInfo,
  TargetKind,
  TargetReady,
  TargetStats,
  TargetStatsReply,
  TargetStatsRequest,
  TargetStop,
} from './targets';

/** The timer period of the event-loop delay histogram, as the issue asks (10 ms). */
const LOOP_DELAY_RESOLUTION_MS = 10;

const argon2Version = () =>
  (createRequire(import.meta.url)('argon2/package.json') as { version: string }).version;

/** The auth limits raised so that a login storm never hits them; they still run on every call. */
function benchAuthConfig(): ServerConfig['auth'] {
  const base = defaultConfig().auth;
  const roomy = { points: 1_000_000, durationSeconds: 60 };
  return {
    ...base,
    limits: Object.fromEntries(
      Object.keys(base.limits).map((name) => [name, roomy]),
    ) as ServerConfig['auth']['limits'],
    loginBackoff: { after: 100, maxSeconds: 1 },
    // Tokens registered at a scenario's setup must outlive the whole run.
    jwt: { ...base.jwt, accessTtlSeconds: 3600 },
    // nodeEnv production refuses the development log sender. Nothing here sends a code (no
    // account has a phone), so the webhook is never called; it only has to be configured.
    otp: {
      ...base.otp,
      sender: 'webhook',
      webhookUrl: 'http://127.0.0.1:9/never-called',
      webhookSecret: 'bench-never-used-0123456789abcdef',
    },
  };
}

/** The argument after the kind: JSON, or `@<path>` of a file holding it. */
function argument<T>(): T | undefined {
  const raw = process.argv[3];
  if (raw === undefined) return undefined;
  return JSON.parse(raw.startsWith('@') ? readFileSync(raw.slice(1), 'utf8') : raw) as T;
}

/** The messaging and signalling sides other than the MVP: each serves one WebSocket URL. */
const WS_ONLY_TARGETS = {
  'raw-messaging': (p: MessagingBaselinePayload) => startMessagingBaseline(p),
  'raw-signalling': (p: SignallingBaselinePayload) => startSignallingBaseline(p),
  'trpc-messaging': (p: MessagingBaselinePayload) => startMessagingFloor(p),
  'trpc-signalling': (p: SignallingBaselinePayload) => startSignallingFloor(p),
} satisfies Partial<
  Record<TargetKind, (payload: never) => Promise<{ wsUrl: string; close(): Promise<void> }>>
>;

async function start(kind: TargetKind): Promise<TargetInfo & { close(): Promise<void> }> {
  if (kind === 'raw') {
    const payload = argument<BaselinePayload>()!;
    const raw = await startBaseline(payload);
    return { endpoints: { httpUrl: raw.httpUrl, wsUrl: raw.wsUrl }, close: () => raw.close() };
  }
  if (kind === 'raw-login') {
    const payload = argument<LoginBaselinePayload>()!;
    const raw = await startLoginBaseline(payload);
    return {
      endpoints: { loginUrl: raw.loginUrl },
      argon2: { ...payload.argon2, concurrency: raw.concurrency, version: argon2Version() },
      close: () => raw.close(),
    };
  }
  const wsOnly = WS_ONLY_TARGETS[kind as keyof typeof WS_ONLY_TARGETS];
  if (wsOnly) {
    const target = await wsOnly(argument()!);
    return { endpoints: { wsUrl: target.wsUrl }, close: () => target.close() };
  }
  const backend = argument<MvpTargetOptions>() ?? {};
  const base = defaultConfig();
  // Keys are generated into dataDir on first start: a fresh directory per run, removed after
  // (with `ram`, the parent made it on the RAM disk and removes it: see targets.ts).
  const dataDir = backend.dataDir ?? mkdtempSync(join(tmpdir(), 'mvp-bench-'));
  const removeDataDir = () => {
    if (!backend.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const server = await createServer(
    defaultConfig({
      nodeEnv: 'production',
      port: 0,
      databaseUrl:
        backend.databaseUrl ??
        ((backend.embeddedDb ?? 'memory') === 'memory'
          ? 'sqlite::memory:'
          : `sqlite:${join(dataDir, 'mvp.db')}`),
      redisUrl: backend.redisUrl,
      ...(backend.redisPrefix ? { redisPrefix: backend.redisPrefix } : {}),
      logLevel: 'silent',
      dataDir,
      // The limiter still runs on every call (its cost is part of what is measured); the
      // budget is only so large that the load never hits it.
      ipRateLimit: { points: 1_000_000_000, durationSeconds: 60 },
      auth: benchAuthConfig(),
      // 600 sends per minute per account by default; the messaging load sends far more.
      messaging: { ...base.messaging, sendLimit: { points: 1_000_000_000, durationSeconds: 60 } },
      // 30 call starts per minute per account and 300 signals per minute per call and device
      // by default; the signalling load starts ~16 calls a minute per caller at 1000/min.
      calls: {
        ...base.calls,
        startLimit: { points: 1_000_000_000, durationSeconds: 60 },
        signalLimit: { points: 1_000_000_000, durationSeconds: 60 },
      },
    }),
  ).catch((err: unknown) => {
    removeDataDir();
    throw err;
  });
  return {
    endpoints: {
      httpUrl: `${server.trpcUrl}/system.info`,
      wsUrl: server.wsUrl,
      loginUrl: `${server.trpcUrl}/auth.login`,
      trpcUrl: server.trpcUrl,
    },
    // The server's hasher is createPasswordHasher(config.auth.argon2) with its default cap.
    argon2: {
      ...server.config.auth.argon2,
      concurrency: availableParallelism(),
      version: argon2Version(),
    },
    close: async () => {
      await server.shutdown();
      removeDataDir();
    },
  };
}

const kind = process.argv[2];
if (
  kind !== 'raw' &&
  kind !== 'mvp' &&
  kind !== 'raw-login' &&
  kind !== 'raw-messaging' &&
  kind !== 'raw-signalling' &&
  kind !== 'trpc-messaging' &&
  kind !== 'trpc-signalling'
)
  throw new Error(`unknown target kind: ${kind}`);

// Every side runs as the server's start command runs it (main.ts): the threads beside the main
// one below it. Raw, floor and MVP alike, as with the Node flags; the environment's
// MVP_BACKGROUND_THREAD_NICE (0: none) applies here too.
yieldBackgroundThreads(backgroundThreadNice());

// Enabled before the server starts and for the whole life of the process; the parent resets
// it at the start of a round and reads it at the end.
const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
histogram.enable();
const ms = (ns: number) => ns / 1e6;
const readLoopDelay = (): LoopDelay => ({
  resolutionMs: LOOP_DELAY_RESOLUTION_MS,
  count: histogram.count,
  minMs: ms(histogram.min),
  meanMs: ms(histogram.mean),
  p50Ms: ms(histogram.percentile(50)),
  p99Ms: ms(histogram.percentile(99)),
  maxMs: ms(histogram.max),
});

const noGc = (): GcPauses => ({
  scavenges: 0,
  scavengeMs: 0,
  longestScavengeMs: 0,
  others: 0,
  otherMs: 0,
  longestOtherMs: 0,
});
let gc = noGc();
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    // Node's gc entries carry the kind in `detail`, which @types/node does not declare here.
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.scavenges++;
      gc.scavengeMs += entry.duration;
      gc.longestScavengeMs = Math.max(gc.longestScavengeMs, entry.duration);
    } else {
      gc.others++;
      gc.otherMs += entry.duration;
      gc.longestOtherMs = Math.max(gc.longestOtherMs, entry.duration);
    }
  }
}).observe({ entryTypes: ['gc'] });

let cpuAtReset = process.cpuUsage();
let eluAtReset = performance.eventLoopUtilization();
const readStats = (): TargetStats => {
  const cpu = process.cpuUsage(cpuAtReset);
  return {
    loopDelay: readLoopDelay(),
    gc: { ...gc },
    cpuMs: (cpu.user + cpu.system) / 1000,
    loopActiveMs: performance.eventLoopUtilization(eluAtReset).active,
  };
};

const target = await start(kind);

process.on('message', (message: TargetStop | TargetStatsRequest) => {
  if (message.type === 'stats') {
    const stats = readStats();
    if (message.reset) {
      histogram.reset();
      gc = noGc();
      cpuAtReset = process.cpuUsage();
      eluAtReset = performance.eventLoopUtilization();
    }
    process.send?.({ type: 'stats', id: message.id, stats } satisfies TargetStatsReply);
    return;
  }
  if (message.type !== 'stop') return;
  histogram.disable();
  void target.close().finally(() => process.exit(0));
});
// If the parent dies mid-run, do not linger holding a port.
process.on('disconnect', () => process.exit(0));

process.send?.({
  type: 'ready',
  endpoints: target.endpoints,
  argon2: target.argon2,
} satisfies TargetReady);
