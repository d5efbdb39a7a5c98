export { createMvpClient } from './createMvpClient';
export type { ExpiredMessage, MvpExpiry } from './expiry';
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
export type {
  Conversation,
  ConversationMember,
  Envelope,
  HistoryOptions,
  HistoryPage,
  Message,
  MvpMessaging,
  RawSyncEvent,
  Receipts,
  Snapshot,
  SnapshotConversation,
  SyncEvent,
} from './messaging';
export { createMemoryOutboxStore } from './outbox';
export type {
  MvpOutbox,
  OutboxError,
  OutboxHandle,
  OutboxItem,
  OutboxState,
  OutboxStore,
  OutgoingEdit,
  OutgoingMessage,
  StoredOutboxEntry,
} from './outboxTypes';
export { EPHEMERAL_EVENT_TYPES } from './syncTypes';
export type { EventInfo, MvpSync, SyncState } from './syncTypes';
export { createMemoryCursorStore } from './syncTransport';
export type { CursorStore } from './syncTransport';
export type { AuthTokens, SessionEndReason } from './authSession';
export { createMemoryTokenStore } from './tokenStore';
export type { KeptDeviceCookie, StoredSession, TokenStore } from './tokenStore';
export { errorCodeOf, isMvpError } from './errors';
export type { MvpErrorCode, MvpErrorData } from './errors';
export { reconnectDelayMs } from './backoff';
export type { BackoffOptions } from './backoff';
export type { AppRouter, RouterInputs, RouterOutputs } from './types';
export * from './calls/index';
export type { E2eeOptions, E2eeOutgoing, DecryptResult, MvpE2ee } from './e2ee/e2ee';
export type { DecryptedMessage, UndecryptableMessage, UndecryptableReason } from './e2ee/inbound';
export type { SafetyNumber } from './e2ee/safetyNumbers';
export type { PairwiseCrypto } from './e2ee/pairwise';
export type { SendLogStore } from './e2ee/sendLog';
export type { Verification } from './e2ee/transport';
export {
  UntrustedIdentityError,
  isUntrustedIdentityError,
  type IdentityChange,
} from './e2ee/trust';
export { E2EE_CONTENT_TYPE, E2EE_DEVICE_CONTENT_TYPE } from './e2ee/payloads';
// What an app needs to persist the CryptoStore, and to compare a scanned safety-number QR code.
export {
  createMemoryStore as createMemoryCryptoStore,
  compareSafetyNumberQr,
  isCryptoError,
  serializeDeviceKeys,
  deserializeDeviceKeys,
  serializeSignedPreKey,
  deserializeSignedPreKey,
  serializeOneTimePreKey,
  deserializeOneTimePreKey,
  serializeSession,
  deserializeSession,
  serializeOutboundSenderKey,
  deserializeOutboundSenderKey,
  serializeInboundSenderKey,
  deserializeInboundSenderKey,
  serializeTrust,
  deserializeTrust,
} from '@mvp/crypto';
export type {
  CryptoStore,
  CryptoErrorCode,
  DeviceKeys,
  SignedPreKey,
  OneTimePreKey,
  Session,
  OutboundSenderKey,
  InboundSenderKey,
  TrustRecord,
} from '@mvp/crypto';
