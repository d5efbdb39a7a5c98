export { createMvpClient } from './createMvpClient';
export type {
  ConnectionState,
  MvpClient,
  MvpClientOptions,
  WebSocketConstructor,
} from './createMvpClient';
export type { MvpAuth } from './authClient';
export type { AvatarContentType, AvatarUploadOptions, MvpAvatar } from './avatar';
export type {
  LiveOptions,
  MvpPeople,
  PeopleEvent,
  Presence,
  PresenceEvent,
  PublicProfile,
  Subscription,
} from './people';
export type { AuthTokens, SessionEndReason } from './authSession';
export { createMemoryTokenStore } from './tokenStore';
export type { StoredSession, TokenStore } from './tokenStore';
export { errorCodeOf, isMvpError } from './errors';
export type { MvpErrorCode, MvpErrorData } from './errors';
export { reconnectDelayMs } from './backoff';
export type { BackoffOptions } from './backoff';
export type { AppRouter, RouterInputs, RouterOutputs } from './types';
