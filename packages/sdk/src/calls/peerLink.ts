/**
 * The RTCPeerConnection side of one call: "perfect negotiation" (the polite side rolls back its
 * own offer on a collision, the impolite one ignores the other's), trickled candidates batched
 * per window, candidates that arrive early held until they fit, ICE restarts, offers whose
 * answer never comes made again, and the camera turned on and off. It knows nothing of the
 * server or of encryption: `send` carries payloads.
 */
import type { CallSignalKind } from './transport';
import type {
  IceCandidate,
  IceCandidateEvent,
  IceServer,
  MediaStream,
  MediaTrack,
  PeerConnection,
  PeerConnectionConstructor,
  RtpSender,
  SessionDescription,
  TrackEvent,
} from './webrtc';

export type SignalPayload = {
  description?: SessionDescription;
  candidates?: IceCandidate[];
  /** In the caller's offer only: the call it belongs to (see `openOffer`). */
  callId?: string;
  /**
   * In a renegotiation or restart offer: its number; in the answer to it, the same, echoed. An
   * offer taken back and made again is answered twice, and the late answer must not be taken for
   * the new offer's. None from an older SDK: its offers are answered without one, and its answers
   * taken as before.
   */
  offerId?: number;
};
export type LinkState = 'connected' | 'reconnecting' | 'failed';

export type LinkTiming = {
  candidateBatchMs: number;
  disconnectedGraceMs: number;
  connectTimeoutMs: number;
  answerWaitMs: number;
};

export type PeerLink = {
  readonly pc: PeerConnection;
  readonly remoteStream: MediaStream | null;
  readonly videoEnabled: boolean;
  /** Adds the tracks of the local stream (before the first offer or answer covers them). */
  useLocalStream(stream: MediaStream): void;
  /** The caller's first offer, sent with `calls.start` rather than as a signal. */
  createOffer(): Promise<SessionDescription>;
  /** The callee's answer to the caller's first offer. */
  answer(offer: SessionDescription): Promise<SessionDescription>;
  /** The caller takes the callee's answer. */
  takeAnswer(answer: SessionDescription): Promise<void>;
  /** The call is answered: candidates, renegotiations and restarts may now go to the peer. */
  open(): void;
  /** A signal of the peer device, in arrival order. */
  receive(kind: CallSignalKind, payload: SignalPayload): Promise<void>;
  setVideoTrack(track: MediaTrack | null, stream: MediaStream): Promise<void>;
  close(): void;
};

