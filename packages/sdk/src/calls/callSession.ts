/**
 * One call on this device: its RTCPeerConnection, "perfect negotiation" with the peer device,
 * trickled and batched ICE candidates, ICE restarts, heartbeats, mute and video. Every SDP and
 * ICE payload is encrypted to the one peer device before it leaves.
 */
import { errorCodeOf } from '../errors';
import type { Subscription } from '../syncEngine';
import { base64ToBytes, bytesToBase64 } from '../base64';
import type { CallCrypto } from './callCrypto';
import { CallError } from './callError';
import type { CallMedia, CallSignalKind, CallTransport, ServerCall } from './transport';
import type {
  GetUserMedia,
  IceCandidate,
  IceCandidateEvent,
  MediaStream,
  PeerConnection,
  PeerConnectionConstructor,
  RtpSender,
  SessionDescription,
  TrackEvent,
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
};

export const DEFAULT_CALL_TIMING: CallTiming = {
  heartbeatMs: 30_000,
  candidateBatchMs: 40,
  disconnectedGraceMs: 4_000,
  connectTimeoutMs: 30_000,
};

export type SessionDeps = {
  transport: CallTransport;
  crypto: CallCrypto;
  me: { userId: string; deviceId: string };
  PeerConnection: () => PeerConnectionConstructor;
  getUserMedia: () => GetUserMedia;
  timing: CallTiming;
  report(error: unknown): void;
  /** Told once, when the call ends. */
  ended(session: CallSession): void;
};

/** The CallManager's side of a call: the app's `Call` plus what the event router calls. */
export type CallSession = {
  readonly call: Call;
  /** Outgoing: places the call (resolves once the server rings it, or answered busy/glare). */
  dial(): Promise<void>;
  setId(id: string): void;
  onAccepted(deviceId: string, answer: string): void;
  onAnsweredElsewhere(deviceId: string): void;
  onEnded(call: ServerCall): void;
  onSignal(fromDeviceId: string, kind: CallSignalKind, ciphertext: string): void;
};

