export { createDb, dialectOf, parseDbUrl, DEFAULT_SQLITE_PATH } from './createDb';
export type { CreateDbOptions, DbDialect, DbTarget } from './createDb';
export { migrateToLatest } from './migrate';
export type { MigrateOutcome } from './migrate';
export type {
  AppMetaTable,
  BlocksTable,
  CallsTable,
  ContactRequestsTable,
  ContactsTable,
  ConversationMembersTable,
  ConversationsTable,
  DB,
  DeviceKeysTable,
  DevicesTable,
  InvitesTable,
  ConversationBansTable,
  MessageEditsTable,
  MessageHiddenTable,
  RefreshTokensTable,
  MessagesTable,
  OneTimePrekeysTable,
  VerificationsTable,
  PinsTable,
  ReactionsTable,
  SessionsTable,
  UserEventsTable,
  UsersTable,
  UserStreamsTable,
} from './schema';
export { isDeadlock, isForeignKeyViolation, isUniqueViolation, retryingDeadlocks } from './errors';
export { prepared } from './prepared';
export type { Prepared } from './prepared';
export { syncTransaction } from './syncTransaction';
export { awaitSteps, step, transactionOf } from './steps';
export type { Step, Steps } from './steps';
export type { RunSync } from './syncTransaction';
