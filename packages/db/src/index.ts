export { createDb, dialectOf, parseDbUrl, DEFAULT_SQLITE_PATH } from './createDb';
export type { CreateDbOptions, DbDialect, DbTarget } from './createDb';
export { migrateToLatest } from './migrate';
export type { MigrateOutcome } from './migrate';
export type {
  AppMetaTable,
  BlocksTable,
  ContactRequestsTable,
  ContactsTable,
  DB,
  DevicesTable,
  RefreshTokensTable,
  SessionsTable,
  UsersTable,
} from './schema';
export { isUniqueViolation } from './errors';
