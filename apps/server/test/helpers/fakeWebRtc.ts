/**
 * Just enough WebRTC for SDK clients in Node to set up a call: offers, answers and candidates
 * whose text carries a label (so a test can look for it where it must not be), and a connection
 * that comes up once each side holds the other's description and a candidate of theirs. No media
 * flows and nothing renegotiates: the browser test covers real WebRTC.
 */
import type {
  IceCandidate,
  MediaStream,
  MediaTrack,
  PeerConnection,
  SessionDescription,
} from '@mvp/sdk';

let counter = 0;

class Track implements MediaTrack {
  readonly id = `track-${++counter}`;
  enabled = true;
  constructor(readonly kind: string) {}
  stop() {
    this.enabled = false;
  }
}

class Stream implements MediaStream {
  readonly id = `stream-${++counter}`;
  constructor(private tracks: MediaTrack[] = []) {}
  getTracks = () => [...this.tracks];
  getAudioTracks = () => this.tracks.filter((t) => t.kind === 'audio');
  getVideoTracks = () => this.tracks.filter((t) => t.kind === 'video');
  addTrack = (track: MediaTrack) => void this.tracks.push(track);
  removeTrack = (track: MediaTrack) => void (this.tracks = this.tracks.filter((t) => t !== track));
}

type Listener = (event: never) => void;

/** A WebRTC for one client: every SDP and candidate it makes contains `label`. */
export function fakeWebRtc(label: string) {
  const instances: FakePeer[] = [];

  class FakePeer implements PeerConnection {
    readonly n = ++counter;
    signalingState = 'stable';
    connectionState = 'new';
    iceConnectionState = 'new';
    localDescription: SessionDescription | null = null;
    remoteDescription: SessionDescription | null = null;
    /** The candidates this side found, and the ones the peer's side sent it. */
    readonly gathered: IceCandidate[] = [];
    readonly added: IceCandidate[] = [];
    private readonly tracks: MediaTrack[] = [];
    private readonly listeners = new Map<string, Set<Listener>>();

    constructor(_configuration: unknown) {
      instances.push(this);
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
      if (this.connectionState === 'closed') return;
      for (const listener of this.listeners.get(type) ?? [])
        (listener as (e: unknown) => void)(event);
    }

    private sdp(type: string) {
      const kinds = this.tracks.map((t) => t.kind).join(',');
      return `v=0\r\no=- ${this.n} 2 IN IP4 127.0.0.1\r\na=${type}:${label}\r\na=media:${kinds}\r\n`;
    }
    async createOffer() {
      return { type: 'offer' as const, sdp: this.sdp('offer') };
    }
    async createAnswer() {
      return { type: 'answer' as const, sdp: this.sdp('answer') };
    }

    async setLocalDescription(description: SessionDescription) {
      this.localDescription = description;
      this.signalingState = description.type === 'offer' ? 'have-local-offer' : 'stable';
      // Gathering starts with the local description, and its results come later.
      setTimeout(() => {
        for (const n of [1, 2]) {
          const candidate = {
            candidate: `candidate:${n} 1 udp 2130706431 10.0.0.${n} 5000${n} typ host ${label}`,
            sdpMid: '0',
            sdpMLineIndex: 0,
            usernameFragment: null,
          };
          this.gathered.push(candidate);
          this.fire('icecandidate', { candidate });
        }
        this.fire('icecandidate', { candidate: null });
      }, 0);
      this.maybeConnect();
    }

    async setRemoteDescription(description: SessionDescription) {
      this.remoteDescription = description;
      this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable';
      const kinds = /a=media:(\S*)/.exec(description.sdp ?? '')?.[1]?.split(',') ?? [];
      const stream = new Stream(kinds.filter(Boolean).map((kind) => new Track(kind)));
      for (const track of stream.getTracks()) this.fire('track', { track, streams: [stream] });
      this.maybeConnect();
    }

    async addIceCandidate(candidate: IceCandidate) {
      this.added.push(candidate);
      this.maybeConnect();
    }

    private maybeConnect() {
      if (
        this.signalingState !== 'stable' ||
        !this.localDescription ||
        !this.remoteDescription ||
        this.added.length === 0 ||
        this.connectionState !== 'new'
      )
        return;
      this.connectionState = this.iceConnectionState = 'connected';
      this.fire('iceconnectionstatechange');
      this.fire('connectionstatechange');
    }

    addTrack(track: MediaTrack) {
      this.tracks.push(track);
      const sender = {
        track: track as MediaTrack | null,
        replaceTrack: async (next: MediaTrack | null) => void (sender.track = next),
      };
      return sender;
    }
    getSenders() {
      return [];
    }
    async getStats() {
      return new Map();
    }
    close() {
      this.connectionState = this.signalingState = 'closed';
    }
  }

  return {
    RTCPeerConnection: FakePeer,
    getUserMedia: async (c: { audio: boolean; video: boolean }): Promise<MediaStream> =>
      new Stream([
        ...(c.audio ? [new Track('audio')] : []),
        ...(c.video ? [new Track('video')] : []),
      ]),
    instances,
  };
}
