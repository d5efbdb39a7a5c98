import { warmupRuns, type BenchConfig } from './config';
import {
  createGroup,
  createPairs,
  randomCiphertext,
  registerUsers,
  type BenchConversation,
  type BenchUser,
} from './messagingSetup';
import { probeSend, runFanoutLoad, runRelayLoad } from './messagingLoad';
import type { MessagingBaselinePayload } from './messagingBaseline';
import { median, rounded, type RoundResult } from './stats';
import { startTarget, type Target, type TargetStats } from './targets';

/** The issue's goals (issue 5, item 12); reported, never asserted. */
export const MESSAGING_GOALS = {
  relayP99RatioMax: 3,
  fanoutThroughputRatioMin: 0.3,
  persistThroughputRatioMin: 0.5,
  clusterAddedP99MsMax: 2,
};

export type Side = 'raw' | 'mvp';
export type Log = (line: string) => void;

/** Median of rounds, every round kept; `rate` names the throughput figure. */
export function sideSummary(rounds: RoundResult[], rate: string) {
  return {
    [rate]: rounded(median(rounds.map((r) => r.rps)), 1),
    p50Ms: rounded(median(rounds.map((r) => r.p50Ms)), 3),
    p99Ms: rounded(median(rounds.map((r) => r.p99Ms)), 3),
    rounds: rounds.map((r) => ({
      [rate]: rounded(r.rps, 1),
      p50Ms: rounded(r.p50Ms, 3),
      p99Ms: rounded(r.p99Ms, 3),
      count: r.requests,
    })),
  };
}

export function ratios(results: Record<Side, RoundResult[]>) {
  const m = (side: Side, key: 'rps' | 'p50Ms' | 'p99Ms') =>
    median(results[side].map((r) => r[key]));
  return {
    throughput: rounded(m('mvp', 'rps') / m('raw', 'rps'), 3),
    p50: rounded(m('mvp', 'p50Ms') / m('raw', 'p50Ms'), 3),
    p99: rounded(m('mvp', 'p99Ms') / m('raw', 'p99Ms'), 3),
    p99PerRound: results.mvp.map((r, i) => rounded(r.p99Ms / (results.raw[i]?.p99Ms ?? NaN), 3)),
    throughputPerRound: results.mvp.map((r, i) => rounded(r.rps / (results.raw[i]?.rps ?? NaN), 3)),
  };
}

/** ABBA: the sides take turns in the given order, reversed every other round. */
export const orderOf = <T>(sides: T[], round: number): T[] =>
  round % 2 === 0 ? sides : [...sides].reverse();

export const progress = (name: string, r: RoundResult, unit: string) =>
  `${name}: ${r.rps.toFixed(1)} ${unit}, p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms`;

/**
 * The raw messaging server for these accounts and conversations, or (`trpc-messaging`) its work
 * served through tRPC: tRPC's floor.
 */
export function startRawMessaging(
  conversations: BenchConversation[],
  mysql?: MessagingBaselinePayload['mysql'],
  kind: 'raw-messaging' | 'trpc-messaging' = 'raw-messaging',
): Promise<Target> {
  const users: Record<string, string> = {};
  const members: Record<string, string[]> = {};
  for (const c of conversations) {
    members[c.id] = c.members.map((m) => m.userId);
    for (const m of c.members) users[m.token] = m.userId;
  }
  return startTarget(kind, {
    users,
    conversations: members,
    ...(mysql ? { mysql } : {}),
  } satisfies MessagingBaselinePayload);
}

/** Keys and nesting of a JSON text, every value blanked. */
export const shapeOf = (json: string) =>
  JSON.stringify(JSON.parse(json), (_k, v: unknown) =>
    v !== null && typeof v === 'object' ? v : typeof v,
  );

/**
 * Before measuring: one message through each side. The delivered frames and the answers must
 * have the same shape as the raw side's and, but for the digits of seqs and stream ids, the same
 * size. Answers the MVP's sizes.
 */
export async function probeBoth(
  raw: Target,
  others: Partial<Record<'floor' | 'mvp', Target>>,
  conversation: BenchConversation,
  ciphertext: string,
) {
  const rawProbe = await probeSend(raw.url('wsUrl'), conversation, ciphertext);
  let sizes = { deliveredBytes: 0, answerBytes: 0 };
  for (const [side, target] of Object.entries(others)) {
    const probe = await probeSend(target.url('wsUrl'), conversation, ciphertext);
    const frames = [
      ['delivered frame', rawProbe.delivered, probe.delivered],
      ['send answer', JSON.stringify(rawProbe.answer), JSON.stringify(probe.answer)],
    ] as const;
    for (const [name, a, b] of frames) {
      if (shapeOf(a) !== shapeOf(b) || Math.abs(a.length - b.length) > 12)
        throw new Error(`raw and ${side} ${name} differ:\n  raw: ${a}\n  ${side}: ${b}`);
    }
    if (side === 'mvp')
      sizes = { deliveredBytes: probe.delivered.length, answerBytes: frames[1][2].length };
  }
  return sizes;
}

