import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import type { BenchConversation, BenchUser } from './messagingSetup';
import { sendInput } from './messagingSetup';
import { failures, LatencyRecorder, roundResult, type RoundResult } from './stats';
import { openTrpcSocket, type DataFrame, type TrpcSocket } from './trpcSocket';

/**
 * The messaging load generators. The same code drives the MVP server and the raw messaging
 * server (both speak the same frames); every latency is measured in this process, from right
 * before the send frame is written to the arrival of the `message.new` frame, on one clock.
 */

const SEND = 'messages.send';
const STREAM = 'sync.events';
const DRAIN_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type MessageEvent = { type: string; message?: { clientMessageId: string } };
/** superjson wraps the tracked envelope: `{ json: { id, data: event } }`. */
const clientIdOf = (frame: DataFrame) => {
  const event = (frame.result.data.json as { data?: MessageEvent }).data;
  return event?.type === 'message.new' ? event.message?.clientMessageId : undefined;
};

async function connect(url: string, user: BenchUser, onError: (err: Error) => void) {
  return openTrpcSocket(url, user.token, onError);
}

/** Subscribes `sockets` to their streams from now; the server's read starts just after. */
async function subscribeAll(
  sockets: TrpcSocket[],
  onData: (index: number, frame: DataFrame) => void,
): Promise<void> {
  await Promise.all(
    sockets.map((s, i) => s.subscribe(STREAM, { lastEventId: null }, (f) => onData(i, f))),
  );
  // `started` is answered before the server has read where the stream is: a message committed
  // in that gap would be behind the cold-start cursor. Give the reads time to happen.
  await sleep(200);
}

const closeAll = (sockets: TrpcSocket[]) => Promise.all(sockets.map((s) => s.close()));

/** Per-message difference between two devices' arrival times, ms (may be negative). */
export type Added = { p50Ms: number; p99Ms: number };

/**
 * Open loop at `rate` sends/s over all pairs (pair k mod n), members[0] sends through `sendUrl`,
 * members[1] is subscribed at `receiveUrl`. Answers deliveries/s and send→deliver latency.
 * With `second`, members[1] is also subscribed on another device (`second.receivers[k]`, the
 * same account signed in again) at `second.url`: a message counts once both devices have it,
 * and `second` answers that device's latency and, per message, how much later it arrived there.
 */
export async function runRelayLoad(options: {
  sendUrl: string;
  receiveUrl: string;
  conversations: BenchConversation[];
  rate: number;
  durationS: number;
  ciphertext: string;
  second?: { url: string; receivers: BenchUser[] };
  /** Called right before the first send and once the last delivery is in (or given up on). */
  window?: { open(): Promise<void>; close(): Promise<void> };
}): Promise<RoundResult & { sent: number; second?: RoundResult & { added: Added } }> {
  const { conversations, second } = options;
  const errors = failures();
  const senders = await Promise.all(
    conversations.map((c) => connect(options.sendUrl, c.members[0]!, errors.fail)),
  );
  const receivers = await Promise.all(
    conversations.map((c) => connect(options.receiveUrl, c.members[1]!, errors.fail)),
  );
  const secondReceivers = second
    ? await Promise.all(second.receivers.map((u) => connect(second.url, u, errors.fail)))
    : [];
  // Per message in flight: when it was sent and when each device got it.
  const inFlight = new Map<string, { at: number; first?: number; second?: number }>();
  const latencies = new LatencyRecorder();
  const secondLatencies = new LatencyRecorder();
  // Signed: a LatencyRecorder sorts numerically, negatives first.
  const added = new LatencyRecorder();
  let delivered = 0;
  let measuring = true;
  const arrived = (device: 'first' | 'second') => (_i: number, frame: DataFrame) => {
    const now = performance.now();
    const cid = clientIdOf(frame);
    const entry = cid === undefined ? undefined : inFlight.get(cid);
    if (!entry) return;
    entry[device] = now;
    if (entry.first === undefined || (second && entry.second === undefined)) return;
    inFlight.delete(cid!);
    if (!measuring) return;
    latencies.record(entry.first - entry.at);
    if (entry.second !== undefined) {
      secondLatencies.record(entry.second - entry.at);
      added.record(entry.second - entry.first);
    }
    delivered++;
  };
  await Promise.all([
    subscribeAll(receivers, arrived('first')),
    subscribeAll(secondReceivers, arrived('second')),
  ]);

  const prefix = randomBytes(4).toString('hex');
  await options.window?.open();
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < options.durationS * 1000 && !errors.failed) {
    const due = Math.floor(((performance.now() - started) * options.rate) / 1000);
    for (; sent < due; sent++) {
      const conversation = conversations[sent % conversations.length]!;
      const cid = `${prefix}-${sent}`;
      const call = senders[sent % conversations.length]!.mutate(
        SEND,
        sendInput(conversation.id, cid, options.ciphertext),
      );
      inFlight.set(cid, { at: call.sentAt });
      call.done.catch((err: Error) => errors.fail(err));
    }
    await sleep(1);
  }
  const seconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + DRAIN_MS;
  while (inFlight.size > 0 && performance.now() < drainUntil && !errors.failed) await sleep(5);
  measuring = false;
  await options.window?.close();
  const lost = inFlight.size;
  await closeAll([...senders, ...receivers, ...secondReceivers]);
  if (errors.failed) throw errors.failed;
  if (lost > 0) throw new Error(`${lost} of ${sent} messages not delivered within ${DRAIN_MS} ms`);
  const result = { ...roundResult(delivered, seconds, latencies), sent };
  if (!second) return result;
  const [p50Ms = NaN, p99Ms = NaN] = added.percentiles(50, 99);
  return {
    ...result,
    second: { ...roundResult(delivered, seconds, secondLatencies), added: { p50Ms, p99Ms } },
  };
}

