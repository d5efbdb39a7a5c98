/**
 * The one place test code reads the environment (house style: env.ts only).
 *
 * Which backend this run of the suite uses: the embedded default, or MariaDB/MySQL + Redis when
 * .ci/run (or a developer) sets MVP_TEST_DATABASE_URL / MVP_TEST_REDIS_URL.
 */
export const testDatabaseUrl = process.env.MVP_TEST_DATABASE_URL || 'sqlite::memory:';
export const testRedisUrl = process.env.MVP_TEST_REDIS_URL || undefined;
export const backendLabel =
  testRedisUrl || testDatabaseUrl.startsWith('mysql') ? 'mysql+redis' : 'embedded';

/** For child processes started by tests (they need to find node and npm). */
export const inheritedPath = process.env.PATH;
