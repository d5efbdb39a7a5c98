/**
 * One call on this device: its life from ringing or dialing to ended, the server calls, the
 * heartbeats, and the encryption of every SDP and ICE payload to the one peer device. The
 * RTCPeerConnection side (negotiation, candidates, restarts) is `peerLink.ts`.
 */
import { reconnectDelayMs } from '../backoff';
import { classifySendError, errorCodeOf } from '../errors';
import type { Subscription } from '../syncTypes';
import type { CallCrypto } from './callCrypto';
import type { Lifetime } from './lifetime';
import { CallError } from './callError';
import { newCallId } from './callId';
import { open, seal as sealTo } from './sealed';
import type { CallMedia, CallSignalKind, CallTransport, ServerCall } from './transport';
import { createPeerLink, type PeerLink, type SignalPayload } from './peerLink';
import type {
  GetUserMedia,
  MediaStream,
  PeerConnection,
  PeerConnectionConstructor,
  SessionDescription,
} from './webrtc';

export type CallState =
  'idle' | 'ringing' | 'dialing' | 'connecting' | 'connected' | 'reconnecting' | 'ended';
export type CallEndReason =
  'declined' | 'missed' | 'busy' | 'answered_elsewhere' | 'hangup' | 'failed' | 'glare';

export type Call = {
  /** The server's call id. */
  readonly id: string;
  readonly direction: 'outgoing' | 'incoming';
  readonly peerUserId: string;
  /** The caller's device while ringing; the device that answered once accepted. */
  readonly peerDeviceId: string | null;
  readonly media: CallMedia;
  readonly state: CallState;
  /** Set once `state` is `ended`. */
  readonly endReason: CallEndReason | null;
  readonly localStream: MediaStream | null;
  readonly remoteStream: MediaStream | null;
  /** For stats and advanced use; null until media is set up and after the call ended. */
  readonly peerConnection: PeerConnection | null;
  readonly muted: boolean;
  readonly videoEnabled: boolean;
  /** Answers a ringing call (with the camera when `video`, default: the call's media). */
  accept(options?: { video?: boolean }): Promise<void>;
  /** Declines a ringing call on every device of mine. */
  decline(): Promise<void>;
  /** Ends the call (cancels it while it rings, declines it when it rings here). */
  hangup(): Promise<void>;
  setMuted(muted: boolean): void;
  /** Camera on or off; adds a video track (a renegotiation) when the call had none. */
  setVideoEnabled(enabled: boolean): Promise<void>;
  /** Told after every change of state, streams, mute or video. */
  onChange(handler: (call: Call) => void): Subscription;
};

export type CallTiming = {
  /** Heartbeats while the call is answered (the server ends calls whose beats stop). */
  heartbeatMs: number;
  /** Candidates found within this window go out in one `calls.signal`. */
  candidateBatchMs: number;
  /** A `disconnected` connection gets this long to recover before an ICE restart. */
  disconnectedGraceMs: number;
  /** Not connected this long after answering, or after losing the connection: `failed`. */
  connectTimeoutMs: number;
  /**
   * An offer (a renegotiation, an ICE restart) unanswered this long was lost, or its answer was
   * (signals are not stored): it is taken back and made again.
   */
  answerWaitMs: number;
  /**
   * Ringing (or dialing) this long with no word from the server: ask it how the call stands. Past
   * the server's ring timeout (60 s by default), so normally `call.ended` has come first.
   */
  ringCheckMs: number;
};

/** TURN credentials this close to their expiry are fetched again before an ICE restart. */
const ICE_REFRESH_MARGIN_MS = 60_000;
/**
 * A hangup, decline or a lost start's cancel that the network lost is sent again in the
 * background for this long: by then the server's ring timeout (60 s by default) or heartbeat
 * timeout (75 s after the last beat) has ended the call anyway.
 */
const TELL_END_FOR_MS = 90_000;