type Payload = { description?: SessionDescription; candidates?: IceCandidate[] };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
    /** Incoming: the caller's device and its encrypted offer (base64). */
    peerDeviceId?: string;
    offer?: string;
  },
): CallSession {
  const { transport, crypto, timing } = deps;
  const peerUser = init.peerUserId;
  const polite = init.direction === 'incoming'; // the callee yields on an offer collision
  let id = init.id ?? '';
  let peerDevice = init.peerDeviceId ?? null;
  let state: CallState = init.direction === 'incoming' ? 'ringing' : 'idle';
  let endReason: CallEndReason | null = null;
  let pc: PeerConnection | null = null;
  let localStream: MediaStream | null = null;
  let remoteStream: MediaStream | null = null;
  let videoSender: RtpSender | null = null;
  let muted = false;
  let videoEnabled = false;
  // Perfect negotiation.
  let makingOffer = false;
  let ignoreOffer = false;
  let offered = false; // the first local description is set: later changes need a renegotiation
  let negotiationPending = false;
  let restarting = false;
  // Signalling to the peer device is possible once the call is answered.
  let canSignal = false;
  const localCandidates: IceCandidate[] = [];
  const remoteCandidates: IceCandidate[] = [];
  const early: { from: string; kind: CallSignalKind; ciphertext: string }[] = [];
  let chain: Promise<void> = Promise.resolve();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  let giveUpTimer: ReturnType<typeof setTimeout> | undefined;
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
  /** Runs remote signalling in arrival order; a failure is reported and the chain goes on. */
  const serial = (task: () => Promise<void>) => {
    chain = chain.then(task).catch((error: unknown) => {
      if (!ended()) deps.report(error);
    });
  };
  const later = (ms: number, task: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      task();
    }, ms);
    timers.add(timer);
    return timer;
  };
  const clear = (timer: ReturnType<typeof setTimeout> | undefined) => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timers.delete(timer);
  };

  function end(reason: CallEndReason) {
    if (ended()) return;
    state = 'ended';
    endReason = reason;
    canSignal = false;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    clearInterval(heartbeat);
    for (const track of localStream?.getTracks() ?? []) track.stop();
    try {
      pc?.close();
    } catch {
      // already closed
    }
    pc = null;
    changed();
    deps.ended(session);
  }

  const seal = async (payload: Payload, deviceId: string) =>
    bytesToBase64(
      await crypto.encrypt(peerUser, deviceId, encoder.encode(JSON.stringify(payload))),
    );
  const open = async (ciphertext: string, deviceId: string): Promise<Payload> =>
    JSON.parse(
      decoder.decode(await crypto.decrypt(peerUser, deviceId, base64ToBytes(ciphertext))),
    ) as Payload;

  async function send(kind: CallSignalKind, payload: Payload) {
    if (!canSignal || !peerDevice) return;
    try {
      await transport.signal({ callId: id, kind, ciphertext: await seal(payload, peerDevice) });
    } catch (error) {
      // The call ended meanwhile: its `call.ended` event is on the way.
      if (!ended() && errorCodeOf(error) !== 'CONFLICT') deps.report(error);
    }
  }

  function flushCandidates() {
    flushTimer = undefined;
    if (!canSignal || localCandidates.length === 0) return;
    void send('candidates', { candidates: localCandidates.splice(0) });
  }
  function scheduleFlush() {
    if (!canSignal || flushTimer !== undefined || localCandidates.length === 0) return;
    flushTimer = later(timing.candidateBatchMs, flushCandidates);
  }

  async function acquire(video: boolean): Promise<MediaStream> {
    try {
      return await deps.getUserMedia()({ audio: true, video });
    } catch (error) {
      throw new CallError('MEDIA_FAILED', 'Could not open the microphone or camera', {
        cause: error,
      });
    }
  }

  function useLocalStream(stream: MediaStream) {
    localStream = stream;
    videoEnabled = stream.getVideoTracks().length > 0;
    for (const track of stream.getTracks()) {
      const sender = pc!.addTrack(track, stream);
      if (track.kind === 'video') videoSender = sender;
    }
    changed();
  }

  async function negotiate() {
    const peer = pc;
    if (!peer || ended()) return;
    if (!canSignal) {
      // Before the answer the first offer covers everything; a later change waits for it.
      if (offered) negotiationPending = true;
      return;
    }
    const kind: CallSignalKind = restarting ? 'ice-restart' : 'renegotiate';
    try {
      makingOffer = true;
      const offer = await peer.createOffer(restarting ? { iceRestart: true } : undefined);
      if (peer.signalingState !== 'stable') return; // an offer of theirs came first
      await peer.setLocalDescription(offer);
      await send(kind, { description: peer.localDescription ?? offer });
    } catch (error) {
      if (!ended()) deps.report(error);
    } finally {
      makingOffer = false;
    }
  }

  async function applyCandidates(list: IceCandidate[]) {
    const peer = pc;
    if (!peer) return;
    if (!peer.remoteDescription) {
      remoteCandidates.push(...list);
      return;
    }
    for (const candidate of list) {
      try {
        await peer.addIceCandidate(candidate);
      } catch (error) {
        if (!ignoreOffer) deps.report(error); // candidates of an offer we ignored may not fit
      }
    }
  }

  async function applyDescription(kind: CallSignalKind, description: SessionDescription) {
    const peer = pc;
    if (!peer) return;
    const collision =
      description.type === 'offer' && (makingOffer || peer.signalingState !== 'stable');
    ignoreOffer = !polite && collision;
    if (ignoreOffer) return;
    if (collision && peer.signalingState !== 'stable')
      await peer.setLocalDescription({ type: 'rollback' });
    await peer.setRemoteDescription(description);
    await applyCandidates(remoteCandidates.splice(0));
    if (description.type !== 'offer') return;
    const answer = await peer.createAnswer();
    await peer.setLocalDescription(answer);
    await send(kind, { description: peer.localDescription ?? answer });
  }

  function restartIce() {
    const peer = pc;
    if (!peer || !canSignal || ended()) return;
    restarting = true;
    if (typeof peer.restartIce === 'function') peer.restartIce();
    else void negotiate();
  }

  function giveUpIn(ms: number) {
    if (giveUpTimer !== undefined) return;
    giveUpTimer = later(ms, () => {
      giveUpTimer = undefined;
      if (state !== 'connected') void hangupWith('ice_failed', 'failed');
    });
  }

  function onConnectionState() {
    const peer = pc;
    if (!peer || ended()) return;
    const raw = peer.connectionState ?? peer.iceConnectionState;
    const now = raw === 'completed' ? 'connected' : raw;
    if (now === 'connected') {
      clear(graceTimer);
      clear(giveUpTimer);
      graceTimer = giveUpTimer = undefined;
      restarting = false;
      setState('connected');
    } else if (now === 'disconnected' && state === 'connected') {
      setState('reconnecting');
      giveUpIn(timing.connectTimeoutMs);
      graceTimer ??= later(timing.disconnectedGraceMs, () => {
        graceTimer = undefined;
        if (state === 'reconnecting') restartIce();
      });
    } else if (now === 'failed') {
      if (state === 'connected') setState('reconnecting');
      giveUpIn(timing.connectTimeoutMs);
      restartIce();
    }
  }

  function openPeer(iceServers: { urls: string[]; username?: string; credential?: string }[]) {
    const Ctor = deps.PeerConnection();
    const peer = new Ctor({ iceServers });
    pc = peer;
    peer.addEventListener('icecandidate', (event: IceCandidateEvent) => {
      const found = event.candidate;
      if (!found?.candidate) return; // end of candidates
      localCandidates.push(
        found.toJSON?.() ?? {
          candidate: found.candidate,
          sdpMid: found.sdpMid ?? null,
          sdpMLineIndex: found.sdpMLineIndex ?? null,
          usernameFragment: found.usernameFragment ?? null,
        },
      );
      scheduleFlush();
    });
    peer.addEventListener('track', (event: TrackEvent) => {
      const stream = event.streams[0];
      if (stream && stream !== remoteStream) {
        remoteStream = stream;
        changed();
      }
    });
    peer.addEventListener('negotiationneeded', () => void negotiate());
    peer.addEventListener('connectionstatechange', onConnectionState);
    peer.addEventListener('iceconnectionstatechange', () => {
      if (peer.connectionState === undefined) onConnectionState();
    });
    return peer;
  }

  /** The call is answered: the peer device is known, so candidates and beats can flow. */
  function answered() {
    canSignal = true;
    setState('connecting');
    giveUpIn(timing.connectTimeoutMs);
    heartbeat = setInterval(() => {
      transport.heartbeat(id).catch((error: unknown) => {
        if (!ended() && errorCodeOf(error) !== 'CONFLICT') deps.report(error);
      });
    }, timing.heartbeatMs);
    scheduleFlush();
    if (negotiationPending) {
      negotiationPending = false;
      void negotiate();
    }
    for (const signal of early.splice(0)) onSignal(signal.from, signal.kind, signal.ciphertext);
  }

  async function hangupWith(
    reason: 'user_hangup' | 'ice_failed' | 'user_media_failed',
    local: CallEndReason,
  ) {
    if (ended()) return;
    const callId = id;
    end(local);
    if (!callId) return;
    try {
      await transport.hangup(callId, reason);
    } catch (error) {
      if (errorCodeOf(error) !== 'CONFLICT') throw error; // ended by the other side first
    }
  }

  async function dial() {
    if (state !== 'idle') throw new CallError('INVALID_STATE', 'This call was placed already');
    setState('dialing');
    try {
      const [devices, ice] = await Promise.all([
        transport.devices(peerUser),
        transport.iceServers(),
      ]);
      if (devices.length === 0)
        throw new CallError(
          'NO_DEVICES',
          'This user has no device that can take calls (no published device keys)',
        );
      const stream = await acquire(init.media === 'video');
      if (ended()) {
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      const peer = openPeer(ice.iceServers);
      useLocalStream(stream);
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      offered = true;
      const description = peer.localDescription ?? offer;
      const offers = await Promise.all(
        devices.map(async (deviceId) => ({
          deviceId,
          ciphertext: await seal({ description }, deviceId),
        })),
      );
      const placed = await transport.start({ calleeId: peerUser, media: init.media, offers });
      id = placed.id;
      if (placed.state !== 'ringing') end(endReasonOf(placed));
    } catch (error) {
      end('failed');
      throw error;
    }
  }

  async function accept(options: { video?: boolean } = {}) {
    if (init.direction !== 'incoming' || state !== 'ringing')
      throw new CallError('INVALID_STATE', 'Only a ringing incoming call can be accepted');
    const caller = peerDevice!;
    setState('connecting');
    let stream: MediaStream | null = null;
    try {
      const [payload, ice] = await Promise.all([
        open(init.offer ?? '', caller),
        transport.iceServers(),
      ]);
      stream = await acquire(options.video ?? init.media === 'video');
      if (ended()) return;
      const peer = openPeer(ice.iceServers);
      await peer.setRemoteDescription(payload.description!);
      useLocalStream(stream);
      stream = null;
      const answer = await peer.createAnswer();
      await peer.setLocalDescription(answer);
      offered = true;
      const sealed = await seal({ description: peer.localDescription ?? answer }, caller);
      if (ended()) return;
      await transport.accept({ callId: id, answer: sealed });
    } catch (error) {
      for (const track of stream?.getTracks() ?? []) track.stop();
      if (ended()) return;
      if (errorCodeOf(error) === 'CONFLICT') {
        // Not ringing any more: answered on another device, cancelled or timed out.
        const now = await transport.get(id).catch(() => null);
        end(now && now.state !== 'accepted' ? endReasonOf(now) : 'answered_elsewhere');
        return;
      }
      if (error instanceof CallError && error.code === 'MEDIA_FAILED') {
        // Still ringing: the app can ask again (or decline).
        try {
          pc?.close();
        } catch {
          // not open
        }
        pc = null;
        state = 'ringing';
        changed();
        throw error;
      }
      await hangupWith('user_hangup', 'failed').catch(() => undefined);
      throw error;
    }
    if (!ended()) answered();
  }

  async function decline() {
    if (init.direction !== 'incoming' || state !== 'ringing')
      throw new CallError('INVALID_STATE', 'Only a ringing incoming call can be declined');
    end('declined');
    try {
      await transport.reject(id);
    } catch (error) {
      if (errorCodeOf(error) !== 'CONFLICT') throw error;
    }
  }

  async function setVideoEnabled(enabled: boolean) {
    const peer = pc;
    if (!peer || ended() || !localStream)
      throw new CallError('INVALID_STATE', 'Video can change only while the call has media');
    if (enabled === videoEnabled) return;
    if (!enabled) {
      const track = videoSender?.track;
      if (track) {
        track.stop();
        localStream.removeTrack(track);
        await videoSender!.replaceTrack(null); // the camera is released; no renegotiation
      }
      videoEnabled = false;
      changed();
      return;
    }
    const [track] = (await acquireVideo()).getVideoTracks();
    if (!track) throw new CallError('MEDIA_FAILED', 'The camera gave no video track');
    if (ended()) return track.stop();
    localStream.addTrack(track);
    if (videoSender) await videoSender.replaceTrack(track);
    else videoSender = peer.addTrack(track, localStream); // negotiationneeded: a renegotiation
    videoEnabled = true;
    changed();
  }

  async function acquireVideo() {
    try {
      return await deps.getUserMedia()({ audio: false, video: true });
    } catch (error) {
      throw new CallError('MEDIA_FAILED', 'Could not open the camera', { cause: error });
    }
  }

  function onSignal(from: string, kind: CallSignalKind, ciphertext: string) {
    if (ended()) return;
    if (!canSignal) {
      early.push({ from, kind, ciphertext }); // raced ahead of `call.accepted`
      return;
    }
    if (from !== peerDevice) return;
    serial(async () => {
      const payload = await open(ciphertext, from);
      if (kind === 'candidates') await applyCandidates(payload.candidates ?? []);
      else if (payload.description) await applyDescription(kind, payload.description);
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
      return remoteStream;
    },
    get peerConnection() {
      return pc;
    },
    get muted() {
      return muted;
    },
    get videoEnabled() {
      return videoEnabled;
    },
    accept,
    decline,
    hangup: () =>
      state === 'ringing' && init.direction === 'incoming'
        ? decline()
        : hangupWith('user_hangup', 'hangup'),
    setMuted(next) {
      muted = next;
      for (const track of localStream?.getAudioTracks() ?? []) track.enabled = !next;
      changed();
    },
    setVideoEnabled,
    onChange(handler) {
      listeners.add(handler);
      return { unsubscribe: () => void listeners.delete(handler) };
    },
  };

  const session: CallSession = {
    call,
    dial,
    setId(value) {
      id = value;
    },
    onAccepted(deviceId, answer) {
      if (init.direction !== 'outgoing' || state !== 'dialing' || canSignal) return;
      peerDevice = deviceId;
      serial(async () => {
        const payload = await open(answer, deviceId);
        if (ended() || !pc) return;
        await pc.setRemoteDescription(payload.description!);
        answered();
        await applyCandidates(remoteCandidates.splice(0));
      });
    },
    onAnsweredElsewhere(deviceId) {
      if (init.direction === 'incoming' && deviceId !== deps.me.deviceId) end('answered_elsewhere');
    },
    onEnded(serverCall) {
      end(endReasonOf(serverCall));
    },
    onSignal,
  };
  return session;
}
