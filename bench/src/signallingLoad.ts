import { performance } from 'node:perf_hooks';
import { uuidv7 } from 'uuidv7';
import type { BenchUser } from './messagingSetup';
import { failures, LatencyRecorder, roundResult, type RoundResult } from './stats';
import { openTrpcSocket, type DataFrame, type TrpcSocket } from './trpcSocket';

/**
 * The call signalling load. The same code drives the MVP server and the raw signalling relay
 * (both speak the same frames). One call setup, in the order the SDK's CallManager goes through it
 * minus WebRTC (one `calls.signal` per candidate, where the SDK batches candidates gathered
 * together: the server's worst case):
 *
 * 1. the caller writes `calls.start` with one encrypted offer for the callee's one device;
 * 2. the callee's device gets `call.invite` on its `sync.events` stream and at once writes
 *    `calls.accept` with its encrypted answer;
 * 3. once its accept is answered (the call is connected: the server refuses ICE before), the
 *    callee writes its candidates, one `calls.signal` each; the caller writes its own as soon as
 *    `call.accepted` (the answer) reaches it;
 * 4. **the setup is complete when both ends hold all the other's candidates**: the setup time is
 *    from right before the `calls.start` frame is written to that moment, on this process's clock;
 * 5. the caller then writes `calls.hangup`; the pair is free again once the hangup is answered and
 *    `call.ended` reached both ends (not part of the setup time; its latency is reported apart).
 *
 * Every frame of a round is checked: any error frame, failed call or setup not finished within
 * the drain refuses the round.
 */

export type CallUser = BenchUser & { deviceId: string };
export type CallPair = { caller: CallUser; callee: CallUser };
/** base64 payloads: the offer, the answer, and one per candidate (each way). */
export type SignallingPayloads = { offer: string; answer: string; candidates: string[] };

const STREAM = 'sync.events';
const DRAIN_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type CallEvent = {
  type: string;
  call?: { id: string };
  callId?: string;
};
/** superjson wraps the tracked envelope: `{ json: { id, data: event } }`. */
const eventOf = (frame: DataFrame) => (frame.result.data.json as { data?: CallEvent }).data;
const callIdOf = (event: CallEvent) => event.callId ?? event.call?.id;

/** Phases of one setup, ms from its own start (or from the accept / hangup write). */
export const PHASES = ['ring', 'answer', 'callerComplete', 'hangup'] as const;
export type Phase = (typeof PHASES)[number];
export const PHASE_MEANING: Record<Phase, string> = {
  ring: 'calls.start written → call.invite at the callee',
  answer: 'calls.accept written → call.accepted at the caller',
  callerComplete: "calls.start written → the caller holds all the callee's candidates",
  hangup: 'calls.hangup written → call.ended at the callee',
};

export type Recorders = { setup: LatencyRecorder } & Record<Phase, LatencyRecorder>;
const recorders = (): Recorders => ({
  setup: new LatencyRecorder(),
  ring: new LatencyRecorder(),
  answer: new LatencyRecorder(),
  callerComplete: new LatencyRecorder(),
  hangup: new LatencyRecorder(),
});

/** For the probe: every call.* frame each end received, and every answer, as text. */
export type Capture = {
  caller: { type: string; text: string }[];
  callee: { type: string; text: string }[];
  answers: { path: string; text: string }[];
};

type Setup = {
  startedAt: number;
  callId?: string;
  acceptSentAt?: number;
  callerGot: number;
  calleeGot: number;
  callerCompleteAt?: number;
  hangupSentAt?: number;
  hangupAnswered: boolean;
  endedCaller: boolean;
  endedCallee: boolean;
  measured: boolean;
};

/** One caller/callee pair, its two sockets, and its one call at a time. */
class CallLine {
  private setup: Setup | undefined;

  constructor(
    readonly pair: CallPair,
    private readonly sockets: { caller: TrpcSocket; callee: TrpcSocket },
    private readonly hooks: {
      payloads: SignallingPayloads;
      record: Recorders;
      fail(err: Error): void;
      /** The pair can take its next call. */
      free(line: CallLine): void;
      capture?: Capture;
    },
  ) {}

  get busy(): boolean {
    return this.setup !== undefined;
  }

