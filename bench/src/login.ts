import type { LoginBaselinePayload } from './loginBaseline';
import {
  BENCH_DEVICE,
  BENCH_PASSWORD,
  benchUsername,
  isOkLogin,
  loginBody,
  runLoginLoad,
} from './loginLoad';
import { median, rounded, type RoundResult } from './stats';
import { startTarget, type LoopDelay, type Target } from './targets';

/** The goals; reported, never asserted. */
export const LOGIN_GOALS = { throughputRatioMin: 0.85, loopDelayP99MsMax: 20 };

async function post(url: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, text: await res.text() };
}

/**
 * Setup, not measured: registers `users` accounts on the MVP server (tRPC auth.register, as the
 * SDK does), captures one real login answer, and starts the raw login server with the same
 * accounts, argon2 cost and answer bytes. Stops if the two sides differ in anything but speed.
 */
export async function startLoginTarget(mvp: Target, users: number): Promise<Target> {
  const loginUrl = mvp.url('loginUrl');
  const registerUrl = loginUrl.replace(/auth\.login$/, 'auth.register');
  const identifiers = Array.from({ length: users }, (_, i) => benchUsername(i));
  // A few at a time: the server hashes at most `availableParallelism()` at once anyway.
  for (let i = 0; i < identifiers.length; i += 4) {
    await Promise.all(
      identifiers.slice(i, i + 4).map(async (username) => {
        const { status, text } = await post(
          registerUrl,
          JSON.stringify({
            json: {
              username,
              password: BENCH_PASSWORD,
              displayName: 'Bench',
              device: BENCH_DEVICE,
            },
          }),
        );
        if (status !== 200 || !isOkLogin(text))
          throw new Error(`register ${username}: ${status} ${text.slice(0, 300)}`);
      }),
    );
  }

  const mvpAnswer = await post(loginUrl, loginBody(identifiers[0]!));
  if (mvpAnswer.status !== 200 || !isOkLogin(mvpAnswer.text))
    throw new Error(`MVP login: ${mvpAnswer.status} ${mvpAnswer.text.slice(0, 300)}`);
  if (!mvp.argon2) throw new Error('the MVP target did not report its argon2 parameters');

  const { memoryCost, timeCost, parallelism } = mvp.argon2;
  const payload: LoginBaselinePayload = {
    argon2: { memoryCost, timeCost, parallelism },
    identifiers,
    password: BENCH_PASSWORD,
    responseBody: mvpAnswer.text,
  };
  const raw = await startTarget('raw-login', payload);
  try {
    const rawAnswer = await post(raw.url('loginUrl'), loginBody(identifiers[0]!));
    if (rawAnswer.status !== 200 || rawAnswer.text.length !== mvpAnswer.text.length)
      throw new Error(`raw login answered ${rawAnswer.status} ${rawAnswer.text.slice(0, 300)}`);
    const keys = ['memoryCost', 'timeCost', 'parallelism', 'concurrency', 'version'] as const;
    if (keys.some((key) => raw.argon2?.[key] !== mvp.argon2?.[key])) {
      throw new Error(
        `argon2 differs: raw ${JSON.stringify(raw.argon2)}, mvp ${JSON.stringify(mvp.argon2)}`,
      );
    }
  } catch (err) {
    await raw.stop();
    throw err;
  }
  return raw;
}

export type LoginRound = RoundResult & {
  loopDelay: LoopDelay;
  cpuMsPerRequest: number;
  mainThreadMsPerRequest: number;
};

/**
 * One login round against one target: the target's event-loop delay histogram is reset at the
 * start and read at the end, so it covers exactly the storm. Afterwards the target is given
 * time to finish the logins still queued (autocannon stops sending, not the server working),
 * so that the other side's next round does not share the CPU with this one's tail.
 */
export async function loginRound(
  target: Target,
  options: { connections: number; durationS: number; users: number },
): Promise<LoginRound> {
  const identifiers = Array.from({ length: options.users }, (_, i) => benchUsername(i));
  await target.stats({ reset: true });
  const result = await runLoginLoad(target.url('loginUrl'), {
    connections: options.connections,
    durationS: options.durationS,
    identifiers,
  });
  const { loopDelay, cpuMs, loopActiveMs } = await target.stats({ reset: true });
  await new Promise((resolve) => setTimeout(resolve, Math.max(250, 2 * result.p99Ms)));
  return {
    ...result,
    loopDelay,
    cpuMsPerRequest: cpuMs / result.requests,
    mainThreadMsPerRequest: loopActiveMs / result.requests,
  };
}

