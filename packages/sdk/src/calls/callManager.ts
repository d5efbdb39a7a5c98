/**
 * `client.calls`: places and answers calls on this device, routing the sync stream's call
 * events to each call's session. One live call at a time (the server answers `busy` to anyone
 * calling a user who is in a call).
 */
import { reportTo } from '../reportTo';
import type { Subscription } from '../syncTypes';
import type { Snapshot, SyncEvent } from '../messaging';
import type { CallCrypto } from './callCrypto';
import { CallError } from './callError';
import {
  createCallSession,
  DEFAULT_CALL_TIMING,
  type Call,
  type CallSession,
  type CallState,
  type CallTiming,
} from './callSession';
import { createLifetime } from './lifetime';
import { OFFER_MAX_SKEW_MS, openOffer } from './sealed';
import type { CallHistoryPage, CallMedia, CallTransport, ServerCall } from './transport';
import {
  platformGetUserMedia,
  platformPeerConnection,
  type GetUserMedia,
  type PeerConnectionConstructor,
} from './webrtc';

export type CallManagerOptions = {
  transport: CallTransport;
  /**
   * The client's sync engine (`client.sync`): call events arrive on the device's stream, and a
   * cold start's snapshot lists the calls that were already ringing this device.
   */
  sync: {
    onEvent(handler: (event: SyncEvent) => void | Promise<void>): Subscription;
    onSnapshot?(handler: (snapshot: Snapshot) => void | Promise<void>): Subscription;
    /** The stream could not resume: the call events it skipped are asked of the server. */
    onResync?(handler: () => void | Promise<void>): Subscription;
  };
  /**
   * Encrypts SDP and ICE to the one peer device. `createMvpClient` passes `client.e2ee.pairwise`
   * when E2EE is on. Without one `start` throws `NO_CALL_CRYPTO` and incoming calls are
   * reported to `onError` instead of ringing.
   */
  crypto?: CallCrypto;
  /** Defaults to `globalThis.RTCPeerConnection`; pass react-native-webrtc's on React Native. */
  RTCPeerConnection?: PeerConnectionConstructor;
  /** Defaults to `navigator.mediaDevices.getUserMedia`. */
  getUserMedia?: GetUserMedia;
  timing?: Partial<CallTiming>;
  /**
   * Where the platform has pages (browsers): `leave()` on `pagehide`, so that closing the tab
   * hangs up (default true).
   */
  leaveOnPageHide?: boolean;
};

export type MvpCalls = {
  /**
   * Calls a user: rings every device of theirs with published keys. Resolves once the server
   * rings them (`dialing`), or with a call already `ended` (`busy`, `glare`). When a call of
   * theirs rings here, that call is answered instead and resolves `connecting`. Throws a
   * `CallError`: `NO_DEVICES`, `MEDIA_FAILED`, `NO_CALL_CRYPTO`, `CALL_IN_PROGRESS`.
   */
  start(userId: string, options?: { media?: CallMedia }): Promise<Call>;
  /** The live call on this device (ringing, dialing, connecting, connected, reconnecting). */
  readonly current: Call | null;
  /** `current`'s state, or `idle`. */
  readonly state: CallState;
  /** A call rings here (`ringing`): `accept()` or `decline()` it. Starts listening. */
  onIncoming(handler: (call: Call) => void): Subscription;
  /** Any change of any call on this device, both directions. Starts listening. */
  onChange(handler: (call: Call) => void): Subscription;
  /** Failures that belong to no caller: undecryptable payloads, signalling errors. */
  onError(handler: (error: unknown) => void): Subscription;
  /** My calls (direction, media, outcome, duration), newest first. */
  history(options?: { before?: string; limit?: number }): Promise<CallHistoryPage>;
  get(callId: string): Promise<ServerCall>;
  /**
   * Hangs up the live call and stops listening. A call ringing here only stops ringing here: my
   * other devices go on ringing.
   */
  close(): Promise<void>;
  /**
   * The app is going away (a tab closing; the manager does it on `pagehide` itself): hangs up the
   * live call with a request that outlives the page (`fetch` `keepalive`), sent at once and not
   * awaited. A call ringing here only stops ringing here. Without it the other side went on
   * ringing until the ring timeout, or sat in a call with nobody until its connection failed.
   */
  leave(): void;
};

