export { createCallManager } from './callManager';
export type { CallManagerOptions, MvpCalls } from './callManager';
export type { Call, CallEndReason, CallState, CallTiming } from './callSession';
export type { CallCrypto } from './callCrypto';
export { CallError, isCallError } from './callError';
export type { CallErrorCode } from './callError';
export { createApiCallTransport } from './transport';
export type { CallHistoryPage, CallMedia, CallTransport, ServerCall } from './transport';
export type {
  GetUserMedia,
  IceCandidate,
  MediaStream,
  MediaTrack,
  PeerConnection,
  PeerConnectionConstructor,
  SessionDescription,
} from './webrtc';