export const DEFAULT_CALL_TIMING: CallTiming = {
  heartbeatMs: 30_000,
  candidateBatchMs: 40,
  disconnectedGraceMs: 4_000,
  connectTimeoutMs: 30_000,
  answerWaitMs: 5_000,
  ringCheckMs: 75_000,
};

export type SessionDeps = {
  transport: CallTransport;
  crypto: CallCrypto;
  PeerConnection: () => PeerConnectionConstructor;
  getUserMedia: () => GetUserMedia;
  timing: CallTiming;
  report: (error: unknown) => void;
  /** Told once, when the call ends. */
  ended(session: CallSession): void;
  /** Ends when the manager closes: what a call still does in the background stops. */
  closing: Lifetime;
};

/** The CallManager's side of a call: the app's `Call` plus what the event router calls. */
export type CallSession = {
  readonly call: Call;
  /** When the server ended the call (as it placed it, or later), by its clock; null: not known. */
  readonly serverEndedAt: string | null;
  /** Outgoing: places the call (resolves once the server rings it, or answered busy/glare). */
  dial(): Promise<void>;
  onAccepted(deviceId: string, answer: string): void;
  onAnsweredElsewhere(): void;
  onEnded(call: ServerCall): void;
  onSignal(fromDeviceId: string, kind: CallSignalKind, ciphertext: string): void;
  /** The stream skipped events (a resync): an end among them is asked of the server. */
  onResync(): void;
  /**
   * This device stops ringing and tells nobody (the manager is closing): the call goes on ringing
   * on my other devices. A decline would end it on all of them.
   */
  dismiss(): void;
  /**
   * The page is going away: ends the call here and hangs it up with one request that outlives the
   * page, not awaited, never retried (nothing here will be left to retry). Ringing here: only
   * dismissed, as by `dismiss`. A start still on its way is hung up by the id it was sent with.
   */
  leave(): void;
};

/** How the server's final record reads from this device. */
export function endReasonOf(call: ServerCall): CallEndReason {
  if (call.state === 'rejected') return 'declined';
  if (call.state === 'missed') return 'missed';
  if (call.state === 'busy' || call.endReason === 'user_busy') return 'busy';
  if (call.endReason === 'glare') return 'glare';
  if (call.state === 'failed' || (call.endReason !== null && call.endReason !== 'user_hangup'))
    return 'failed';
  return 'hangup';
}

