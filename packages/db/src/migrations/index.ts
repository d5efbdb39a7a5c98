import type { Migration } from 'kysely';
import * as appMeta from './2026-11-24T0000-app-meta';
import * as accounts from './2026-11-24T0100-accounts';
import * as people from './2026-11-24T0200-people';
import * as messaging from './2026-11-24T0300-messaging';
import * as conversationFeatures from './2026-11-24T0400-conversation-features';
import * as keys from './2026-11-24T0500-keys';
import * as calls from './2026-11-24T0600-calls';
import * as sendProcedure from './2026-11-24T0700-send-procedure';
import * as sendProcedureRoleCheck from './2026-11-24T0800-send-procedure-role-check';
import * as callHeartbeatsPerSide from './2026-11-24T0900-call-heartbeats-per-side';
import * as reactionEmojiBytes from './2026-11-25T0000-reaction-emoji-bytes';
import * as receiptsTold from './2026-11-25T0100-receipts-told';
import * as sendProcedureSlowMode from './2026-11-25T0200-send-procedure-slow-mode';
import * as conversationBans from './2026-11-25T0300-conversation-bans';
import * as restrictedRejoin from './2026-11-25T0400-restricted-rejoin';
import * as messageEditIds from './2026-11-26T0000-message-edit-ids';
import * as refreshTokenParents from './2026-11-26T0100-refresh-token-parents';
import * as caseExactCodes from './2026-11-26T0200-case-exact-codes';
import * as lookupIndexes from './2026-11-26T0300-lookup-indexes';
import * as tableForeignKeys from './2026-11-26T0400-table-foreign-keys';
import * as unusedCallIndexes from './2026-11-26T0500-unused-call-indexes';
import * as membershipsByUser from './2026-11-26T0600-memberships-by-user';

/**
 * Listed by hand instead of read from the folder: the server is bundled, so there is no folder
 * at run time. Names sort by date, which is the order the Migrator applies them in.
 */
export const migrations: Record<string, Migration> = {
  '2026-11-24T0000-app-meta': appMeta,
  '2026-11-24T0100-accounts': accounts,
  '2026-11-24T0200-people': people,
  '2026-11-24T0300-messaging': messaging,
  '2026-11-24T0400-conversation-features': conversationFeatures,
  '2026-11-24T0500-keys': keys,
  '2026-11-24T0600-calls': calls,
  '2026-11-24T0700-send-procedure': sendProcedure,
  '2026-11-24T0800-send-procedure-role-check': sendProcedureRoleCheck,
  '2026-11-24T0900-call-heartbeats-per-side': callHeartbeatsPerSide,
  '2026-11-25T0000-reaction-emoji-bytes': reactionEmojiBytes,
  '2026-11-25T0100-receipts-told': receiptsTold,
  '2026-11-25T0200-send-procedure-slow-mode': sendProcedureSlowMode,
  '2026-11-25T0300-conversation-bans': conversationBans,
  '2026-11-25T0400-restricted-rejoin': restrictedRejoin,
  '2026-11-26T0000-message-edit-ids': messageEditIds,
  '2026-11-26T0100-refresh-token-parents': refreshTokenParents,
  '2026-11-26T0200-case-exact-codes': caseExactCodes,
  '2026-11-26T0300-lookup-indexes': lookupIndexes,
  '2026-11-26T0400-table-foreign-keys': tableForeignKeys,
  '2026-11-26T0500-unused-call-indexes': unusedCallIndexes,
  '2026-11-26T0600-memberships-by-user': membershipsByUser,
};
