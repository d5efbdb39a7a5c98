import { Migrator, type Kysely, type MigrationResult } from 'kysely';
import { migrations } from './migrations';

export type MigrateOutcome = { applied: string[] };

/**
 * Brings the schema up to date. Kysely's Migrator takes its lock (GET_LOCK on MySQL), so several
 * instances starting at once apply each migration exactly once.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrateOutcome> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r: MigrationResult) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed`, { cause: error });
  }
  return { applied: (results ?? []).map((r) => r.migrationName) };
}