type CallEvent = Extract<SyncEvent, { type: `call.${string}` }>;
const isCallEvent = (event: SyncEvent): event is CallEvent => event.type.startsWith('call.');
const callIdOf = (event: CallEvent) => ('call' in event ? event.call.id : event.callId);
const LIVE: readonly CallState[] = [
  'ringing',
  'dialing',
  'connecting',
  'connected',
  'reconnecting',
];
/** After losing glare, their call (the one that goes on) is answered if it rings within this. */
const GLARE_ACCEPT_MS = 15_000;

export function createCallManager(options: CallManagerOptions): MvpCalls {
  const { transport } = options;
  const timing = { ...DEFAULT_CALL_TIMING, ...options.timing };
  const sessions = new Map<string, CallSession>();
  /** Events for a call id not known yet: a `start` is still waiting for its answer. */
  const orphans = new Map<string, CallEvent[]>();
  let dialing = 0;
  /**
   * Who won a glare against me, with the server's time of it: only their call placed before then
   * (the one that won) is answered by itself, never a later one.
   */
  const lostGlare = new Map<string, { media: CallMedia; at: number; before: number }>();
  /**
   * Calls whose offer this device opened, until the offer would be too old anyway: each call
   * rings once, whatever is delivered again (kept by time, so the map stays small).
   */
  const opened = new Map<string, number>();
  /** Invites whose offer is being opened, with the call's events that arrived meanwhile. */
  const opening = new Map<string, CallEvent[]>();
  const remember = (callId: string) => {
    const now = Date.now();
    for (const [id, at] of opened) if (now - at > OFFER_MAX_SKEW_MS) opened.delete(id);
    opened.set(callId, now);
  };
  const incomingHandlers = new Set<(call: Call) => void>();
  const changeHandlers = new Set<(call: Call) => void>();
  const errorHandlers = new Set<(error: unknown) => void>();
  let subscription: Subscription | undefined;
  let snapshotSubscription: Subscription | undefined;
  let resyncSubscription: Subscription | undefined;
  let dialSession: CallSession | undefined;
  /** Ended by `close` (and made anew: the manager may be used again after it). */
  let lifetime = createLifetime();

  const report = (error: unknown) => reportTo(errorHandlers, error);
  const emit = (set: Set<(call: Call) => void>, call: Call) => {
    for (const handler of [...set]) {
      try {
        handler(call);
      } catch (error) {
        report(error);
      }
    }
  };

  const live = () => {
    if (dialSession && LIVE.includes(dialSession.call.state)) return dialSession.call;
    for (const session of sessions.values())
      if (LIVE.includes(session.call.state)) return session.call;
    return null;
  };

  function newSession(init: Parameters<typeof createCallSession>[1]): CallSession {
    const crypto = options.crypto!;
    const session = createCallSession(
      {
        transport,
        crypto,
        PeerConnection: () => options.RTCPeerConnection ?? platformPeerConnection(),
        getUserMedia: () => options.getUserMedia ?? platformGetUserMedia(),
        timing,
        report,
        closing: lifetime,
        ended: (done) => {
          if (done.call.direction === 'outgoing' && done.call.endReason === 'glare')
            glareLost(done.call.peerUserId, done.call.media, done.serverEndedAt);
          // Kept a little for late events (a `call.ended` after a local hangup), then dropped.
          setTimeout(() => sessions.delete(done.call.id), 60_000).unref?.();
        },
      },
      init,
    );
    session.call.onChange((call) => emit(changeHandlers, call));
    return session;
  }

  function route(session: CallSession, event: CallEvent) {
    switch (event.type) {
      case 'call.accepted':
        return session.onAccepted(event.deviceId, event.answer);
      case 'call.answered_elsewhere':
        return answeredElsewhere(session, event.deviceId);
      case 'call.ended':
        return session.onEnded(event.call);
      case 'call.signal':
        return session.onSignal(event.fromDeviceId, event.kind, event.ciphertext);
      default:
        return undefined;
    }
  }

  /**
   * The server tells every device of mine which one answered, that one too: there it is no news,
   * and its own accept (or, if the reply to it is lost, the server asked) says how the call goes
   * on. Only a device past ringing can have answered, so only then is the server asked which
   * device this is (each time: a sign-in may make it another). Unknown, the answer counts as
   * another device's, as a device that cannot tell must not hang up a call answered elsewhere.
   */
  async function answeredElsewhere(session: CallSession, deviceId: string) {
    const { direction, state } = session.call;
    if (direction === 'incoming' && state !== 'ringing' && state !== 'ended') {
      const here = await transport.deviceId().catch((error: unknown) => void report(error));
      if (deviceId === here) return;
    }
    session.onAnsweredElsewhere();
  }

  /**
   * An invite rings once its offer is opened and checked (`openOffer`). The stream does not
   * wait for that: opening needs E2EE set up, and setting E2EE up starts the stream (whose cold
   * start hands out the snapshot that may hold this very invite). The call's other events wait
   * in `opening` meanwhile; if it ended or was answered elsewhere by then, nothing rings.
   */
  function ring(event: Extract<CallEvent, { type: 'call.invite' }>) {
    const { call, callerDeviceId, offer } = event;
    // `offer: null`: one of my other devices is calling; nothing rings here.
    if (offer === null || call.state !== 'ringing') return;
    // Delivered twice (the snapshot and the stream), or replayed: each call rings once.
    if (sessions.has(call.id) || opened.has(call.id) || opening.has(call.id)) return;
    const crypto = options.crypto;
    if (!crypto) {
      report(
        new CallError(
          'NO_CALL_CRYPTO',
          'A call came in, but calls have no `crypto` (turn on E2EE: `crypto` in createMvpClient)',
        ),
      );
      return;
    }
    opening.set(call.id, []);
    const input = { callId: call.id, callerId: call.callerId, callerDeviceId, offer };
    void openOffer(crypto, input).then(
      (description) => {
        const waiting = opening.get(call.id) ?? [];
        opening.delete(call.id);
        remember(call.id);
        if (!subscription) return; // closed meanwhile
        if (waiting.some((e) => e.type === 'call.ended' || e.type === 'call.answered_elsewhere'))
          return;
        const session = newSession({
          direction: 'incoming',
          peerUserId: call.callerId,
          media: call.media,
          id: call.id,
          peerDeviceId: callerDeviceId,
          offer: description,
        });
        sessions.set(call.id, session);
        emit(changeHandlers, session.call);
        emit(incomingHandlers, session.call);
        for (const later of waiting) void route(session, later);
        const glare = lostGlare.get(call.callerId);
        if (
          glare &&
          Date.now() - glare.at < GLARE_ACCEPT_MS &&
          Date.parse(call.startedAt) <= glare.before
        )
          answerGlare(session, glare.media);
      },
      (error: unknown) => {
        opening.delete(call.id);
        if (subscription) report(error);
      },
    );
  }

  function glareLost(userId: string, media: CallMedia, endedAt: string | null) {
    // No time (never from this server): no later invite is taken for the winning call.
    const before = endedAt === null ? -Infinity : Date.parse(endedAt);
    lostGlare.set(userId, { media, at: Date.now(), before });
    const theirs = [...sessions.values()].find(
      (s) =>
        s.call.direction === 'incoming' &&
        s.call.peerUserId === userId &&
        s.call.state === 'ringing',
    );
    if (theirs) answerGlare(theirs, media);
  }

  /** Both called at once and theirs went on: answer it, as the user wanted to talk anyway. */
  function answerGlare(session: CallSession, media: CallMedia) {
    lostGlare.delete(session.call.peerUserId);
    session.call.accept({ video: media === 'video' }).catch(report);
  }

  async function onEvent(event: SyncEvent) {
    if (!isCallEvent(event)) return;
    if (event.type === 'call.invite') return ring(event);
    const id = callIdOf(event);
    const session = sessions.get(id);
    if (session) return route(session, event);
    const waiting = opening.get(id);
    if (waiting) {
      if (waiting.length < 200) waiting.push(event);
      return;
    }
    if (dialing > 0) {
      const list = orphans.get(id) ?? [];
      if (list.length < 200) list.push(event);
      orphans.set(id, list);
    }
  }

  function listen() {
    if (onPages && !leavesOnPageHide) {
      page.addEventListener!('pagehide', leave);
      leavesOnPageHide = true;
    }
    // Before the events: registering for those may start the stream, whose cold start hands
    // out the snapshot first.
    snapshotSubscription ??= options.sync.onSnapshot?.((snapshot) => {
      // An older server's snapshot has no list; nothing rang before this start then.
      for (const ringing of snapshot.ringingCalls ?? []) ring({ type: 'call.invite', ...ringing });
    });
    // Not waited for: the stream's cold start must not wait on the server's answers.
    resyncSubscription ??= options.sync.onResync?.(() => {
      for (const session of sessions.values())
        if (LIVE.includes(session.call.state)) session.onResync();
    });
    subscription ??= options.sync.onEvent(async (event) => {
      try {
        await onEvent(event);
      } catch (error) {
        report(error); // never hold the stream up for a call
      }
    });
  }

  async function start(userId: string, opts: { media?: CallMedia } = {}): Promise<Call> {
    if (!options.crypto)
      throw new CallError(
        'NO_CALL_CRYPTO',
        'Calls need `crypto` to encrypt SDP and ICE to the peer device: turn on E2EE (`crypto` in createMvpClient) or pass `calls.crypto`',
      );
    const media = opts.media ?? 'audio';
    // Calling someone whose call rings here: both want to talk, so theirs is answered, as glare
    // ends at the server (the call that goes on is answered), not refused as a call in progress.
    const theirs = [...sessions.values()].find(
      ({ call }) =>
        call.direction === 'incoming' && call.peerUserId === userId && call.state === 'ringing',
    );
    const current = live();
    if (theirs && (current === theirs.call || current?.state === 'ringing')) {
      await theirs.call.accept({ video: media === 'video' });
      return theirs.call;
    }
    if (current) throw new CallError('CALL_IN_PROGRESS', 'There is a live call on this device');
    listen();
    const session = newSession({ direction: 'outgoing', peerUserId: userId, media });
    dialing++;
    dialSession = session;
    try {
      await session.dial();
    } finally {
      dialing--;
      dialSession = undefined;
    }
    const id = session.call.id;
    sessions.set(id, session);
    emit(changeHandlers, session.call);
    for (const event of orphans.get(id) ?? []) void route(session, event);
    orphans.delete(id);
    if (dialing === 0) orphans.clear();
    return session.call;
  }

  function leave() {
    dialSession?.leave();
    for (const session of sessions.values()) session.leave();
  }
  const page = globalThis as {
    addEventListener?: (type: 'pagehide', listener: () => void) => void;
    removeEventListener?: (type: 'pagehide', listener: () => void) => void;
    document?: unknown;
  };
  // Browsers only: React Native and Node have no pages (Node 20 has no global addEventListener;
  // Deno and workers have one but no document).
  const onPages = options.leaveOnPageHide !== false && !!page.document && !!page.addEventListener;
  let leavesOnPageHide = false;

  const listenTo = <T>(set: Set<T>, handler: T): Subscription => {
    set.add(handler);
    return { unsubscribe: () => void set.delete(handler) };
  };

  return {
    start,
    get current() {
      return live();
    },
    get state() {
      return live()?.state ?? 'idle';
    },
    onIncoming(handler) {
      listen();
      return listenTo(incomingHandlers, handler);
    },
    onChange(handler) {
      listen();
      return listenTo(changeHandlers, handler);
    },
    onError: (handler) => listenTo(errorHandlers, handler),
    history: (opts = {}) => transport.history(opts),
    get: (callId) => transport.get(callId),
    leave,
    async close() {
      page.removeEventListener?.('pagehide', leave);
      leavesOnPageHide = false;
      lifetime.end(); // a lost start's cancel, still retried in the background, stops
      lifetime = createLifetime();
      subscription?.unsubscribe();
      subscription = undefined;
      snapshotSubscription?.unsubscribe();
      snapshotSubscription = undefined;
      resyncSubscription?.unsubscribe();
      resyncSubscription = undefined;
      // A call ringing here stops ringing here only: it may still be answered on another device.
      for (const session of sessions.values()) session.dismiss();
      await live()
        ?.hangup()
        .catch(() => undefined);
    },
  };
}
