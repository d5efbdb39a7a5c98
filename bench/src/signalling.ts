import { warmupRuns, type BenchConfig } from './config';
import {
  ratios,
  shapeOf,
  sideSummary,
  orderOf,
  gcProgress,
  longestGcPauseMs,
  statsWindow,
  type Log,
  type StatsWindow,
} from './messaging';
import { callHttp, randomCiphertext, registerUsers, type BenchUser } from './messagingSetup';
import type { SignallingBaselinePayload } from './signallingBaseline';
import {
  PHASE_MEANING,
  PHASES,
  probeSetup,
  runSignallingLoad,
  type Capture,
  type CallPair,
  type CallUser,
  type SignallingPayloads,
  type SignallingRound,
} from './signallingLoad';
import { median, rounded } from './stats';
import { startTarget, type Target, type TargetStats } from './targets';

/** The goal (issue 7); reported, never asserted. */
export const SIGNALLING_GOAL = { setupP99RatioMax: 2 };

/** A tRPC query over HTTP GET (no input), as the SDK's HTTP link sends it. */
async function queryHttp(trpcUrl: string, path: string, token: string): Promise<unknown> {
  const res = await fetch(`${trpcUrl}/${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  const answer = JSON.parse(text) as { result?: { data?: { json?: unknown } }; error?: unknown };
  if (res.status !== 200 || answer.error !== undefined)
    throw new Error(`${path}: ${res.status} ${text.slice(0, 300)}`);
  return answer.result?.data?.json;
}

async function withDevice(trpcUrl: string, user: BenchUser): Promise<CallUser> {
  const { sessions } = (await queryHttp(trpcUrl, 'sessions.list', user.token)) as {
    sessions: { current: boolean; device: { id: string } }[];
  };
  const current = sessions.find((s) => s.current);
  if (!current) throw new Error('sessions.list: no current session');
  return { ...user, deviceId: current.device.id };
}

/**
 * Pairs `[users[2i], users[2i+1]]`, befriended (each requests the other: a mutual request is
 * accepted), with each one's device id. The server does not require contacts to call; people
 * who call each other usually are.
 */
async function callPairs(trpcUrl: string, users: BenchUser[]): Promise<CallPair[]> {
  const pairs: CallPair[] = [];
  for (let i = 0; i + 1 < users.length; i += 2) {
    const [a, b] = [users[i]!, users[i + 1]!];
    await callHttp(trpcUrl, 'contacts.request', { userId: b.userId }, a.token);
    await callHttp(trpcUrl, 'contacts.request', { userId: a.userId }, b.token);
    pairs.push({ caller: await withDevice(trpcUrl, a), callee: await withDevice(trpcUrl, b) });
  }
  return pairs;
}

/** A relay baseline (`raw-signalling` or its tRPC floor) that knows the pairs' tokens. */
function startRelay(kind: 'raw-signalling' | 'trpc-signalling', pairs: CallPair[]) {
  const devices: SignallingBaselinePayload['devices'] = {};
  for (const p of pairs)
    for (const u of [p.caller, p.callee])
      devices[u.token] = { userId: u.userId, deviceId: u.deviceId };
  return startTarget(kind, { devices } satisfies SignallingBaselinePayload);
}

/** The raw relay, tRPC's floor (the same relay served through tRPC) and the MVP. */
type SignalSide = 'raw' | 'floor' | 'mvp';
const SIDES: SignalSide[] = ['raw', 'floor', 'mvp'];

/**
 * Before measuring: one full setup through each side. Each end must receive the same call
 * events as on the raw side, as many of each, of the same JSON shape and, but for seq digits,
 * the same size; the answers likewise. Answers the MVP's frame sizes.
 */
async function probeAll(
  targets: Record<SignalSide, Target>,
  pair: CallPair,
  payloads: SignallingPayloads,
) {
  const byKind = (c: Capture) => {
    const kinds = new Map<string, string[]>();
    const add = (kind: string, text: string) => kinds.set(kind, [...(kinds.get(kind) ?? []), text]);
    for (const f of c.caller) add(`caller ${f.type}`, f.text);
    for (const f of c.callee) add(`callee ${f.type}`, f.text);
    for (const a of c.answers) add(`answer ${a.path}`, a.text);
    return kinds;
  };
  const r = byKind(await probeSetup(targets.raw.url('wsUrl'), pair, payloads));
  const sizes: Record<string, { bytes: number; count: number }> = {};
  for (const side of ['floor', 'mvp'] as const) {
    const m = byKind(await probeSetup(targets[side].url('wsUrl'), pair, payloads));
    for (const kind of new Set([...m.keys(), ...r.keys()])) {
      const [a, b] = [r.get(kind) ?? [], m.get(kind) ?? []];
      if (a.length !== b.length)
        throw new Error(`raw and ${side} differ: ${kind} ×${a.length} (raw) vs ×${b.length}`);
      const [x, y] = [a[0]!, b[0]!];
      if (shapeOf(x) !== shapeOf(y) || Math.abs(x.length - y.length) > 12)
        throw new Error(`raw and ${side} ${kind} differ:\n  raw: ${x}\n  ${side}: ${y}`);
      if (side === 'mvp') sizes[kind] = { bytes: y.length, count: b.length };
    }
  }
  return sizes;
}

const ms3 = (v: number) => rounded(v, 3);

function sideReport(rounds: SignallingRound[], stats: TargetStats[]) {
  return {
    ...sideSummary(rounds, 'setupsPerS'),
    phases: Object.fromEntries(
      PHASES.map((phase) => [
        phase,
        {
          p50Ms: ms3(median(rounds.map((r) => r.phases[phase].p50Ms))),
          p99Ms: ms3(median(rounds.map((r) => r.phases[phase].p99Ms))),
        },
      ]),
    ),
    /** The target's CPU time (whole process) per completed setup, median of rounds. */
    cpuMsPerSetup: ms3(median(stats.map((s, i) => s.cpuMs / (rounds[i]?.requests ?? NaN)))),
    /** Event-loop delay p99 in the target (10 ms timer: ~10 when idle), median of rounds. */
    loopDelayP99Ms: ms3(median(stats.map((s) => s.loopDelay.p99Ms))),
    /** Per round: the target's scavenges, its other GC pauses, and the longest pause (ms). */
    scavenges: stats.map((s) => s.gc.scavenges),
    otherGcPauses: stats.map((s) => s.gc.others),
    longestGcPauseMs: stats.map((s) => rounded(longestGcPauseMs(s), 1)),
  };
}

/**
 * Scenario `signalling` (issue 7): full call setups on the embedded MVP server (SQLite in memory,
 * in-process bus) against the raw signalling relay, open loop at a fixed rate over many pairs.
 */
export async function runSignalling(config: BenchConfig, log: Log) {
  const s = config.signalling;
  const ratePerS = s.ratePerMinute / 60;
  const targets: Target[] = [];
  try {
    const mvp = await startTarget('mvp', { embeddedDb: config.embeddedDb });
    targets.push(mvp);
    const trpcUrl = mvp.url('trpcUrl');
    log(`signalling setup: ${2 * s.pairs} accounts, ${s.pairs} befriended caller/callee pairs`);
    const pairs = await callPairs(trpcUrl, await registerUsers(trpcUrl, 2 * s.pairs));
    const raw = await startRelay('raw-signalling', pairs);
    targets.push(raw);
    const floor = await startRelay('trpc-signalling', pairs);
    targets.push(floor);
    const payloads: SignallingPayloads = {
      offer: randomCiphertext(s.sdpBytes),
      answer: randomCiphertext(s.sdpBytes),
      candidates: Array.from({ length: s.candidates }, () => randomCiphertext(s.candidateBytes)),
    };
    const bySide: Record<SignalSide, Target> = { raw, floor, mvp };
    const frameBytes = await probeAll(bySide, pairs[0]!, payloads);
    const load = (side: SignalSide, durationS: number, window?: StatsWindow) =>
      runSignallingLoad({
        url: bySide[side].url('wsUrl'),
        pairs,
        ratePerS,
        durationS,
        payloads,
        window,
      });

    for (const side of SIDES) {
      for (const seconds of warmupRuns(config)) {
        log(`warm-up ${side}-signalling ${seconds}s`);
        await load(side, seconds);
      }
    }
    const results: Record<SignalSide, SignallingRound[]> = { raw: [], floor: [], mvp: [] };
    const stats: Record<SignalSide, TargetStats[]> = { raw: [], floor: [], mvp: [] };
    for (let round = 0; round < config.rounds; round++) {
      for (const side of orderOf(SIDES, round)) {
        const r = await load(side, s.durationS, statsWindow(bySide[side], stats[side]));
        results[side].push(r);
        const st = stats[side].at(-1)!;
        log(
          `round ${round + 1}/${config.rounds} ${side}-signalling: ${r.requests} setups ` +
            `(${r.rps.toFixed(1)}/s), setup p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms; ` +
            `ring p99 ${r.phases.ring.p99Ms.toFixed(3)} ms, answer p99 ${r.phases.answer.p99Ms.toFixed(3)} ms; ` +
            `target CPU ${(st.cpuMs / r.requests).toFixed(2)} ms/setup, ${gcProgress(st)}`,
        );
      }
    }

    const ratio = ratios({ raw: results.raw, mvp: results.mvp });
    return {
      what:
        `full call setups over ${pairs.length} befriended caller/callee pairs (2 sockets each: ` +
        'one per device, sending mutations and subscribed to sync.events), open loop at ' +
        `${s.ratePerMinute} setups/min, at most one call per pair at a time (a setup goes to ` +
        'the pair free the longest): calls.start with ' +
        `one ${s.sdpBytes} B offer, call.invite at the callee, calls.accept with a ` +
        `${s.sdpBytes} B answer, call.accepted at the caller, ${s.candidates} calls.signal ` +
        `candidates of ${s.candidateBytes} B each way, then calls.hangup (payloads random, base64)`,
      setupTime:
        'from right before the calls.start frame is written to the moment both ends hold all ' +
        "the other's candidates (the caller's are written when call.accepted reaches it, the " +
        "callee's once its calls.accept is answered); hangup is not part of it",
      phases: PHASE_MEANING,
      baseline:
        'raw ws relay in its own process: the same mutations parsed, the call kept in a Map, ' +
        "the MVP's events (same fields and sizes) written to the peer device's socket, the " +
        "MVP's answers; no storage, no busy/block/device checks",
      load: {
        pairs: pairs.length,
        setupsPerMinute: s.ratePerMinute,
        candidatesEachWay: s.candidates,
        sdpBytes: s.sdpBytes,
        candidateBytes: s.candidateBytes,
        roundS: s.durationS,
        rounds: config.rounds,
        warmupS: config.warmupS,
        warmupPasses: config.warmupPasses,
        aggregate: 'median of rounds',
        process: 'each server in its own child process; load generated in the parent',
      },
      frameBytes,
      floorIs:
        "the raw relay's work (same Map, no storage, no checks) served through tRPC as the MVP " +
        "serves it: tRPC's WebSocket adapter, the MVP's transformer, frame encoder and zod " +
        "schemas, tracked events from an async generator, corked socket writes; without the MVP's " +
        'middleware, database, limits or metrics',
      raw: sideReport(results.raw, stats.raw),
      floor: sideReport(results.floor, stats.floor),
      mvp: sideReport(results.mvp, stats.mvp),
      ratio,
      /** floor/raw: what tRPC itself costs; mvp/floor: what the MVP's own work costs on top. */
      floorOverRaw: ratios({ raw: results.raw, mvp: results.floor }),
      mvpOverFloor: ratios({ raw: results.floor, mvp: results.mvp }),
      goal: {
        goal: `setup p99 mvp/raw <= ${SIGNALLING_GOAL.setupP99RatioMax}`,
        value: ratio.p99,
        met: ratio.p99 <= SIGNALLING_GOAL.setupP99RatioMax,
      },
    };
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
  }
}