export function createCallSession(
  deps: SessionDeps,
  init: {
    direction: 'outgoing' | 'incoming';
    peerUserId: string;
    media: CallMedia;
    id?: string;
    /** Incoming: the caller's device and its offer, opened and checked (see `openOffer`). */
    peerDeviceId?: string;
    offer?: SessionDescription;
  },
): CallSession {
  const { transport, crypto, timing } = deps;
  const peerUser = init.peerUserId;
  const incoming = init.direction === 'incoming';
  let id = init.id ?? '';
  /** The id a start went out with, before the server's answer names it `id`. */
  let sentId = '';
  let peerDevice = init.peerDeviceId ?? null;
  let state: CallState = incoming ? 'ringing' : 'idle';
  let endReason: CallEndReason | null = null;
  let link: PeerLink | null = null;
  let localStream: MediaStream | null = null;
  let muted = false;
  /** Signalling to the peer device is possible once the call is answered. */
  let answeredHere = false;
  /** Incoming: this device is answering; an "answered elsewhere" may be about this very answer. */
  let accepting = false;
  let elsewhere = false;
  const early: { from: string; kind: CallSignalKind; ciphertext: string }[] = [];
  let chain: Promise<void> = Promise.resolve();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let ringCheck: ReturnType<typeof setTimeout> | undefined;
  let serverEndedAt: string | null = null;
  const listeners = new Set<(call: Call) => void>();

  const changed = () => {
    for (const listener of [...listeners]) {
      try {
        listener(call);
      } catch (error) {
        deps.report(error);
      }
    }
  };
  const setState = (next: CallState) => {
    if (state === next || state === 'ended') return;
    state = next;
    changed();
  };
  const ended = () => state === 'ended';
  /** Runs the peer's signals in arrival order; a failure is reported and the chain goes on. */
  const serial = (task: () => Promise<void>) => {
    chain = chain.then(task).catch((error: unknown) => {
      if (!ended()) deps.report(error);
    });
  };
  const stopTracks = (stream: MediaStream | null) => {
    for (const track of stream?.getTracks() ?? []) track.stop();
  };
  const applyMute = (stream: MediaStream | null) => {
    for (const track of stream?.getAudioTracks() ?? []) track.enabled = !muted;
  };

  function end(reason: CallEndReason) {
    if (ended()) return;
    state = 'ended';
    endReason = reason;
    answeredHere = false;
    clearInterval(heartbeat);
    clearTimeout(ringCheck);
    stopTracks(localStream);
    link?.close();
    link = null;
    changed();
    deps.ended(session);
  }

  const seal = (payload: SignalPayload, deviceId: string) =>
    sealTo(crypto, peerUser, deviceId, payload);
  const openFrom = (ciphertext: string, deviceId: string) =>
    open(crypto, peerUser, deviceId, ciphertext);

  async function send(kind: CallSignalKind, payload: SignalPayload) {
    if (!answeredHere || !peerDevice) return;
    try {
      await transport.signal({ callId: id, kind, ciphertext: await seal(payload, peerDevice) });
    } catch (error) {
      // The call ended meanwhile: its `call.ended` event is on the way.
      if (!ended() && errorCodeOf(error) !== 'CONFLICT') deps.report(error);
    }
  }

  async function acquire(video: boolean, audio = true): Promise<MediaStream> {
    let stream: MediaStream;
    try {
      stream = await deps.getUserMedia()({ audio, video });
    } catch (error) {
      throw new CallError('MEDIA_FAILED', 'Could not open the microphone or camera', {
        cause: error,
      });
    }
    // Muted before the microphone opened (while ringing or dialing): it opens muted.
    applyMute(stream);
    return stream;
  }

  /** When the TURN credentials in use expire (ms): a restart near it fetches new ones. */
  let iceExpiresAt = 0;
  async function fetchIceServers() {
    const ice = await transport.iceServers();
    iceExpiresAt = Date.now() + ice.ttlSeconds * 1000;
    return ice;
  }

  function connect(iceServers: { urls: string[]; username?: string; credential?: string }[]) {
    link = createPeerLink({
      PeerConnection: deps.PeerConnection(),
      iceServers,
      refreshIceServers: async () =>
        Date.now() < iceExpiresAt - ICE_REFRESH_MARGIN_MS
          ? null
          : (await fetchIceServers()).iceServers,
      polite: incoming, // the callee yields on an offer collision
      timing,
      send,
      report: deps.report,
      onState: (now) => {
        if (now === 'failed') void hangupWith('ice_failed', 'failed').catch(deps.report);
        else setState(now);
      },
      onChange: changed,
    });
    return link;
  }

  /** The call is answered: the peer device is known, so candidates and beats can flow. */
  function answered() {
    answeredHere = true;
    setState('connecting');
    heartbeat = setInterval(beat, timing.heartbeatMs);
    link?.open();
    for (const signal of early.splice(0)) onSignal(signal.from, signal.kind, signal.ciphertext);
  }

  function beat() {
    transport.heartbeat(id).catch((error: unknown) => {
      if (ended()) return;
      const code = errorCodeOf(error);
      // Not (or no longer) this device's call to beat for: it ended over there, and the
      // `call.ended` is on its way or went past (a resync skipped it).
      if (code === 'CONFLICT' || code === 'NOT_FOUND') void checkEnded().catch(deps.report);
      else deps.report(error);
    });
  }

  /** The server's final record, as the end of the call here. */
  function endAs(serverCall: ServerCall) {
    if (!ended()) serverEndedAt = serverCall.endedAt;
    end(endReasonOf(serverCall));
  }

  /**
   * The end of a call may never reach this device (a resync skips past it): asked, the server
   * says how it ended, rather than the connection failing later as if the network had.
   */
  async function checkEnded() {
    if (ended() || !id) return;
    const now = await transport.get(id).catch(() => null);
    if (now && now.state !== 'ringing' && now.state !== 'accepted') endAs(now);
  }

  /**
   * Nothing rings for ever: when the end of the ring never reached this device (its stream was
   * down, or a resync went past it), the server is asked. Still ringing there (its timeout job may
   * run late): asked again later. Unreachable: the ring ends here, as the server's would have.
   */
  function watchRinging() {
    clearTimeout(ringCheck);
    ringCheck = setTimeout(() => void checkRinging().catch(deps.report), timing.ringCheckMs);
  }

  async function checkRinging() {
    const waiting = () => (state === 'ringing' && !accepting) || state === 'dialing';
    if (!waiting()) return;
    const now = await transport.get(id).catch(() => null);
    if (!waiting()) return;
    if (now?.state === 'ringing') return watchRinging();
    if (!now) return end(incoming ? 'missed' : 'failed');
    if (now.state !== 'accepted') return end(endReasonOf(now));
    // Answered, and this device missed it: elsewhere (a callee's other device), or the answer
    // itself (the caller), which cannot be had again: the call is hung up.
    if (incoming) return end('answered_elsewhere');
    await hangupWith('user_hangup', 'failed');
  }

  async function hangupWith(
    reason: 'user_hangup' | 'ice_failed' | 'user_media_failed',
    local: CallEndReason,
  ) {
    if (ended()) return;
    const callId = id;
    end(local);
    if (!callId) return;
    // The call is over here either way; only a refusal for good is the app's to hear of.
    await tellEnd(callId, (c) => transport.hangup(c, reason), Date.now());
  }

  async function dial() {
    if (state !== 'idle') throw new CallError('INVALID_STATE', 'This call was placed already');
    setState('dialing');
    /** The call id once the start is sent: from then on the server may have placed it. */
    let sent: { callId: string; at: number } | null = null;
    try {
      const [devices, ice] = await Promise.all([transport.devices(peerUser), fetchIceServers()]);
      if (devices.length === 0)
        throw new CallError(
          'NO_DEVICES',
          'This user has no device that can take calls (no published device keys)',
        );
      const stream = await acquire(init.media === 'video');
      if (ended()) return stopTracks(stream);
      localStream = stream;
      const peer = connect(ice.iceServers);
      peer.useLocalStream(stream);
      changed();
      const description = await peer.createOffer();
      // Named here and sealed into every offer, so that no offer can ring in another call.
      const callId = newCallId();
      const offers = await Promise.all(
        devices.map(async (deviceId) => ({
          deviceId,
          ciphertext: await seal({ description, callId }, deviceId),
        })),
      );
      sent = { callId, at: Date.now() };
      sentId = callId;
      const placed = await transport.start({
        callId,
        calleeId: peerUser,
        media: init.media,
        offers,
      });
      id = placed.id;
      // Hung up while the start was on its way: it rings over there, so end it there too.
      if (ended() && placed.state === 'ringing')
        await tellEnd(id, userHangup, sent.at).catch(() => undefined);
      else if (placed.state !== 'ringing') {
        serverEndedAt = placed.endedAt;
        end(endReasonOf(placed));
      } else watchRinging();
    } catch (error) {
      end('failed');
      // A start that failed may have placed the call all the same (only the reply was lost): it
      // would ring over there with nobody calling, and answer my retry `busy`. Cancelled in
      // case, before the failure is told (so a retry finds it gone); NOT_FOUND: never placed.
      if (sent !== null && !id)
        await tellEnd(sent.callId, userHangup, sent.at).catch(() => undefined);
      throw error;
    }
  }

  function userHangup(callId: string) {
    return transport.hangup(callId, 'user_hangup');
  }

  /**
   * What ends a call over there (a hangup, a decline, a lost start's cancel) must reach the
   * server, or the other side goes on ringing, or connecting to nobody, until the server's
   * timeouts. Tried at once; when the network lost it (or a 5xx, or a token hiccup), tried again
   * in the background with backoff, not holding anything up, until the server answers, for
   * TELL_END_FOR_MS after `since` (when the call was last in motion), or until the manager
   * closes. Throws a refusal for good; CONFLICT is none: the call is over already.
   */
  async function tellEnd(
    callId: string,
    send: (callId: string) => Promise<unknown>,
    since: number,
  ): Promise<void> {
    try {
      await send(callId);
    } catch (error) {
      if (errorCodeOf(error) === 'CONFLICT') return;
      const verdict = classifySendError(error);
      if (!verdict.retry) throw error;
      tellEndLater(callId, send, since + TELL_END_FOR_MS, 0, verdict.afterMs);
    }
  }

  function tellEndLater(
    callId: string,
    send: (callId: string) => Promise<unknown>,
    until: number,
    attempt: number,
    afterMs?: number,
  ) {
    const { closing } = deps;
    const delay = Math.max(afterMs ?? 0, reconnectDelayMs(attempt));
    if (closing.over || Date.now() + delay > until) return;
    const timer = setTimeout(() => {
      forget();
      send(callId).then(
        () => undefined,
        (error: unknown) => {
          const verdict = classifySendError(error); // CONFLICT included: no retry
          if (verdict.retry) tellEndLater(callId, send, until, attempt + 1, verdict.afterMs);
        },
      );
    }, delay);
    const forget = closing.onEnd(() => clearTimeout(timer));
  }

  async function accept(options: { video?: boolean } = {}) {
    if (!incoming || state !== 'ringing')
      throw new CallError('INVALID_STATE', 'Only a ringing incoming call can be accepted');
    const caller = peerDevice!;
    accepting = true;
    setState('connecting');
    let stream: MediaStream | null = null;
    // Until the answer is sent the server knows nothing of this attempt: a failure here is this
    // device's alone, and must not decline the call on the others (or for the caller).
    let answerSent = false;
    try {
      const ice = await fetchIceServers();
      stream = await acquire(options.video ?? init.media === 'video');
      if (ended()) return stopTracks(stream);
      const peer = connect(ice.iceServers);
      localStream = stream;
      stream = null;
      peer.useLocalStream(localStream);
      changed();
      const answer = await peer.answer(init.offer!);
      const sealed = await seal({ description: answer }, caller);
      if (ended()) return;
      answerSent = true;
      await transport.accept({ callId: id, answer: sealed });
    } catch (error) {
      stopTracks(stream);
      if (ended()) return;
      if (errorCodeOf(error) === 'CONFLICT') {
        // Not ringing any more: answered on another device, cancelled or timed out.
        const now = await transport.get(id).catch(() => null);
        end(now && now.state !== 'accepted' ? endReasonOf(now) : 'answered_elsewhere');
        return;
      }
      accepting = false;
      if (error instanceof CallError && error.code === 'MEDIA_FAILED' && !elsewhere) {
        // Still ringing: the app can ask again (or decline).
        link?.close();
        link = null;
        stopTracks(localStream);
        localStream = null;
        state = 'ringing';
        changed();
        // A ring check that came while it was answering let it be: it must look again.
        watchRinging();
        throw error;
      }
      if (elsewhere) return end('answered_elsewhere');
      // Sent, but the answer to it was lost: hang up only a call this device may have answered.
      const now = answerSent ? await transport.get(id).catch(() => null) : null;
      if (now?.state === 'accepted')
        await hangupWith('user_hangup', 'failed').catch(() => undefined);
      else end('failed');
      throw error;
    }
    if (!ended()) return answered();
    // Hung up while the answer was on its way, and the answer got in first: that hangup may have
    // been lost, or read as the decline of a ringing call and refused (by a server without the
    // crossed-answer fallback), and the caller would connect to nobody. Once more, now answered.
    await tellEnd(id, userHangup, Date.now()).catch(() => undefined);
  }

  async function decline() {
    if (!incoming || state !== 'ringing')
      throw new CallError('INVALID_STATE', 'Only a ringing incoming call can be declined');
    end('declined');
    await tellEnd(id, (c) => transport.reject(c), Date.now());
  }

  /**
   * One change of the camera at a time, each seeing where the last left it: two "on" taps at
   * once each opened a camera, and the first one's track stayed live (the light on) until the
   * call ended, as "off" stops only the track the sender has.
   */
  let videoChange: Promise<unknown> = Promise.resolve();
  function setVideoEnabled(enabled: boolean): Promise<void> {
    const next = videoChange.then(() => changeVideo(enabled));
    videoChange = next.catch(() => undefined);
    return next;
  }

  async function changeVideo(enabled: boolean) {
    const peer = link;
    const stream = localStream;
    if (!peer || ended() || !stream)
      throw new CallError('INVALID_STATE', 'Video can change only while the call has media');
    if (enabled === peer.videoEnabled) return;
    if (!enabled) {
      await peer.setVideoTrack(null, stream);
      return changed();
    }
    const [track] = (await acquire(true, false)).getVideoTracks();
    if (!track) throw new CallError('MEDIA_FAILED', 'The camera gave no video track');
    if (ended()) return track.stop();
    await peer.setVideoTrack(track, stream);
    changed();
  }

  function onSignal(from: string, kind: CallSignalKind, ciphertext: string) {
    if (ended()) return;
    if (!answeredHere) {
      early.push({ from, kind, ciphertext }); // raced ahead of `call.accepted`
      return;
    }
    if (from !== peerDevice) return;
    serial(async () => {
      const payload = await openFrom(ciphertext, from);
      await link?.receive(kind, payload);
    });
  }

  const call: Call = {
    get id() {
      return id;
    },
    direction: init.direction,
    peerUserId: peerUser,
    get peerDeviceId() {
      return peerDevice;
    },
    media: init.media,
    get state() {
      return state;
    },
    get endReason() {
      return endReason;
    },
    get localStream() {
      return localStream;
    },
    get remoteStream() {
      return link?.remoteStream ?? null;
    },
    get peerConnection() {
      return link?.pc ?? null;
    },
    get muted() {
      return muted;
    },
    get videoEnabled() {
      return link?.videoEnabled ?? false;
    },
    accept,
    decline,
    hangup: () =>
      state === 'ringing' && incoming ? decline() : hangupWith('user_hangup', 'hangup'),
    setMuted(next) {
      muted = next;
      applyMute(localStream);
      changed();
    },
    setVideoEnabled,
    onChange(handler) {
      listeners.add(handler);
      return { unsubscribe: () => void listeners.delete(handler) };
    },
  };

  if (incoming) watchRinging();

  const session: CallSession = {
    call,
    get serverEndedAt() {
      return serverEndedAt;
    },
    dial,
    onAccepted(deviceId, answer) {
      if (incoming || state !== 'dialing' || answeredHere) return;
      peerDevice = deviceId;
      serial(async () => {
        const payload = await openFrom(answer, deviceId);
        if (ended() || !link) return;
        await link.takeAnswer(payload.description!);
        answered();
      });
    },
    onAnsweredElsewhere() {
      if (!incoming) return;
      // The first answer wins: while this device answers, its own accept says whether it lost.
      elsewhere = true;
      if (!accepting) end('answered_elsewhere');
    },
    onEnded: endAs,
    onSignal,
    onResync() {
      void checkEnded().catch(deps.report);
    },
    dismiss() {
      if (incoming && state === 'ringing') end('missed');
    },
    leave() {
      if (incoming && state === 'ringing') return end('missed');
      if (ended()) return;
      const callId = id || sentId;
      end('hangup');
      if (callId)
        transport.hangup(callId, 'user_hangup', { outlivePage: true }).catch(() => undefined);
    },
  };
  return session;
}