export function createPeerLink(deps: {
  PeerConnection: PeerConnectionConstructor;
  iceServers: IceServer[];
  /**
   * Asked before an ICE restart: new ICE servers when the TURN credentials have expired or are
   * about to (null: keep them). coturn checks credentials only when a relay is allocated, so a
   * call outlives them, but a restart allocates again and would be refused.
   */
  refreshIceServers(): Promise<IceServer[] | null>;
  polite: boolean;
  timing: LinkTiming;
  send(kind: CallSignalKind, payload: SignalPayload): Promise<void>;
  report(error: unknown): void;
  /** Connection news: connected, lost (reconnecting), or not back in time (failed). */
  onState(state: LinkState): void;
  /** Streams or video changed. */
  onChange(): void;
}): PeerLink {
  const { timing, polite } = deps;
  const pc = new deps.PeerConnection({ iceServers: deps.iceServers });
  let closed = false;
  let remoteStream: MediaStream | null = null;
  let videoSender: RtpSender | null = null;
  let videoEnabled = false;
  let makingOffer = false;
  let ignoreOffer = false;
  let described = false; // the first local description is set: later changes renegotiate
  let negotiationPending = false;
  let restarting = false;
  let offersMade = 0;
  /** My offer (its `offerId`) set as the local description and waiting for its answer. */
  let pendingOffer: number | null = null;
  let canSignal = false;
  let connected = false;
  const localCandidates: IceCandidate[] = [];
  const remoteCandidates: IceCandidate[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  let giveUpTimer: ReturnType<typeof setTimeout> | undefined;
  /** Runs while an offer of mine waits for its answer. */
  let answerTimer: ReturnType<typeof setTimeout> | undefined;

  /** After the close a failure is of no interest: the call is over. */
  const fail = (error: unknown) => {
    if (!closed) deps.report(error);
  };

  function flush() {
    flushTimer = undefined;
    if (!canSignal || closed || localCandidates.length === 0) return;
    void deps.send('candidates', { candidates: localCandidates.splice(0) });
  }
  function scheduleFlush() {
    if (!canSignal || flushTimer !== undefined || localCandidates.length === 0) return;
    flushTimer = setTimeout(flush, timing.candidateBatchMs);
  }

  /** My offer, set as the local description; null when an offer of theirs came first. */
  async function makeOffer(): Promise<SessionDescription | null> {
    makingOffer = true;
    try {
      const offer = await pc.createOffer(restarting ? { iceRestart: true } : undefined);
      if (pc.signalingState !== 'stable') return null;
      await pc.setLocalDescription(offer);
      return pc.localDescription ?? offer;
    } finally {
      makingOffer = false;
    }
  }

  async function negotiate() {
    // One offer at a time: an offer made again races the negotiationneeded that a rollback may
    // fire, and a change that comes meanwhile fires it again once the state is stable.
    if (closed || makingOffer) return;
    if (!canSignal) {
      // Before the answer the first offer covers everything; a later change waits for it.
      if (described) negotiationPending = true;
      return;
    }
    const kind: CallSignalKind = restarting ? 'ice-restart' : 'renegotiate';
    try {
      const offer = await makeOffer();
      if (!offer) return;
      const offerId = ++offersMade;
      // Before the send: the answer may come before the reply to it. A failed send is left to
      // this wait too: the reply may be what was lost, and the answer still come; and offered
      // again at once, an offer would go round as fast as a device offline fails its requests.
      waitForAnswer(offerId);
      await deps.send(kind, { description: offer, offerId });
    } catch (error) {
      fail(error);
    }
  }

  async function addCandidates(list: IceCandidate[]) {
    if (!pc.remoteDescription) {
      remoteCandidates.push(...list);
      return;
    }
    for (const candidate of list) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (error) {
        if (!ignoreOffer && !closed) deps.report(error); // those of an ignored offer may not fit
      }
    }
  }

  /**
   * Signals are not stored: an offer the peer never got (its signal failed or was dropped), or
   * whose answer was lost, would leave the connection in have-local-offer for good, where no
   * restart can start and (impolite) every offer of theirs counts as a collision.
   */
  function waitForAnswer(offerId: number) {
    clearTimeout(answerTimer);
    pendingOffer = offerId;
    answerTimer = setTimeout(() => {
      answerTimer = undefined;
      void offerAgain(offerId).catch(fail);
    }, timing.answerWaitMs);
  }

  function stopWaitingForAnswer() {
    clearTimeout(answerTimer);
    answerTimer = undefined;
    pendingOffer = null;
  }

  /**
   * My offer waiting for its answer is withdrawn: the state is stable again. False when there
   * was none to withdraw, or its answer won the race.
   */
  async function takeBackOffer(): Promise<boolean> {
    stopWaitingForAnswer();
    if (pc.signalingState !== 'have-local-offer') return false;
    try {
      await pc.setLocalDescription({ type: 'rollback' });
      return true;
    } catch (error) {
      // Its answer was being set meanwhile (a browser queues the rollback after it): stable
      // already, with an answer that fits, so there is nothing to take back and nothing wrong.
      if (pc.signalingState === 'have-local-offer') throw error;
      return false;
    }
  }

  /** No answer in time: offered again (a restart, until the connect timeout gives up). */
  async function offerAgain(offerId: number) {
    // Answered, or taken back, since the timer was set: that offer no longer waits.
    if (closed || pc.signalingState !== 'have-local-offer' || pendingOffer !== offerId) return;
    // Answered after all: offered again, it would only renegotiate what the answer settled.
    if (!(await takeBackOffer()) || closed) return;
    if (restarting) beginRestart();
    else await negotiate();
  }

  /**
   * Their answer, if it answers my offer waiting. One to an offer taken back comes late (the
   * peer answers the new one too): set on the new offer, it would leave each side with ICE
   * credentials the other does not use, and the answer that fits dropped as coming to no offer.
   */
  async function takeTheirAnswer(description: SessionDescription, offerId: number | undefined) {
    const waiting = pendingOffer;
    if (pc.signalingState !== 'have-local-offer' || waiting === null) return;
    if (offerId !== undefined && offerId !== waiting) return;
    ignoreOffer = false; // an offer of theirs ignored before is past: candidates fit again
    // No rollback by the timer while it is being set: the rollback would meet it.
    clearTimeout(answerTimer);
    try {
      await pc.setRemoteDescription(description);
    } catch (error) {
      // Its offer was taken back meanwhile (a restart): a new offer follows; nothing to tell.
      if (pendingOffer !== waiting) return;
      waitForAnswer(waiting); // still waiting, for an answer that fits, or to offer again
      throw error;
    }
    if (pendingOffer === waiting) stopWaitingForAnswer();
    await addCandidates(remoteCandidates.splice(0));
  }

  async function takeDescription(
    kind: CallSignalKind,
    description: SessionDescription,
    offerId: number | undefined,
  ) {
    if (description.type === 'answer') return takeTheirAnswer(description, offerId);
    const collision =
      description.type === 'offer' && (makingOffer || pc.signalingState !== 'stable');
    ignoreOffer = !polite && collision;
    if (ignoreOffer) return;
    if (collision && pc.signalingState !== 'stable') {
      stopWaitingForAnswer(); // mine gives way to theirs
      await pc.setLocalDescription({ type: 'rollback' });
    }
    await pc.setRemoteDescription(description);
    await addCandidates(remoteCandidates.splice(0));
    if (description.type !== 'offer') return;
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    // The offer's id echoed (undefined, from an older SDK, is left out of the JSON).
    await deps.send(kind, { description: pc.localDescription ?? answer, offerId });
  }

  async function restartIce() {
    if (closed || !canSignal) return;
    restarting = true;
    try {
      const iceServers = await deps.refreshIceServers();
      if (iceServers && !closed) pc.setConfiguration?.({ iceServers });
    } catch (error) {
      deps.report(error); // restarted with the credentials it has
    }
    if (closed) return;
    // A restart is a new offer: one of mine still waiting (lost, or its answer lost) would
    // hold it up for good.
    await takeBackOffer().catch(fail);
    if (!closed) beginRestart();
  }

  function beginRestart() {
    if (typeof pc.restartIce === 'function') pc.restartIce();
    else void negotiate();
  }

  function giveUpLater() {
    giveUpTimer ??= setTimeout(() => {
      giveUpTimer = undefined;
      if (!connected && !closed) deps.onState('failed');
    }, timing.connectTimeoutMs);
  }

  function onConnectionState() {
    if (closed) return;
    const raw = pc.connectionState ?? pc.iceConnectionState;
    const now = raw === 'completed' ? 'connected' : raw;
    if (now === 'connected') {
      clearTimeout(graceTimer);
      clearTimeout(giveUpTimer);
      graceTimer = giveUpTimer = undefined;
      restarting = false;
      connected = true;
      deps.onState('connected');
    } else if (now === 'disconnected' && connected) {
      connected = false;
      deps.onState('reconnecting');
      giveUpLater();
      graceTimer ??= setTimeout(() => {
        graceTimer = undefined;
        if (!connected) void restartIce();
      }, timing.disconnectedGraceMs);
    } else if (now === 'failed') {
      if (connected) deps.onState('reconnecting');
      connected = false;
      giveUpLater();
      void restartIce();
    }
  }

  pc.addEventListener('icecandidate', (event: IceCandidateEvent) => {
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
  pc.addEventListener('track', (event: TrackEvent) => {
    const stream = event.streams[0];
    if (!stream || stream === remoteStream) return;
    remoteStream = stream;
    deps.onChange();
  });
  pc.addEventListener('negotiationneeded', () => void negotiate());
  pc.addEventListener('connectionstatechange', onConnectionState);
  pc.addEventListener('iceconnectionstatechange', () => {
    if (pc.connectionState === undefined) onConnectionState();
  });

  return {
    pc,
    get remoteStream() {
      return remoteStream;
    },
    get videoEnabled() {
      return videoEnabled;
    },
    useLocalStream(stream) {
      for (const track of stream.getTracks()) {
        const sender = pc.addTrack(track, stream);
        if (track.kind === 'video') {
          videoSender = sender;
          videoEnabled = true;
        }
      }
    },
    async createOffer() {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      described = true;
      return pc.localDescription ?? offer;
    },
    async answer(offer) {
      await pc.setRemoteDescription(offer);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      described = true;
      return pc.localDescription ?? answer;
    },
    async takeAnswer(answer) {
      await pc.setRemoteDescription(answer);
      await addCandidates(remoteCandidates.splice(0));
    },
    open() {
      canSignal = true;
      giveUpLater();
      scheduleFlush();
      if (negotiationPending) {
        negotiationPending = false;
        void negotiate();
      }
    },
    async receive(kind, payload) {
      if (closed) return;
      if (kind === 'candidates') await addCandidates(payload.candidates ?? []);
      else if (payload.description)
        await takeDescription(kind, payload.description, payload.offerId);
    },
    async setVideoTrack(track, stream) {
      if (!track) {
        const current = videoSender?.track;
        if (current) {
          current.stop();
          stream.removeTrack(current);
          await videoSender!.replaceTrack(null); // the camera is released; no renegotiation
        }
        videoEnabled = false;
        return;
      }
      stream.addTrack(track);
      if (videoSender) await videoSender.replaceTrack(track);
      else videoSender = pc.addTrack(track, stream); // negotiationneeded: a renegotiation
      videoEnabled = true;
    },
    close() {
      if (closed) return;
      closed = true;
      canSignal = false;
      clearTimeout(flushTimer);
      clearTimeout(graceTimer);
      clearTimeout(giveUpTimer);
      stopWaitingForAnswer();
      try {
        pc.close();
      } catch {
        // already closed
      }
    },
  };
}