function loopDelaySummary(rounds: LoginRound[]) {
  const p99s = rounds.map((r) => r.loopDelay.p99Ms);
  const resolutionMs = rounds[0]?.loopDelay.resolutionMs ?? Number.NaN;
  return {
    resolutionMs,
    p99Ms: rounded(median(p99s), 3),
    p99OverResolutionMs: rounded(median(p99s) - resolutionMs, 3),
    p50Ms: rounded(median(rounds.map((r) => r.loopDelay.p50Ms)), 3),
    maxMs: rounded(median(rounds.map((r) => r.loopDelay.maxMs)), 3),
    worstRoundP99Ms: rounded(Math.max(...p99s), 3),
  };
}

function sideSummary(rounds: LoginRound[], rateName: 'verifiesPerS' | 'loginsPerS') {
  return {
    [rateName]: rounded(median(rounds.map((r) => r.rps)), 1),
    p50Ms: rounded(median(rounds.map((r) => r.p50Ms)), 3),
    p99Ms: rounded(median(rounds.map((r) => r.p99Ms)), 3),
    eventLoopDelay: loopDelaySummary(rounds),
    // Whole-process CPU (main thread + threadpool) per answered request; the MVP's excess over
    // the raw side is its main-thread work per login (tRPC, validation, SQL, signing tokens).
    cpuMsPerRequest: rounded(median(rounds.map((r) => r.cpuMsPerRequest)), 2),
    // Event-loop busy time per answered request: the part that is not argon2.
    mainThreadMsPerRequest: rounded(median(rounds.map((r) => r.mainThreadMsPerRequest)), 2),
    rounds: rounds.map((r) => ({
      [rateName]: rounded(r.rps, 1),
      p50Ms: rounded(r.p50Ms, 3),
      p99Ms: rounded(r.p99Ms, 3),
      requests: r.requests,
      eventLoopDelayP99Ms: rounded(r.loopDelay.p99Ms, 3),
      eventLoopDelayMaxMs: rounded(r.loopDelay.maxMs, 3),
      cpuMsPerRequest: rounded(r.cpuMsPerRequest, 2),
      mainThreadMsPerRequest: rounded(r.mainThreadMsPerRequest, 2),
    })),
  };
}

/** The `login` section of the report. */
export function loginReport(
  results: { raw: LoginRound[]; mvp: LoginRound[] },
  context: { mvp: Target; connections: number; users: number },
) {
  const raw = sideSummary(results.raw, 'verifiesPerS');
  const mvp = sideSummary(results.mvp, 'loginsPerS');
  const rawRate = median(results.raw.map((r) => r.rps));
  const mvpRate = median(results.mvp.map((r) => r.rps));
  const throughput = rounded(mvpRate / rawRate, 3);
  const loopDelayP99Ms = mvp.eventLoopDelay.p99Ms;
  return {
    request:
      'auth.login as a tRPC mutation over HTTP (POST /trpc/auth.login, superjson body), ' +
      'accounts cycled; only 200 answers with status "ok" count',
    baseline:
      'node:http server in its own process: parse the body, one argon2.verify against the ' +
      "account's stored hash, answer the captured MVP login bytes",
    argon2: context.mvp.argon2,
    connections: context.connections,
    users: context.users,
    raw,
    mvp,
    ratio: {
      throughput,
      p50: rounded(mvp.p50Ms / raw.p50Ms, 3),
      p99: rounded(mvp.p99Ms / raw.p99Ms, 3),
      // Round by round (raw and MVP of the same round ran back to back): the spread to expect.
      throughputPerRound: results.mvp.map((r, i) =>
        rounded(r.rps / (results.raw[i]?.rps ?? Number.NaN), 3),
      ),
    },
    goals: {
      throughputRatio: {
        goal: `>= ${LOGIN_GOALS.throughputRatioMin}`,
        value: throughput,
        met: throughput >= LOGIN_GOALS.throughputRatioMin,
      },
      eventLoopDelayP99Ms: {
        goal: `< ${LOGIN_GOALS.loopDelayP99MsMax}`,
        value: loopDelayP99Ms,
        met: loopDelayP99Ms < LOGIN_GOALS.loopDelayP99MsMax,
        measured:
          'monitorEventLoopDelay({ resolution: 10 }) in the MVP server process, reset at round ' +
          'start, p99 read at round end, median of rounds; the histogram value includes the ' +
          '10 ms timer period (an idle loop reads ~10 ms), the goal is checked on it as is',
      },
    },
  };
}