const FLOOR_IS =
  "the raw server's sends (counters in memory, no storage, no checks) served through tRPC as " +
  "the MVP serves it: tRPC's WebSocket adapter, the MVP's transformer, frame encoder and zod " +
  "schemas, one shared message.new event per send to every member's sync.events async " +
  "generator, corked socket writes; without the MVP's middleware, database, limits or metrics";

/** A side of (a) and (b): the raw server, tRPC's floor (its work served through tRPC), the MVP. */
type EmbeddedSide = 'raw' | 'floor' | 'mvp';
const EMBEDDED_SIDES: EmbeddedSide[] = ['raw', 'floor', 'mvp'];

/** Reads a target's stats over a load's measured window only, into `into`. */
export type StatsWindow = { open(): Promise<void>; close(): Promise<void> };
export function statsWindow(target: Target, into: TargetStats[]): StatsWindow {
  return {
    open: async () => void (await target.stats({ reset: true })),
    close: async () => void into.push(await target.stats({ reset: true })),
  };
}

const perMessageUs = (s: TargetStats, messages: number) =>
  messages > 0 ? (s.cpuMs * 1000) / messages : Number.NaN;

/**
 * The event loop's longest stall: the longest gap between firings of the 10 ms timer, less the
 * 10 ms it is meant to wait (an idle loop reads ~0).
 */
const longestStallMs = (s: TargetStats) => s.loopDelay.maxMs - s.loopDelay.resolutionMs;

/** The longest GC pause of the window, of any kind (ms). */
export const longestGcPauseMs = (s: TargetStats) =>
  Math.max(s.gc.longestScavengeMs, s.gc.longestOtherMs);

/** A window's GC pauses for a progress line. */
export const gcProgress = (s: TargetStats) =>
  `${s.gc.scavenges} scavenges and ${s.gc.others} other GC pauses, ` +
  `the longest ${longestGcPauseMs(s).toFixed(1)} ms`;

/** A round's target figures, for the progress line: a stall in the round shows here. */
function targetProgress(s: TargetStats, messages: number): string {
  return (
    `target CPU ${perMessageUs(s, messages).toFixed(0)} µs/message, ` +
    `longest event-loop stall ${longestStallMs(s).toFixed(1)} ms, ${gcProgress(s)}`
  );
}

/**
 * Per round, the target's CPU per message, its event loop's longest stall, and its GC pauses:
 * how many scavenges and other collections, and the longest of any kind.
 */
function targetReport(stats: TargetStats[], rounds: RoundResult[]) {
  return {
    cpuUsPerMessage: stats.map((s, i) => rounded(perMessageUs(s, rounds[i]?.requests ?? 0), 0)),
    longestLoopStallMs: stats.map((s) => rounded(longestStallMs(s), 1)),
    scavenges: stats.map((s) => s.gc.scavenges),
    otherGcPauses: stats.map((s) => s.gc.others),
    longestGcPauseMs: stats.map((s) => rounded(longestGcPauseMs(s), 1)),
  };
}

/** The figures of one of (a), (b): the goal's ratio is MVP over raw; the floor splits it. */
function embeddedReport(results: Record<EmbeddedSide, RoundResult[]>) {
  return {
    raw: sideSummary(results.raw, 'deliveriesPerS'),
    floor: sideSummary(results.floor, 'deliveriesPerS'),
    mvp: sideSummary(results.mvp, 'deliveriesPerS'),
    ratio: ratios({ raw: results.raw, mvp: results.mvp }),
    /** floor/raw: what tRPC itself costs; mvp/floor: what the MVP's own work costs on top. */
    floorOverRaw: ratios({ raw: results.raw, mvp: results.floor }),
    mvpOverFloor: ratios({ raw: results.floor, mvp: results.mvp }),
  };
}

/**
 * Scenarios (a) `relay` and (b) `fanout` on the embedded MVP server (SQLite in memory,
 * in-process bus) against the raw messaging server. Sections are null when not selected.
 */
