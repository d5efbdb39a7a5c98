import { createHash, createHmac } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation, type DB } from '@mvp/db';
import type { ServerSecrets } from './secrets';

/**
 * Every instance on one database must hold the same keys, and nothing else notices when they do
 * not: a blind index under another key finds nobody (sign-in by phone fails, silently), and
 * tokens signed with another key are refused by the rest. So the first start on a database
 * records a fingerprint of the keys in `app_meta`, and every later start compares against it.
 *
 * Covered: the blind-index key (must be identical: it has no rotation) and the JWT signing key
 * (recorded as its public key's RFC 7638 thumbprint; an instance that lists the recorded key in
 * MVP_JWT_VERIFY_KEYS is a rotation and moves the record on). Not covered: MVP_DATA_KEYS, which
 * legitimately differ while a rotation rolls out; every ciphertext names its key id, so a missing
 * key fails loudly rather than silently, and generated data keys only ever come together with a
 * generated blind-index key, which this check catches.
 *
 * The fingerprints reveal no key: an HMAC of a fixed label under the secret key, and a hash of a
 * public key. They are still never logged: there is nothing an operator gains from them.
 */
export const KEY_FINGERPRINT_META_KEY = 'key_fingerprint';

/** What is stored (as JSON) in app_meta. */
type StoredFingerprint = { v: 1; jwt: string; blindIndex: string };

export type KeyFingerprint = {
  stored: StoredFingerprint;
  /** Thumbprints of the keys this instance verifies tokens with: its own and MVP_JWT_VERIFY_KEYS. */
  verifiable: ReadonlySet<string>;
};

export class KeyMismatchError extends Error {
  override name = 'KeyMismatchError';
}

// A change of label is a change of every fingerprint: never edit it.
const BLIND_INDEX_LABEL = 'mvp key fingerprint v1: blind index key';

/** RFC 7638: SHA-256 over the required public members in lexicographic order (Ed25519 only). */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return createHash('sha256').update(canonical).digest('base64url');
}

export function keyFingerprintOf(secrets: ServerSecrets): KeyFingerprint {
  const jwt = jwkThumbprint(secrets.jwtSigningKey);
  const blindIndex = createHmac('sha256', secrets.fieldKeys.blindIndexKey)
    .update(BLIND_INDEX_LABEL)
    .digest('hex')
    // 128 bits tell keys apart; the column holds 255 characters.
    .slice(0, 32);
  return {
    stored: { v: 1, jwt, blindIndex },
    verifiable: new Set([jwt, ...secrets.jwtVerifyKeys.map(jwkThumbprint)]),
  };
}

function parseStored(value: string): StoredFingerprint | undefined {
  try {
    const data = JSON.parse(value) as Partial<StoredFingerprint> | null;
    if (data?.v !== 1 || typeof data.jwt !== 'string' || typeof data.blindIndex !== 'string')
      return undefined;
    return { v: 1, jwt: data.jwt, blindIndex: data.blindIndex };
  } catch {
    return undefined;
  }
}

function mismatchError(problems: string[]): KeyMismatchError {
  return new KeyMismatchError(
    `refusing to start: this server's keys are not the ones this database was first used with ` +
      `(app_meta "${KEY_FINGERPRINT_META_KEY}"). ${problems.join(' ')} ` +
      'Give every instance the same keys: set these variables to the values the other instances ' +
      'use, or restore the MVP_DATA_DIR (secrets.json) this database was used with. Only if those ' +
      'keys are lost for good, run `node apps/server/dist/main.js reset-key-fingerprint` to ' +
      'accept the new ones (existing accounts can then no longer be found by phone number).',
  );
}

/** Why this instance must not run on a database that recorded `recorded`; empty when it may. */
function problemsWith(recorded: string, ours: KeyFingerprint): string[] {
  const stored = parseStored(recorded);
  if (!stored) {
    return [`The recorded fingerprint is not in a format this version knows (a newer version?).`];
  }
  const problems: string[] = [];
  if (stored.blindIndex !== ours.stored.blindIndex) {
    problems.push(
      'MVP_BLIND_INDEX_KEY differs: lookups by phone number and device cookie would silently find nobody.',
    );
  }
  if (!ours.verifiable.has(stored.jwt)) {
    problems.push(
      `MVP_JWT_SIGNING_KEY differs (public key thumbprint ${ours.stored.jwt}, recorded ` +
        `${stored.jwt}) and MVP_JWT_VERIFY_KEYS does not list the recorded key: access tokens ` +
        'of the other instances would be refused (when rotating, list the old public key there).',
    );
  }
  return problems;
}

async function readRecorded(db: Kysely<DB>, metaKey: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('app_meta')
    .select('value')
    .where('key', '=', metaKey)
    .executeTakeFirst();
  return row?.value;
}

export type KeyCheckOutcome = 'recorded' | 'matched' | 'rotated';

/**
 * Records `ours` when the database has no fingerprint yet, else compares; throws
 * KeyMismatchError, having written nothing, when this instance must not start. Two instances
 * starting together on an empty database both insert; the primary key lets one win and the
 * other then compares against the winner. `metaKey` exists for tests that must not touch the
 * real record of a shared database.
 */
export async function checkKeyFingerprint(
  db: Kysely<DB>,
  ours: KeyFingerprint,
  metaKey = KEY_FINGERPRINT_META_KEY,
): Promise<KeyCheckOutcome> {
  const value = JSON.stringify(ours.stored);
  // Each further round means another instance wrote in between; it cannot go on for long.
  for (let round = 0; round < 3; round += 1) {
    const recorded = await readRecorded(db, metaKey);
    if (recorded === undefined) {
      try {
        await db
          .insertInto('app_meta')
          .values({ key: metaKey, value, updated_at: Date.now() })
          .execute();
        return 'recorded';
      } catch (error) {
        if (isUniqueViolation(error)) continue;
        throw error;
      }
    }
    const problems = problemsWith(recorded, ours);
    if (problems.length) throw mismatchError(problems);
    if (recorded === value) return 'matched';
    // A rotation: we verify the recorded key's tokens and sign with a newer one. Instances that
    // cannot verify ours must now be refused, so the record follows; only if nobody moved it.
    const { numUpdatedRows } = await db
      .updateTable('app_meta')
      .set({ value, updated_at: Date.now() })
      .where('key', '=', metaKey)
      .where('value', '=', recorded)
      .executeTakeFirst();
    if (numUpdatedRows > 0n) return 'rotated';
  }
  throw new Error(`app_meta "${metaKey}": changed repeatedly while comparing key fingerprints`);
}

/**
 * The same comparison without writing, for before migrations: an instance with the wrong keys
 * then changes nothing at all. A database without app_meta (never migrated) passes.
 */
export async function refuseForeignKeys(
  db: Kysely<DB>,
  ours: KeyFingerprint,
  metaKey = KEY_FINGERPRINT_META_KEY,
): Promise<void> {
  let recorded: string | undefined;
  try {
    recorded = await readRecorded(db, metaKey);
  } catch {
    // No table yet, or no database: migrating decides, then checkKeyFingerprint.
    return;
  }
  if (recorded === undefined) return;
  const problems = problemsWith(recorded, ours);
  if (problems.length) throw mismatchError(problems);
}

/** For `main.js reset-key-fingerprint`: the next start records its own keys. */
export async function forgetKeyFingerprint(db: Kysely<DB>): Promise<boolean> {
  const { numDeletedRows } = await db
    .deleteFrom('app_meta')
    .where('key', '=', KEY_FINGERPRINT_META_KEY)
    .executeTakeFirst();
  return numDeletedRows > 0n;
}
