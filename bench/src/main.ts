/**
 * `npm run bench`: system.info on the MVP server against raw node:http / ws servers answering the
 * same bytes, over HTTP and WebSocket, auth.login against a raw argon2 verify server, and the
 * messaging scenarios (messaging.ts, messagingMysql.ts), the Double Ratchet against its cipher
 * (crypto.ts) and call signalling against a raw relay (signalling.ts), in one run; `--only`
 * picks some.
 * Prints one JSON document on stdout; progress goes to stderr so the output can be piped as is.
 */
import { SERVER_NODE_FLAGS } from '@mvp/server/nodeFlags';
import { benchConfigFromEnv, machineInfo, warmupRuns, type BenchConfig } from './config';
import { runCrypto } from './crypto';
import { runHttpLoad } from './httpLoad';
import { loginReport, loginRound, startLoginTarget, type LoginRound } from './login';
import { runEmbeddedMessaging } from './messaging';
import { runMysqlMessaging } from './messagingMysql';
import { runSignalling } from './signalling';
import { assertSameShape, baselinePayloadFrom, sample } from './probe';
import { median, rounded, type RoundResult } from './stats';
import { startTarget, type Target, type TargetEndpoints } from './targets';
import { runWsLoad } from './wsLoad';

type Transport = 'http' | 'ws';
type Side = 'raw' | 'mvp';

function load(transport: Transport, target: Target, config: BenchConfig, durationS: number) {
  return transport === 'http'
    ? runHttpLoad(target.url('httpUrl'), { connections: config.httpConnections, durationS })
    : runWsLoad(target.url('wsUrl'), {
        sockets: config.wsSockets,
        inFlight: config.wsInFlight,
        durationS,
      });
}

const loginLoad = (target: Target, config: BenchConfig, durationS: number) =>
  loginRound(target, {
    connections: config.loginConnections,
    durationS,
    users: config.loginUsers,
  });

const infoEndpoints = (target: Target): Pick<TargetEndpoints, 'httpUrl' | 'wsUrl'> => ({
  httpUrl: target.url('httpUrl'),
  wsUrl: target.url('wsUrl'),
});

function summary(rounds: RoundResult[]) {
  return {
    rps: rounded(median(rounds.map((r) => r.rps)), 0),
    p50Ms: rounded(median(rounds.map((r) => r.p50Ms)), 3),
    p99Ms: rounded(median(rounds.map((r) => r.p99Ms)), 3),
    rounds: rounds.map((r) => ({
      rps: rounded(r.rps, 0),
      p50Ms: rounded(r.p50Ms, 3),
      p99Ms: rounded(r.p99Ms, 3),
      requests: r.requests,
    })),
  };
}

type Log = (line: string) => void;

