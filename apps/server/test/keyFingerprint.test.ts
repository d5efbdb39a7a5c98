import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '@mvp/api';
import { createDb, migrateToLatest, type DB } from '@mvp/db';
import type { AuthConfig, ServerConfig } from '../src/config';
import {
  checkKeyFingerprint,
  forgetKeyFingerprint,
  KEY_FINGERPRINT_META_KEY,
  keyFingerprintOf,
  KeyMismatchError,
} from '../src/keyFingerprint';
import { registerUser } from './helpers/accounts';
import { backendLabel, testDatabaseUrl } from './helpers/env';
import { startServer, testAuthConfig, type TestServer } from './helpers/startServer';
import { testBlindIndexKey, testJwtSigningKey } from './helpers/testKeys';

const newBlindKey = () => randomBytes(32).toString('base64');
const publicOf = ({ kty, crv, x, kid, alg }: Record<string, unknown>) => ({
  kty,
  crv,
  x,
  kid,
  alg,
});
const jwt = (signingKey: Record<string, unknown>, verifyKeys?: Record<string, unknown>[]) => ({
  jwt: {
    ...testAuthConfig().jwt,
    signingKey: JSON.stringify(signingKey),
    verifyKeys: verifyKeys && JSON.stringify(verifyKeys.map(publicOf)),
  },
});

