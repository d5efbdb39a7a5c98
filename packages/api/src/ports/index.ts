import type { Kysely } from 'kysely';
import type { DB, DbDialect } from '@mvp/db';
import type { Authenticator } from './Authenticator';
import type { BlobStore } from './BlobStore';
import type { Clock } from './Clock';
import type { EventBus } from './EventBus';
import type { KeyValue } from './KeyValue';
import type { Logger } from './Logger';
import type { Metrics } from './Metrics';
import type { OtpSender } from './OtpSender';
import type { PostingCache } from './PostingCache';
import type { PresenceStore } from './PresenceStore';
import type { RateLimiter } from './RateLimiter';
import type { SessionGuard } from './SessionGuard';
import type { FieldCipher, PasswordHasher, TokenSigner } from '../security';

export type { AuthInfo, Authenticator } from './Authenticator';
export { refuseAllTokens } from './Authenticator';
export type { Clock } from './Clock';
export { systemClock } from './Clock';
export type { BlobStore, StoredBlob } from './BlobStore';
export type { BusHandler, EventBus, Unsubscribe } from './EventBus';
export { BUS_GAP } from './EventBus';
export type { KeyValue, Lock, SetOptions } from './KeyValue';
export type { Logger } from './Logger';
export type { Metrics, ProcedureObservation } from './Metrics';
export type { OtpPurpose, OtpSender } from './OtpSender';
export type { CachedPosting, PostingCache } from './PostingCache';
export type { PresenceStore } from './PresenceStore';
export type { RateLimitDecision, RateLimiter, RateLimitRule } from './RateLimiter';
export type { LiveSession, SessionGuard } from './SessionGuard';

/** Everything the API needs from the outside world; apps/server picks the implementations. */
export type Ports = {
  db: Kysely<DB>;
  dialect: DbDialect;
  bus: EventBus;
  kv: KeyValue;
  rateLimiter: RateLimiter;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  authenticate: Authenticator;
  sessions: SessionGuard;
  /** The send's posting context, briefly cached (see PostingCache). */
  posting: PostingCache;
  otpSender: OtpSender;
  cipher: FieldCipher;
  passwords: PasswordHasher;
  tokens: TokenSigner;
  /** Avatars (and later conversation images): a local folder or S3. */
  blobs: BlobStore;
  /** Who holds a WebSocket, across instances (Redis in production). */
  presence: PresenceStore;
};