/**
 * Every member of `group` subscribed, members[0] sends with `window` messages in flight: a
 * message leaves the window once all members received it. Answers deliveries/s (one per member
 * per message, the sender's own stream included) and send→deliver latency per delivery.
 */
export async function runFanoutLoad(options: {
  url: string;
  group: BenchConversation;
  window: number;
  durationS: number;
  ciphertext: string;
}): Promise<RoundResult & { messages: number }> {
  const { group } = options;
  const errors = failures();
  const sockets = await Promise.all(group.members.map((m) => connect(options.url, m, errors.fail)));
  const pending = new Map<string, { at: number; left: number }>();
  const latencies = new LatencyRecorder();
  let deliveries = 0;
  let messages = 0;
  let measuring = true;
  const prefix = randomBytes(4).toString('hex');
  let next = 0;
  const send = () => {
    const cid = `${prefix}-${next++}`;
    const call = sockets[0]!.mutate(SEND, sendInput(group.id, cid, options.ciphertext));
    pending.set(cid, { at: call.sentAt, left: group.members.length });
    call.done.catch((err: Error) => errors.fail(err));
  };
  await subscribeAll(sockets, (_i, frame) => {
    const now = performance.now();
    const cid = clientIdOf(frame);
    const entry = cid === undefined ? undefined : pending.get(cid);
    if (!entry) return;
    if (measuring) {
      latencies.record(now - entry.at);
      deliveries++;
    }
    if (--entry.left > 0) return;
    pending.delete(cid!);
    if (!measuring) return;
    messages++;
    send();
  });
  const started = performance.now();
  for (let i = 0; i < options.window; i++) send();
  await sleep(options.durationS * 1000);
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + DRAIN_MS;
  while (pending.size > 0 && performance.now() < drainUntil && !errors.failed) await sleep(5);
  const lost = pending.size;
  await closeAll(sockets);
  if (errors.failed) throw errors.failed;
  if (lost > 0)
    throw new Error(`${lost} fanned-out messages not fully delivered in ${DRAIN_MS} ms`);
  return { ...roundResult(deliveries, seconds, latencies), messages };
}

/**
 * Closed loop of sends: members[0] of each conversation keeps `inFlight` sends outstanding, each
 * answer sends the next. Answers sends/s and answer latency. Nobody is subscribed unless
 * `listeners` are given: devices subscribed to their streams at those URLs, so the servers
 * deliver as they would under that load (their deliveries are not measured).
 */
