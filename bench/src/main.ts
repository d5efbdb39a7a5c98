/**
 * `npm run bench`: system.info on the MVP server against raw node:http / ws servers answering the
 * same bytes, over HTTP and WebSocket, in one run. Prints one JSON document on stdout; progress
 * goes to stderr so the output can be piped as is.
 */
import { benchConfigFromEnv, machineInfo, type BenchConfig } from './config';
import { runHttpLoad } from './httpLoad';
import { assertSameShape, baselinePayloadFrom, sample } from './probe';
import { median, rounded, type RoundResult } from './stats';
import { startTarget, type Target, type TargetKind } from './targets';
import { runWsLoad } from './wsLoad';

type Transport = 'http' | 'ws';

function load(transport: Transport, target: Target, config: BenchConfig, durationS: number) {
  return transport === 'http'
    ? runHttpLoad(target.httpUrl, { connections: config.httpConnections, durationS })
    : runWsLoad(target.wsUrl, {
        sockets: config.wsSockets,
        inFlight: config.wsInFlight,
        durationS,
      });
}

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

async function main(): Promise<void> {
  const config = benchConfigFromEnv();
  const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

  const mvp = await startTarget('mvp');
  const targets: Target[] = [mvp];
  try {
    const mvpSample = await sample(mvp);
    const raw = await startTarget('raw', baselinePayloadFrom(mvpSample));
    targets.push(raw);
    assertSameShape(await sample(raw), mvpSample);
    const byKind: Record<TargetKind, Target> = { raw, mvp };

    const transports: Transport[] = ['http', 'ws'];
    if (config.warmupS > 0) {
      for (const transport of transports) {
        for (const target of [raw, mvp]) {
          log(`warm-up ${target.kind}-${transport} ${config.warmupS}s`);
          await load(transport, target, config, config.warmupS);
        }
      }
    }

    const results: Record<Transport, Record<TargetKind, RoundResult[]>> = {
      http: { raw: [], mvp: [] },
      ws: { raw: [], mvp: [] },
    };
    // Raw and MVP alternate, and who goes first flips every round (ABBA), so slow drift of the
    // machine (thermal, noisy neighbours, GC of the parent) lands on both sides alike.
    for (let round = 0; round < config.rounds; round++) {
      const order: TargetKind[] = round % 2 === 0 ? ['raw', 'mvp'] : ['mvp', 'raw'];
      for (const transport of transports) {
        for (const kind of order) {
          const result = await load(transport, byKind[kind], config, config.durationS);
          results[transport][kind].push(result);
          log(
            `round ${round + 1}/${config.rounds} ${kind}-${transport}: ${Math.round(result.rps)} req/s, ` +
              `p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms`,
          );
        }
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

    const report = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      config: {
        durationS: config.durationS,
        warmupS: config.warmupS,
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
      },
      scenarios,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
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