/** A database of its own on both runs: these tests record and compare from an empty one. */
const freshSqliteUrl = () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'mvp-keyfp-')), 'mvp.db')}`;

const servers: TestServer[] = [];
const dbs: Kysely<DB>[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(dbs.map((db) => db.destroy()));
});

async function start(databaseUrl: string, auth: Partial<AuthConfig> = {}): Promise<TestServer> {
  const t = await startServer({ databaseUrl }, { auth });
  servers.push(t);
  return t;
}

async function refusal(
  databaseUrl: string,
  auth: Partial<AuthConfig>,
  overrides: Partial<ServerConfig> = {},
): Promise<Error> {
  const outcome = await startServer({ databaseUrl, ...overrides }, { auth }).then(
    (t) => {
      servers.push(t);
      return undefined;
    },
    (e: unknown) => e,
  );
  if (!(outcome instanceof Error)) throw new Error('expected the server to refuse to start');
  return outcome;
}

function open(url: string): Kysely<DB> {
  const db = createDb(url);
  dbs.push(db);
  return db;
}

const recorded = async (db: Kysely<DB>, key = KEY_FINGERPRINT_META_KEY) =>
  (await db.selectFrom('app_meta').select('value').where('key', '=', key).executeTakeFirst())
    ?.value;

/** Every row of every table of a SQLite database: "nothing written" means this is unchanged. */
async function snapshot(db: Kysely<DB>): Promise<string> {
  const { rows } = await sql<{
    name: string;
  }>`select name from sqlite_master where type = 'table' order by name`.execute(db);
  const tables: Record<string, unknown[]> = {};
  for (const { name } of rows) {
    tables[name] = (await sql`select * from ${sql.table(name)}`.execute(db)).rows;
  }
  return JSON.stringify(tables);
}

describe('key fingerprint, on a database of its own', () => {
  it('is recorded by the first start and lets a second server with the same keys start', async () => {
    const url = freshSqliteUrl();
    const a = await start(url);
    const db = open(url);
    const value = await recorded(db);
    expect(value).toBeDefined();
    // Nothing of the keys in it, and not logged either.
    expect(value).not.toContain(testBlindIndexKey);
    expect(value).not.toContain(testJwtSigningKey.d as string);
    expect(a.logs.text()).not.toContain(JSON.parse(value!).blindIndex as string);

    // Its own data folder, as a second container has: same keys from the environment.
    const b = await start(url);
    await registerUser(b);
    expect(await recorded(db)).toBe(value);
  });

  it('refuses a server with another signing key, naming it, and writes nothing', async () => {
    const url = freshSqliteUrl();
    await start(url);
    const db = open(url);
    const before = await snapshot(db);

    const otherKey = await generateSigningKey();
    const error = await refusal(url, jwt(otherKey));
    expect(error).toBeInstanceOf(KeyMismatchError);
    expect(error.message).toContain('MVP_JWT_SIGNING_KEY differs');
    expect(error.message).not.toContain('MVP_BLIND_INDEX_KEY');
    expect(error.message).toContain('MVP_DATA_DIR');
    expect(error.message).not.toContain(otherKey.d as string);
    expect(await snapshot(db)).toBe(before);
  });

  it('refuses a server with another blind-index key, naming it, and writes nothing', async () => {
    const url = freshSqliteUrl();
    await start(url);
    const db = open(url);
    const before = await snapshot(db);

    const otherKey = newBlindKey();
    const error = await refusal(url, { blindIndexKey: otherKey });
    expect(error).toBeInstanceOf(KeyMismatchError);
    expect(error.message).toContain('MVP_BLIND_INDEX_KEY differs');
    expect(error.message).not.toContain('MVP_JWT_SIGNING_KEY');
    expect(error.message).not.toContain(otherKey);
    expect(await snapshot(db)).toBe(before);
  });

  it('refuses also when migrations are a separate step', async () => {
    const url = freshSqliteUrl();
    await start(url);
    const error = await refusal(url, { blindIndexKey: newBlindKey() }, { migrateOnStart: false });
    expect(error).toBeInstanceOf(KeyMismatchError);
  });

  it('follows a signing key rotation: the old key listed for verification passes and moves the record', async () => {
    const url = freshSqliteUrl();
    await start(url);
    const db = open(url);
    const first = await recorded(db);

    const next = await generateSigningKey();
    await start(url, jwt(next, [testJwtSigningKey]));
    expect(await recorded(db)).not.toBe(first);

    // An instance still on the old key alone cannot verify the new tokens: refused.
    const error = await refusal(url, {});
    expect(error.message).toContain('MVP_JWT_SIGNING_KEY differs');
    // Told about the new key, it may run beside the rotated ones.
    await start(url, jwt(testJwtSigningKey, [next]));
  });

  it('once the record is forgotten (reset-key-fingerprint), the next start records its own keys', async () => {
    const url = freshSqliteUrl();
    await start(url);
    const db = open(url);
    const otherBlind = newBlindKey();
    await refusal(url, { blindIndexKey: otherBlind });

    expect(await forgetKeyFingerprint(db)).toBe(true);
    await start(url, { blindIndexKey: otherBlind });
    const error = await refusal(url, {});
    expect(error.message).toContain('MVP_BLIND_INDEX_KEY differs');
  });

  it('two servers starting at once on an empty database agree on one set of keys', async () => {
    const url = freshSqliteUrl();
    const otherBlind = newBlindKey();
    const outcomes = await Promise.allSettled([
      startServer({ databaseUrl: url }),
      startServer({ databaseUrl: url }, { auth: { blindIndexKey: otherBlind } }),
    ]);
    for (const o of outcomes) if (o.status === 'fulfilled') servers.push(o.value);
    const started = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(started).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(KeyMismatchError);

    // The record is the winner's: a third server with the winner's keys starts.
    const winnerBlind = outcomes[0].status === 'fulfilled' ? testBlindIndexKey : otherBlind;
    await start(url, { blindIndexKey: winnerBlind });
  });
});

describe(`key fingerprint on this run's backend (${backendLabel})`, () => {
  it('contending starts on one database: one fingerprint wins, the others compare against it', async () => {
    // A database of its own on SQLite; on MySQL the shared one, under a key of this test only so
    // that the other test servers' record is never touched.
    const url = testDatabaseUrl.startsWith('sqlite') ? freshSqliteUrl() : testDatabaseUrl;
    const setup = open(url);
    await migrateToLatest(setup);
    const mine = keyFingerprintOf({
      fieldKeys: { dataKeys: [], blindIndexKey: Buffer.from(testBlindIndexKey, 'base64') },
      jwtSigningKey: testJwtSigningKey,
      jwtVerifyKeys: [],
    });
    const theirs = keyFingerprintOf({
      fieldKeys: { dataKeys: [], blindIndexKey: randomBytes(32) },
      jwtSigningKey: await generateSigningKey(),
      jwtVerifyKeys: [],
    });
    // Separate connections (pools), as separate processes have, connected beforehand so that
    // the checks overlap instead of queueing behind handshakes.
    const contenders = [mine, theirs, mine, theirs].map((fp) => ({ fp, db: open(url) }));
    await Promise.all(contenders.map(({ db }) => sql`select 1`.execute(db)));

    // Several rounds: whether the checks interleave is up to the scheduler.
    for (let round = 0; round < 5; round += 1) {
      const metaKey = `test_key_fingerprint_${randomUUID()}`;
      try {
        const outcomes = await Promise.allSettled(
          contenders.map(({ fp, db }) => checkKeyFingerprint(db, fp, metaKey)),
        );
        const value = await recorded(setup, metaKey);
        const winner = value === JSON.stringify(mine.stored) ? mine : theirs;
        expect(value).toBe(JSON.stringify(winner.stored));
        outcomes.forEach((outcome, i) => {
          if (contenders[i]!.fp === winner) expect(outcome.status).toBe('fulfilled');
          else {
            expect(outcome.status).toBe('rejected');
            expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(KeyMismatchError);
          }
        });
        const fulfilled = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
        expect(fulfilled.sort()).toEqual(['matched', 'recorded']);
      } finally {
        await setup.deleteFrom('app_meta').where('key', '=', metaKey).execute();
      }
    }
  });

  it("refuses a server whose blind-index key is not the database's", async () => {
    // On MySQL this is the database every test server shares (and records the test keys in).
    const url = testDatabaseUrl.startsWith('sqlite') ? freshSqliteUrl() : testDatabaseUrl;
    await start(url);
    const db = open(url);
    const before = await recorded(db);
    const error = await refusal(url, { blindIndexKey: newBlindKey() });
    expect(error).toBeInstanceOf(KeyMismatchError);
    expect(await recorded(db)).toBe(before);
  });
});