  private mutate(side: 'caller' | 'callee', path: string, input: unknown) {
    const call = this.sockets[side].mutate(path, input);
    const capture = this.hooks.capture;
    call.done.then(
      (answer) => capture?.answers.push({ path, text: JSON.stringify(answer) }),
      (err: Error) => this.hooks.fail(err),
    );
    return call;
  }

  start(measured: boolean): void {
    const { callee } = this.pair;
    const call = this.mutate('caller', 'calls.start', {
      callId: uuidv7(),
      calleeId: callee.userId,
      media: 'video',
      offers: [{ deviceId: callee.deviceId, ciphertext: this.hooks.payloads.offer }],
    });
    this.setup = {
      startedAt: call.sentAt,
      callerGot: 0,
      calleeGot: 0,
      hangupAnswered: false,
      endedCaller: false,
      endedCallee: false,
      measured,
    };
  }

  private sendCandidates(side: 'caller' | 'callee', callId: string): void {
    for (const ciphertext of this.hooks.payloads.candidates)
      this.mutate(side, 'calls.signal', { callId, kind: 'candidates', ciphertext });
  }

  onFrame(side: 'caller' | 'callee', frame: DataFrame, text: string, now: number): void {
    const event = eventOf(frame);
    if (!event?.type.startsWith('call.')) return; // presence of the befriended peer, etc.
    this.hooks.capture?.[side].push({ type: event.type, text });
    const s = this.setup;
    const callId = callIdOf(event);
    if (!s || (s.callId !== undefined && callId !== s.callId)) {
      this.hooks.fail(new Error(`${side}: ${event.type} outside its call: ${text.slice(0, 300)}`));
      return;
    }
    const record = (phase: keyof Recorders, ms: number) => {
      if (s.measured) this.hooks.record[phase].record(ms);
    };
    const want = this.hooks.payloads.candidates.length;
    switch (`${side} ${event.type}`) {
      case 'callee call.invite': {
        s.callId = callId;
        record('ring', now - s.startedAt);
        const accept = this.mutate('callee', 'calls.accept', {
          callId,
          answer: this.hooks.payloads.answer,
        });
        s.acceptSentAt = accept.sentAt;
        accept.done.then(() => this.sendCandidates('callee', callId!)).catch(() => {});
        return;
      }
      case 'caller call.accepted':
        s.callId ??= callId;
        record('answer', now - s.acceptSentAt!);
        this.sendCandidates('caller', callId!);
        return;
      case 'caller call.signal':
        if (++s.callerGot === want) {
          s.callerCompleteAt = now;
          record('callerComplete', now - s.startedAt);
        }
        break;
      case 'callee call.signal':
        ++s.calleeGot;
        break;
      case 'callee call.answered_elsewhere':
        return; // the callee's own devices hear who answered: this one
      case 'caller call.ended':
        s.endedCaller = true;
        return this.maybeFree();
      case 'callee call.ended':
        s.endedCallee = true;
        if (s.hangupSentAt !== undefined) record('hangup', now - s.hangupSentAt);
        return this.maybeFree();
      default:
        this.hooks.fail(new Error(`${side}: unexpected ${event.type}: ${text.slice(0, 300)}`));
        return;
    }
    // A candidate arrived: complete once both ends hold all the other's.
    if (s.callerGot === want && s.calleeGot === want && s.hangupSentAt === undefined) {
      record('setup', now - s.startedAt);
      const hangup = this.mutate('caller', 'calls.hangup', {
        callId: s.callId,
        reason: 'user_hangup',
      });
      s.hangupSentAt = hangup.sentAt;
      hangup.done
        .then(() => {
          s.hangupAnswered = true;
          this.maybeFree();
        })
        .catch(() => {});
    }
  }

  private maybeFree(): void {
    const s = this.setup;
    if (!s?.hangupAnswered || !s.endedCaller || !s.endedCallee) return;
    this.setup = undefined;
    this.hooks.free(this);
  }
}