export async function runPersistLoad(options: {
  url: string;
  conversations: BenchConversation[];
  inFlight: number;
  durationS: number;
  ciphertext: string;
  listeners?: { url: string; users: BenchUser[] }[];
}): Promise<RoundResult> {
  const errors = failures();
  const sockets = await Promise.all(
    options.conversations.map((c) => connect(options.url, c.members[0]!, errors.fail)),
  );
  const listening = await Promise.all(
    (options.listeners ?? []).flatMap(({ url, users }) =>
      users.map((u) => connect(url, u, errors.fail)),
    ),
  );
  await subscribeAll(listening, () => {});
  const latencies = new LatencyRecorder();
  let completed = 0;
  let outstanding = 0;
  let measuring = true;
  const prefix = randomBytes(4).toString('hex');
  let next = 0;
  const send = (i: number) => {
    const call = sockets[i]!.mutate(
      SEND,
      sendInput(options.conversations[i]!.id, `${prefix}-${next++}`, options.ciphertext),
    );
    outstanding++;
    call.done.then(
      () => {
        outstanding--;
        if (!measuring) return;
        latencies.record(performance.now() - call.sentAt);
        completed++;
        send(i);
      },
      (err: Error) => {
        outstanding--;
        errors.fail(err);
      },
    );
  };
  const started = performance.now();
  sockets.forEach((_s, i) => {
    for (let k = 0; k < options.inFlight; k++) send(i);
  });
  await sleep(options.durationS * 1000);
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + DRAIN_MS;
  while (outstanding > 0 && performance.now() < drainUntil) await sleep(5);
  await closeAll([...sockets, ...listening]);
  if (errors.failed) throw errors.failed;
  return roundResult(completed, seconds, latencies);
}

/**
 * The raw floor of a cross-instance hop: PUBLISH on one Redis connection, the message arriving
 * on another connection SUBSCRIBEd to it, at `rate` messages/s over `channels` channels, with a
 * wake-up-sized payload. Runs in this process: Redis itself is the server here.
 */
export async function runRedisPubSubLoad(options: {
  redisUrl: string;
  channels: number;
  rate: number;
  durationS: number;
}): Promise<RoundResult> {
  const publisher = new Redis(options.redisUrl, { lazyConnect: true });
  const subscriber = new Redis(options.redisUrl, { lazyConnect: true });
  await Promise.all([publisher.connect(), subscriber.connect()]);
  const prefix = `bench:${randomBytes(6).toString('hex')}:user:`;
  const names = Array.from({ length: options.channels }, (_, i) => `${prefix}${i}`);
  await subscriber.subscribe(...names);
  const sentAt = new Map<number, number>();
  const latencies = new LatencyRecorder();
  subscriber.on('message', (_channel: string, raw: string) => {
    const now = performance.now();
    const { k } = JSON.parse(raw) as { k: number };
    const at = sentAt.get(k);
    if (at === undefined) return;
    sentAt.delete(k);
    latencies.record(now - at);
  });
  let failed: Error | undefined;
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < options.durationS * 1000 && !failed) {
    const due = Math.floor(((performance.now() - started) * options.rate) / 1000);
    for (; sent < due; sent++) {
      sentAt.set(sent, performance.now());
      // The MVP's wake-up is `{"type":"wake"}`; `k` matches the answer to its publish.
      publisher
        .publish(names[sent % names.length]!, JSON.stringify({ type: 'wake', k: sent }))
        .catch((err: Error) => (failed ??= err));
    }
    await sleep(1);
  }
  const seconds = (performance.now() - started) / 1000;
  const drainUntil = performance.now() + DRAIN_MS;
  while (sentAt.size > 0 && performance.now() < drainUntil) await sleep(5);
  const lost = sentAt.size;
  publisher.disconnect();
  subscriber.disconnect();
  if (failed) throw failed;
  if (lost > 0) throw new Error(`${lost} Redis messages not received within ${DRAIN_MS} ms`);
  return roundResult(latencies.count, seconds, latencies);
}

/**
 * One send from members[0] to a subscribed members[1] (who may be the same user), for the probe:
 * the delivered frame's text and the answer, so raw and MVP can be compared before measuring.
 */
export async function probeSend(
  url: string,
  conversation: BenchConversation,
  ciphertext: string,
): Promise<{ delivered: string; answer: unknown }> {
  const errors = failures();
  const receiver = await connect(url, conversation.members[1]!, errors.fail);
  const sender = await connect(url, conversation.members[0]!, errors.fail);
  const cid = `probe-${randomBytes(4).toString('hex')}`;
  let delivered: ((text: string) => void) | undefined;
  const arrived = new Promise<string>((resolve) => (delivered = resolve));
  await receiver.subscribe(STREAM, { lastEventId: null }, (frame, text) => {
    if (clientIdOf(frame) === cid) delivered?.(text);
  });
  await sleep(200);
  const call = sender.mutate(SEND, sendInput(conversation.id, cid, ciphertext));
  const answer = await call.done;
  const text = await Promise.race([arrived, sleep(DRAIN_MS).then(() => undefined)]);
  await closeAll([sender, receiver]);
  if (errors.failed) throw errors.failed;
  if (text === undefined) throw new Error(`probe: ${url} did not deliver the message`);
  return { delivered: text, answer };
}
