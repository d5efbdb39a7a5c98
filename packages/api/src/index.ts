export { appRouter } from './router';
export type { AppRouter } from './router';
export { createCallerFactory, requireAuth, spendBudgets } from './trpc';
export { createContext } from './context';
export { encodeFrame, share } from './sharedEvents';
export { transformer } from './transformer';
export type { ApiSettings, AuthSettings, Connection, Context, ContextInput } from './context';
export { runCallTimeoutsOnce, runJobsOnce, runMessageExpiryOnce } from './jobs';
export { AVATAR_UPLOAD_LIMIT, setAvatar, spendAvatarUpload } from './modules/me/avatar.service';
export type { AvatarImage } from './modules/me/avatar.service';
export { setConversationAvatar } from './modules/conversations/avatar.service';
export { MAX_LIVE_INVITES } from './modules/conversations/invites.service';
export { PAGE_BYTES, REQUEST_BYTES } from './answerBytes';
export type { JobName } from './jobs';
export { authenticatorFor } from './modules/auth/authenticate';
export { createSessionGuard } from './modules/sessions/sessionGuard';
export {
  createPostingCache,
  POSTING_CACHE_MS,
  POSTING_CHANGED_CHANNEL,
} from './modules/messages/postingCache';
export type { PostingChangedMessage } from './modules/messages/postingCache';
export { SESSION_REVOKED_CHANNEL } from './modules/sessions/sessions.service';
export type { SessionRevokedMessage } from './modules/sessions/sessions.service';
export { AppError } from './errors/AppError';
export type { ErrorShape } from './errors/errorFormatter';
export * from './ports';
export * from './security';
export { createPresenceTracker } from './modules/presence/presenceTracker';
export type { PresenceTracker, PresenceTrackerOptions } from './modules/presence/presenceTracker';
export { pruneStreams } from './modules/sync/retention';
export { purgeExpiredMessages } from './modules/messages/expiry';
export { expireCalls } from './modules/calls/calls.service';
export { turnCredentials } from './modules/calls/iceServers';