async function main(): Promise<void> {
  const config = benchConfigFromEnv();
  const log: Log = (line) => process.stderr.write(`[bench] ${line}\n`);
  log(`scenarios: ${[...config.only].join(', ')}`);
  const missing = SERVER_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
  if (missing.length > 0)
    log(`warning: the load generator runs without ${missing.join(' ')} (use npm run bench)`);
  // First, while no target process exists: it is pure CPU in this process.
  const crypto = config.only.has('crypto') ? await runCrypto(config, log) : null;
  const base =
    config.only.has('info') || config.only.has('login') ? await runInfoAndLogin(config, log) : {};
  const embedded = await runEmbeddedMessaging(config, log);
  const mysql = await runMysqlMessaging(config, log);
  const signalling = config.only.has('signalling') ? await runSignalling(config, log) : null;
  const report = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    selected: [...config.only],
    embeddedDb: config.embeddedDb,
    ...base,
    messaging: {
      config: {
        ...config.messaging,
        mysqlUrl: config.messaging.mysqlUrl.replace(/\/\/[^@]*@/, '//<credentials>@'),
        rounds: config.rounds,
        durationS: config.durationS,
        warmupS: config.warmupS,
        warmupPasses: config.warmupPasses,
        aggregate: 'median of rounds',
        process: 'each server in its own child process; load generated in the parent',
      },
      ...embedded,
      ...mysql,
    },
    crypto,
    signalling,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

/** The `info` (system.info over HTTP and WS) and `login` scenarios, on one MVP target. */
async function runInfoAndLogin(config: BenchConfig, log: Log) {
  const runInfo = config.only.has('info');
  const runLogin = config.only.has('login');
  const mvp = await startTarget('mvp', { embeddedDb: config.embeddedDb });
  const targets: Target[] = [mvp];
  try {
    const mvpSample = await sample(infoEndpoints(mvp));
    const raw = await startTarget('raw', baselinePayloadFrom(mvpSample));
    targets.push(raw);
    assertSameShape(await sample(infoEndpoints(raw)), mvpSample);
    const bySide: Record<Side, Target> = { raw, mvp };

    let rawLogin = mvp;
    if (runLogin) {
      log(`login setup: registering ${config.loginUsers} accounts, starting the raw login server`);
      rawLogin = await startLoginTarget(mvp, config.loginUsers);
      targets.push(rawLogin);
    }
    const loginBySide: Record<Side, Target> = { raw: rawLogin, mvp };

    const transports: Transport[] = runInfo ? ['http', 'ws'] : [];
    for (const transport of transports) {
      for (const target of [raw, mvp]) {
        for (const seconds of warmupRuns(config)) {
          log(`warm-up ${target.kind}-${transport} ${seconds}s`);
          await load(transport, target, config, seconds);
        }
      }
    }
    for (const side of runLogin ? (['raw', 'mvp'] as const) : []) {
      for (const seconds of warmupRuns(config)) {
        log(`warm-up ${side}-login ${seconds}s`);
        await loginLoad(loginBySide[side], config, seconds);
      }
    }

    const results: Record<Transport, Record<Side, RoundResult[]>> = {
      http: { raw: [], mvp: [] },
      ws: { raw: [], mvp: [] },
    };
    const loginResults: Record<Side, LoginRound[]> = { raw: [], mvp: [] };
    // Raw and MVP alternate, and who goes first flips every round (ABBA), so slow drift of the
    // machine (thermal, noisy neighbours, GC of the parent) lands on both sides alike.
    for (let round = 0; round < config.rounds; round++) {
      const order: Side[] = round % 2 === 0 ? ['raw', 'mvp'] : ['mvp', 'raw'];
      const progress = (name: string, result: RoundResult, unit: string) =>
        `round ${round + 1}/${config.rounds} ${name}: ${result.rps.toFixed(unit === 'req/s' ? 0 : 1)} ${unit}, ` +
        `p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms`;
      for (const transport of transports) {
        for (const side of order) {
          const result = await load(transport, bySide[side], config, config.durationS);
          results[transport][side].push(result);
          log(progress(`${side}-${transport}`, result, 'req/s'));
        }
      }
      for (const side of runLogin ? order : []) {
        const result = await loginLoad(loginBySide[side], config, config.durationS);
        loginResults[side].push(result);
        log(
          `${progress(`${side}-login`, result, side === 'raw' ? 'verifies/s' : 'logins/s')}, ` +
            `event-loop delay p99 ${result.loopDelay.p99Ms.toFixed(3)} ms, CPU ${result.cpuMsPerRequest.toFixed(1)} ms/request (main thread ${result.mainThreadMsPerRequest.toFixed(2)})`,
        );
      }
    }

    const scenarios = Object.fromEntries(
      transports.map((transport) => {
        const a = summary(results[transport].raw);
        const b = summary(results[transport].mvp);
        return [
          transport,
          {
            raw: a,
            mvp: b,
            // mvp/raw: throughput below 1 and latency above 1 are what the MVP layers cost.
            ratio: {
              throughput: rounded(b.rps / a.rps, 3),
              p50: rounded(b.p50Ms / a.p50Ms, 3),
              p99: rounded(b.p99Ms / a.p99Ms, 3),
            },
          },
        ];
      }),
    );

    return {
      config: {
        durationS: config.durationS,
        warmupS: config.warmupS,
        warmupPasses: config.warmupPasses,
        rounds: config.rounds,
        aggregate: 'median of rounds',
        process: 'each server in its own child process; load generated in the parent',
        http: {
          tool: 'autocannon',
          connections: config.httpConnections,
          pipelining: 1,
          keepAlive: true,
        },
        ws: {
          tool: 'closed-loop ws client',
          sockets: config.wsSockets,
          inFlightPerSocket: config.wsInFlight,
        },
        request: 'system.info (tRPC query)',
        responseBytes: { http: mvpSample.httpBody.length, ws: mvpSample.wsFrame.length },
        login: {
          tool: 'autocannon (POST)',
          connections: config.loginConnections,
          users: config.loginUsers,
          settleAfterRound:
            'max(250 ms, 2 × round p99), so queued logins finish before the other side',
        },
      },
      scenarios: runInfo ? scenarios : null,
      login: runLogin
        ? loginReport(loginResults, {
            mvp,
            connections: config.loginConnections,
            users: config.loginUsers,
          })
        : null,
    };
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