export async function runEmbeddedMessaging(config: BenchConfig, log: Log) {
  const m = config.messaging;
  const relayOn = config.only.has('relay');
  const fanoutOn = config.only.has('fanout');
  if (!relayOn && !fanoutOn) return { relay: null, fanout: null };

  const targets: Target[] = [];
  try {
    const mvp = await startTarget('mvp', { embeddedDb: config.embeddedDb });
    targets.push(mvp);
    const count = Math.max(relayOn ? 2 * m.relayPairs : 0, fanoutOn ? m.groupSize : 0);
    const what = [
      `${count} accounts`,
      ...(relayOn ? [`${m.relayPairs} direct pairs`] : []),
      ...(fanoutOn ? [`a ${m.groupSize}-member group`] : []),
    ];
    log(`messaging setup: ${what.join(', ')}`);
    const users: BenchUser[] = await registerUsers(mvp.url('trpcUrl'), count);
    const pairs = relayOn
      ? await createPairs(mvp.url('trpcUrl'), users.slice(0, 2 * m.relayPairs))
      : [];
    const group = fanoutOn
      ? await createGroup(mvp.url('trpcUrl'), users.slice(0, m.groupSize))
      : undefined;
    const conversations = [...pairs, ...(group ? [group] : [])];
    const raw = await startRawMessaging(conversations);
    targets.push(raw);
    const floor = await startRawMessaging(conversations, undefined, 'trpc-messaging');
    targets.push(floor);
    const ciphertext = randomCiphertext(m.ciphertextBytes);
    const bySide: Record<EmbeddedSide, Target> = { raw, floor, mvp };
    const sizes = await probeBoth(raw, { floor, mvp }, pairs[0] ?? group!, ciphertext);

    const relay = (side: EmbeddedSide, durationS: number, window?: StatsWindow) =>
      runRelayLoad({
        sendUrl: bySide[side].url('wsUrl'),
        receiveUrl: bySide[side].url('wsUrl'),
        conversations: pairs,
        rate: m.relayRate,
        durationS,
        ciphertext,
        window,
      });
    const fanout = (side: EmbeddedSide, durationS: number) =>
      runFanoutLoad({
        url: bySide[side].url('wsUrl'),
        group: group!,
        window: m.fanoutWindow,
        durationS,
        ciphertext,
      });

    for (const side of EMBEDDED_SIDES) {
      for (const seconds of warmupRuns(config)) {
        log(`warm-up ${side} messaging ${seconds}s`);
        if (relayOn) await relay(side, seconds);
        if (fanoutOn) await fanout(side, seconds);
      }
    }
    const relayResults: Record<EmbeddedSide, RoundResult[]> = { raw: [], floor: [], mvp: [] };
    const fanoutResults: Record<EmbeddedSide, RoundResult[]> = { raw: [], floor: [], mvp: [] };
    const relayStats: Record<EmbeddedSide, TargetStats[]> = { raw: [], floor: [], mvp: [] };
    for (let round = 0; round < config.rounds; round++) {
      const tag = `round ${round + 1}/${config.rounds}`;
      for (const side of orderOf(EMBEDDED_SIDES, round)) {
        if (!relayOn) continue;
        const r = await relay(
          side,
          m.latencyDurationS,
          statsWindow(bySide[side], relayStats[side]),
        );
        relayResults[side].push(r);
        log(
          `${progress(`${tag} ${side}-relay`, r, 'deliveries/s')}; ` +
            targetProgress(relayStats[side].at(-1)!, r.requests),
        );
      }
      for (const side of orderOf(EMBEDDED_SIDES, round)) {
        if (!fanoutOn) continue;
        const r = await fanout(side, config.durationS);
        fanoutResults[side].push(r);
        log(progress(`${tag} ${side}-fanout`, r, 'deliveries/s'));
      }
    }

    const relayReport = relayOn ? embeddedReport(relayResults) : undefined;
    const fanoutReport = fanoutOn ? embeddedReport(fanoutResults) : undefined;
    return {
      relay: relayReport && {
        what:
          `send→deliver latency: ${pairs.length} direct pairs (${2 * pairs.length} sockets), ` +
          `one side sends messages.send, the other is subscribed to sync.events; open loop at ` +
          `${m.relayRate} sends/s in all, ${m.ciphertextBytes} B of ciphertext`,
        baseline:
          'raw ws relay in its own process: parses the send frame, forwards a message.new frame ' +
          "of the MVP's size and shape to the receiver's socket, answers the sender",
        floorIs: FLOOR_IS,
        frameBytes: sizes,
        ...relayReport,
        targets: {
          raw: targetReport(relayStats.raw, relayResults.raw),
          floor: targetReport(relayStats.floor, relayResults.floor),
          mvp: targetReport(relayStats.mvp, relayResults.mvp),
        },
        goal: {
          goal: `p99 mvp/raw <= ${MESSAGING_GOALS.relayP99RatioMax}`,
          value: relayReport.ratio.p99,
          met: relayReport.ratio.p99 <= MESSAGING_GOALS.relayP99RatioMax,
        },
      },
      fanout: fanoutReport && {
        what:
          `deliveries/s into a ${m.groupSize}-member group, every member subscribed to ` +
          `sync.events (the sender's own stream counts), one sender with ${m.fanoutWindow} ` +
          'messages in flight (a message leaves the window once every member has it)',
        baseline:
          'raw ws broadcast in its own process: the same frames, the message JSON built once ' +
          'and sent to every subscribed member socket',
        floorIs: FLOOR_IS,
        frameBytes: sizes,
        ...fanoutReport,
        goal: {
          goal: `deliveries/s mvp/raw >= ${MESSAGING_GOALS.fanoutThroughputRatioMin}`,
          value: fanoutReport.ratio.throughput,
          met: fanoutReport.ratio.throughput >= MESSAGING_GOALS.fanoutThroughputRatioMin,
        },
      },
    };
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
  }
}
