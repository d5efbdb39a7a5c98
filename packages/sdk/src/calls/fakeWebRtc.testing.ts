/**
 * A small in-memory WebRTC for unit tests: signalling states as the spec has them (an offer in
 * `have-local-offer` is refused unless rolled back, which perfect negotiation relies on),
 * negotiationneeded after addTrack and restartIce, candidates per ICE generation, and a
 * connection that comes up only once each side holds the other's current candidates, and both
 * sides hold each other's current description (the same ICE credentials on both ends).
 */
import type {
  IceCandidate,
  MediaStream,
  MediaTrack,
  PeerConnection,
  SessionDescription,
} from './webrtc';

let counter = 0;
const nextId = (prefix: string) => `${prefix}${++counter}`;

export class FakeTrack implements MediaTrack {
  readonly id = nextId('track');
  enabled = true;
  stopped = false;
  constructor(readonly kind: string) {}
  stop() {
    this.stopped = true;
  }
}

export class FakeStream implements MediaStream {
  readonly id = nextId('stream');
  constructor(private tracks: MediaTrack[] = []) {}
  getTracks() {
    return [...this.tracks];
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === 'audio');
  }
  getVideoTracks() {
    return this.tracks.filter((t) => t.kind === 'video');
  }
  addTrack(track: MediaTrack) {
    this.tracks.push(track);
  }
  removeTrack(track: MediaTrack) {
    this.tracks = this.tracks.filter((t) => t !== track);
  }
}

export const fakeGetUserMedia = async (c: { audio: boolean; video: boolean }) =>
  new FakeStream([
    ...(c.audio ? [new FakeTrack('audio')] : []),
    ...(c.video ? [new FakeTrack('video')] : []),
  ]);

type Sender = {
  track: MediaTrack | null;
  kind: string;
  replaceTrack(t: MediaTrack | null): Promise<void>;
};
type Listener = (event: never) => void;
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
/** A description's ICE credentials (`ice=<pc>.<generation>`). */
const iceOf = (description: SessionDescription | null) => description?.sdp?.split(' ')[0];

export class FakePeerConnection implements PeerConnection {
  static instances: FakePeerConnection[] = [];
  readonly id = nextId('pc');
  signalingState = 'stable';
  connectionState = 'new';
  iceConnectionState = 'new';
  localDescription: SessionDescription | null = null;
  remoteDescription: SessionDescription | null = null;
  closed = false;
  readonly senders: Sender[] = [];
  readonly added: IceCandidate[] = [];
  offersMade = 0;
  /** How many answers have waited for `holdAnswers`' release. */
  heldAnswers = 0;
  private answersHeld: Promise<void> | undefined;
  private answerBeingSet: Promise<void> | undefined;
  /** Ready to connect but for the peer, which does not hold this side's description yet. */
  private waitingForPeer = false;
  private generation = 0;
  private restartWanted = false;
  private negotiated = '';
  private stableLocal: SessionDescription | null = null;
  private remoteKinds = new Set<string>();
  private readonly remoteStream = new FakeStream();
  private listeners = new Map<string, Set<Listener>>();

  /** Every configuration set after construction (new TURN credentials). */
  readonly configurations: { iceServers: unknown[] }[] = [];

  constructor(readonly configuration: { iceServers: unknown[] }) {
    FakePeerConnection.instances.push(this);
  }

  setConfiguration(configuration: { iceServers: unknown[] }) {
    this.configurations.push(configuration);
  }

  addEventListener(type: string, listener: Listener) {
    const set = this.listeners.get(type) ?? new Set();
    set.add(listener);
    this.listeners.set(type, set);
  }
  removeEventListener(type: string, listener: Listener) {
    this.listeners.get(type)?.delete(listener);
  }
  private fire(type: string, event: unknown = {}) {
    if (this.closed) return;
    for (const listener of this.listeners.get(type) ?? [])
      (listener as (e: unknown) => void)(event);
  }

  private kinds() {
    return this.senders.map((s) => s.kind).join(',');
  }
  private sdp() {
    return `ice=${this.id}.${this.generation} m=${this.kinds()}`;
  }
  private needsNegotiation() {
    return this.restartWanted || this.kinds() !== this.negotiated;
  }
  private checkNegotiation() {
    void tick().then(() => {
      if (this.signalingState === 'stable' && this.needsNegotiation())
        this.fire('negotiationneeded');
    });
  }

  async createOffer(options?: { iceRestart?: boolean }) {
    await tick();
    if (options?.iceRestart || this.restartWanted) this.generation++;
    this.offersMade++;
    return { type: 'offer' as const, sdp: this.sdp() };
  }
  async createAnswer() {
    await tick();
    if (this.signalingState !== 'have-remote-offer') throw new Error('InvalidStateError: no offer');
    return { type: 'answer' as const, sdp: this.sdp() };
  }

