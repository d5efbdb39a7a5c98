/**
 * The slice of WebRTC the CallManager uses, typed structurally: the browser's RTCPeerConnection,
 * react-native-webrtc's and the unit tests' fake all fit, and the SDK needs no DOM typings.
 */
export type SessionDescription = {
  type: 'offer' | 'answer' | 'pranswer' | 'rollback';
  sdp?: string;
};
export type IceCandidate = {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
};
export type MediaTrack = {
  readonly id: string;
  readonly kind: string;
  enabled: boolean;
  stop(): void;
};
export type MediaStream = {
  readonly id: string;
  getTracks(): MediaTrack[];
  getAudioTracks(): MediaTrack[];
  getVideoTracks(): MediaTrack[];
  addTrack(track: MediaTrack): void;
  removeTrack(track: MediaTrack): void;
};
export type RtpSender = {
  readonly track: MediaTrack | null;
  replaceTrack(track: MediaTrack | null): Promise<void>;
};
export type IceServer = { urls: string | string[]; username?: string; credential?: string };

type Listener = (event: never) => void;

export type PeerConnection = {
  readonly signalingState: string;
  /** Missing in some react-native-webrtc versions: `iceConnectionState` is used then. */
  readonly connectionState?: string;
  readonly iceConnectionState: string;
  readonly localDescription: SessionDescription | null;
  readonly remoteDescription: SessionDescription | null;
  createOffer(options?: { iceRestart?: boolean }): Promise<SessionDescription>;
  createAnswer(): Promise<SessionDescription>;
  setLocalDescription(description: SessionDescription): Promise<void>;
  setRemoteDescription(description: SessionDescription): Promise<void>;
  addIceCandidate(candidate: IceCandidate): Promise<void>;
  addTrack(track: MediaTrack, ...streams: MediaStream[]): RtpSender;
  getSenders(): RtpSender[];
  restartIce?(): void;
  /** Browsers and react-native-webrtc have it: new TURN credentials before an ICE restart. */
  setConfiguration?(configuration: { iceServers: IceServer[] }): void;
  getStats(): Promise<unknown>;
  close(): void;
  addEventListener(type: string, listener: Listener): void;
  removeEventListener(type: string, listener: Listener): void;
};
export type PeerConnectionConstructor = new (configuration: {
  iceServers: IceServer[];
}) => PeerConnection;
export type GetUserMedia = (constraints: {
  audio: boolean;
  video: boolean;
}) => Promise<MediaStream>;

/** The events the CallManager listens to, as it reads them. */
export type IceCandidateEvent = { candidate: (IceCandidate & { toJSON?(): IceCandidate }) | null };
export type TrackEvent = { track: MediaTrack; streams: readonly MediaStream[] };

/** The platform's WebRTC, or a clear error naming the option to pass. */
export function platformPeerConnection(): PeerConnectionConstructor {
  const found = (globalThis as { RTCPeerConnection?: PeerConnectionConstructor }).RTCPeerConnection;
  if (!found)
    throw new Error(
      '@mvp/sdk: no RTCPeerConnection here; pass `RTCPeerConnection` (e.g. from react-native-webrtc)',
    );
  return found;
}

export function platformGetUserMedia(): GetUserMedia {
  const devices = (globalThis as { navigator?: { mediaDevices?: { getUserMedia?: GetUserMedia } } })
    .navigator?.mediaDevices;
  if (!devices?.getUserMedia)
    throw new Error(
      '@mvp/sdk: no navigator.mediaDevices.getUserMedia here; pass `getUserMedia` (e.g. react-native-webrtc mediaDevices.getUserMedia)',
    );
  return (constraints) => devices.getUserMedia!(constraints);
}