/** Opens both ends of every pair and subscribes them to their streams from now. */
async function openLines(
  url: string,
  pairs: CallPair[],
  hooks: Omit<ConstructorParameters<typeof CallLine>[2], 'fail'>,
  fail: (err: Error) => void,
): Promise<{ lines: CallLine[]; close: () => Promise<void> }> {
  const sockets = await Promise.all(
    pairs.map(async (pair) => ({
      caller: await openTrpcSocket(url, pair.caller.token, fail),
      callee: await openTrpcSocket(url, pair.callee.token, fail),
    })),
  );
  const lines = pairs.map((pair, i) => new CallLine(pair, sockets[i]!, { ...hooks, fail }));
  await Promise.all(
    lines.flatMap((line, i) =>
      (['caller', 'callee'] as const).map((side) =>
        sockets[i]![side].subscribe(STREAM, { lastEventId: null }, (frame, text) =>
          line.onFrame(side, frame, text, performance.now()),
        ),
      ),
    ),
  );
  // `started` is answered before the server has read where a cold-start stream begins: an
  // invite committed in that gap would be behind the cursor. Give the reads time to happen.
  await sleep(200);
  return {
    lines,
    close: async () => {
      await Promise.all(sockets.flatMap((s) => [s.caller.close(), s.callee.close()]));
    },
  };
}

export type SignallingRound = RoundResult & {
  /** Setups started in the round (all completed: a round with an unfinished one is refused). */
  started: number;
  phases: Record<Phase, { p50Ms: number; p99Ms: number }>;
};

/**
 * Open loop: a setup is due every 1/`ratePerS` s whatever the answers (no coordinated omission),
 * on the pair free the longest. If every pair is still in a call, the round is refused: the
 * server fell more than `pairs / rate` seconds behind.
 */
export async function runSignallingLoad(options: {
  url: string;
  pairs: CallPair[];
  ratePerS: number;
  durationS: number;
  payloads: SignallingPayloads;
  /**
   * Called right before the first setup and right after the drain (sockets open and subscribed
   * throughout), so that the target's CPU and loop-delay reads cover the setups only.
   */
  window?: { open(): Promise<void>; close(): Promise<void> };
}): Promise<SignallingRound> {
  const errors = failures();
  const record = recorders();
  const free: CallLine[] = [];
  let measuring = true;
  let completed = 0;
  const { lines, close } = await openLines(
    options.url,
    options.pairs,
    {
      payloads: options.payloads,
      record,
      free: (line) => {
        if (measuring) completed++;
        free.push(line);
      },
    },
    errors.fail,
  );
  free.push(...lines);

  await options.window?.open();
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < options.durationS * 1000 && !errors.failed) {
    const due = Math.floor(((performance.now() - started) * options.ratePerS) / 1000);
    for (; sent < due && !errors.failed; sent++) {
      const line = free.shift();
      if (!line) {
        errors.fail(
          new Error(
            `all ${lines.length} pairs still in a call: setups take over ` +
              `${(lines.length / options.ratePerS).toFixed(1)} s`,
          ),
        );
        break;
      }
      line.start(true);
    }
    await sleep(1);
  }
  const seconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + DRAIN_MS;
  const busy = () => lines.filter((l) => l.busy).length;
  while (busy() > 0 && performance.now() < drainUntil && !errors.failed) await sleep(5);
  measuring = false;
  const unfinished = busy();
  await options.window?.close();
  await close();
  if (errors.failed) throw errors.failed;
  if (unfinished > 0)
    throw new Error(`${unfinished} of ${sent} call setups not finished within ${DRAIN_MS} ms`);
  const phases = Object.fromEntries(
    PHASES.map((phase) => {
      const [p50Ms = NaN, p99Ms = NaN] = record[phase].percentiles(50, 99);
      return [phase, { p50Ms, p99Ms }];
    }),
  ) as SignallingRound['phases'];
  // Throughput: setups completed (hung up) per second of the round; it should be the rate.
  return { ...roundResult(completed, seconds, record.setup), started: sent, phases };
}

/** One setup on `pair`, every frame and answer kept, for comparing raw and MVP before measuring. */
export async function probeSetup(
  url: string,
  pair: CallPair,
  payloads: SignallingPayloads,
): Promise<Capture> {
  const errors = failures();
  const capture: Capture = { caller: [], callee: [], answers: [] };
  let done: (() => void) | undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const { lines, close } = await openLines(
    url,
    [pair],
    { payloads, record: recorders(), free: () => done?.(), capture },
    errors.fail,
  );
  lines[0]!.start(false);
  await Promise.race([finished, sleep(DRAIN_MS)]);
  const busy = lines[0]!.busy;
  await close();
  if (errors.failed) throw errors.failed;
  if (busy) throw new Error(`probe: the call setup on ${url} did not finish`);
  return capture;
}