  async setLocalDescription(description: SessionDescription) {
    await tick();
    // A browser chains its operations: a rollback asked for while an answer is being set comes
    // after it (and finds the state stable).
    await this.answerBeingSet;
    if (description.type === 'rollback') {
      if (this.signalingState !== 'have-local-offer')
        throw new Error('InvalidStateError: rollback');
      this.signalingState = 'stable';
      this.localDescription = this.stableLocal;
      return;
    }
    if (description.type === 'offer') {
      if (this.signalingState !== 'stable') throw new Error('InvalidStateError: offer');
      this.signalingState = 'have-local-offer';
      this.restartWanted = false;
    } else {
      if (this.signalingState !== 'have-remote-offer') throw new Error('InvalidStateError: answer');
      this.signalingState = 'stable';
      this.stableLocal = description;
      this.negotiated = this.kinds();
    }
    this.localDescription = description;
    this.gather(description.sdp ?? '');
    if (this.signalingState === 'stable') this.settled();
  }

  /** Answers set from now on wait until the returned function is called, as in a slow browser. */
  holdAnswers() {
    let release!: () => void;
    this.answersHeld = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.answersHeld = undefined;
      release();
    };
  }

  async setRemoteDescription(description: SessionDescription) {
    await tick();
    if (description.type === 'answer' && this.answersHeld) {
      this.heldAnswers++;
      this.answerBeingSet = this.answersHeld;
      await this.answerBeingSet;
      this.answerBeingSet = undefined;
    }
    if (description.type === 'offer') {
      if (this.signalingState !== 'stable') throw new Error('InvalidStateError: glare');
      const previous = this.remoteDescription?.sdp?.split(' ')[0];
      if (previous && previous !== description.sdp?.split(' ')[0]) this.generation++;
      this.signalingState = 'have-remote-offer';
    } else {
      if (this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError: answer');
      this.signalingState = 'stable';
      this.stableLocal = this.localDescription;
      this.negotiated = this.kinds();
    }
    this.remoteDescription = description;
    const kinds =
      /m=(\S*)/
        .exec(description.sdp ?? '')?.[1]
        ?.split(',')
        .filter(Boolean) ?? [];
    for (const kind of kinds) {
      if (this.remoteKinds.has(kind)) continue;
      this.remoteKinds.add(kind);
      const track = new FakeTrack(kind);
      this.remoteStream.addTrack(track);
      this.fire('track', { track, streams: [this.remoteStream] });
    }
    if (this.signalingState === 'stable') this.settled();
  }

  private settled() {
    this.checkNegotiation();
    this.maybeConnect();
  }

  private gather(sdp: string) {
    const ice = sdp.split(' ')[0] ?? '';
    void tick().then(() => {
      for (const n of [1, 2])
        this.fire('icecandidate', {
          candidate: { candidate: `candidate:${ice}:${n}`, sdpMid: '0', sdpMLineIndex: 0 },
        });
      this.fire('icecandidate', { candidate: null });
    });
  }

  async addIceCandidate(candidate: IceCandidate) {
    await tick();
    if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
    this.added.push(candidate);
    this.maybeConnect();
  }

  /**
   * The connection whose current local description this one holds as its remote: the only one
   * its ICE checks reach. They succeed only if that one holds this one's current description in
   * turn: an answer set on another offer than the one it answers leaves mismatched credentials.
   */
  private peer() {
    const remoteIce = iceOf(this.remoteDescription);
    const peer = FakePeerConnection.instances.find(
      (pc) => pc !== this && !pc.closed && iceOf(pc.localDescription) === remoteIce,
    );
    return peer && iceOf(peer.remoteDescription) === iceOf(this.localDescription)
      ? peer
      : undefined;
  }

  private maybeConnect() {
    this.waitingForPeer = false;
    const remoteIce = iceOf(this.remoteDescription);
    if (
      this.signalingState !== 'stable' ||
      !this.localDescription ||
      !remoteIce ||
      this.connectionState === 'connecting' ||
      this.connectionState === 'connected' ||
      !this.added.some((c) => c.candidate?.startsWith(`candidate:${remoteIce}:`))
    )
      return;
    const peer = this.peer();
    if (!peer) {
      this.waitingForPeer = true;
      return;
    }
    this.setConnection('connecting');
    void tick().then(() => this.setConnection('connected'));
    // Only one that was ready and waited for this side: a connection the test failed on purpose
    // stays failed.
    if (peer.waitingForPeer) peer.maybeConnect();
  }

  setConnection(state: string) {
    if (this.closed) return;
    this.connectionState = state;
    this.iceConnectionState = state === 'connecting' ? 'checking' : state;
    this.fire('iceconnectionstatechange');
    this.fire('connectionstatechange');
  }

  addTrack(track: MediaTrack) {
    const sender: Sender = {
      track,
      kind: track.kind,
      async replaceTrack(next) {
        sender.track = next;
      },
    };
    this.senders.push(sender);
    this.checkNegotiation();
    return sender;
  }
  getSenders() {
    return [...this.senders];
  }
  restartIce() {
    this.restartWanted = true;
    this.checkNegotiation();
  }
  async getStats() {
    return new Map([['in', { type: 'inbound-rtp', packetsReceived: this.added.length }]]);
  }
  close() {
    this.closed = true;
    this.connectionState = 'closed';
    this.signalingState = 'closed';
  }
}
