/**
 * Column conventions, the same on both dialects: ids are app-generated strings (UUIDv7),
 * timestamps are BIGINT milliseconds since the epoch (SQLite has no date type and MySQL's
 * DATETIME drops the zone), booleans are 0/1 integers.
 */
export type AppMetaTable = {
  key: string;
  value: string;
  updated_at: number;
};

/** Kysely's own bookkeeping tables are not listed: only the Migrator touches them. */
export type DB = {
  app_meta: AppMetaTable;
};
