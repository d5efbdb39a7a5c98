import os from 'node:os';

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
};

function numberFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return value;
}

export function benchConfigFromEnv(): BenchConfig {
  return {
    durationS: numberFromEnv('BENCH_DURATION_S', 3, 0.5),
    warmupS: numberFromEnv('BENCH_WARMUP_S', 2, 0),
    rounds: Math.round(numberFromEnv('BENCH_ROUNDS', 3, 1)),
    httpConnections: Math.round(numberFromEnv('BENCH_CONNECTIONS', 16, 1)),
    wsSockets: Math.round(numberFromEnv('BENCH_WS_SOCKETS', 16, 1)),
    wsInFlight: Math.round(numberFromEnv('BENCH_WS_IN_FLIGHT', 4, 1)),
    loginConnections: Math.round(
      numberFromEnv('BENCH_LOGIN_CONNECTIONS', 2 * os.availableParallelism(), 1),
    ),
    loginUsers: Math.round(numberFromEnv('BENCH_LOGIN_USERS', 32, 1)),
  };
}

/**
 * The target processes get the parent's environment plus NODE_ENV=production: libraries (tRPC
 * among them) do extra dev-only work otherwise, which is not what a deployment pays.
 */
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
  };
}
