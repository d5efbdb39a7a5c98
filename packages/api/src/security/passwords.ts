import { availableParallelism } from 'node:os';
import { argon2id, hash as argonHash, verify as argonVerify } from 'argon2';
import pLimit from 'p-limit';

/** Argon2id cost: memory in KiB, iterations, lanes. */
export type PasswordParams = { memoryCost: number; timeCost: number; parallelism: number };
export type PasswordHasher = {
  hash(password: string): Promise<string>;
  /** False (never throws) on a wrong password and on a malformed or non-argon2id hash. */
  verify(hash: string, password: string): Promise<boolean>;
  /** Verifies against a fixed dummy hash with the same params and returns false: for unknown accounts, so timing matches. */
  verifyDummy(password: string): Promise<false>;
  /** True when the stored hash's params are weaker than the configured ones (or it is unreadable). */
  needsRehash(hash: string): boolean;
};

/** OWASP Password Storage Cheat Sheet minimum for argon2id. */
export const MIN_PASSWORD_PARAMS: PasswordParams = {
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
};
// Upper bounds keep a typo (or a forged stored hash) from asking for gigabytes per login.
const MAX = { memoryCost: 4_194_304, timeCost: 100, parallelism: 64 };

// What argon2's encoder writes: $argon2id$v=19$m=…,t=…,p=…$salt$hash (no associated data).
const PHC =
  /^\$argon2id\$v=19\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,10})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{22,}$/;

function parseHash(hash: string): PasswordParams | null {
  if (typeof hash !== 'string') return null;
  const m = PHC.exec(hash);
  if (!m) return null;
  return { memoryCost: Number(m[1]), timeCost: Number(m[2]), parallelism: Number(m[3]) };
}

function withinBounds(p: PasswordParams): boolean {
  return (
    p.memoryCost <= MAX.memoryCost && p.timeCost <= MAX.timeCost && p.parallelism <= MAX.parallelism
  );
}

function checkParams(params: PasswordParams): void {
  for (const name of ['memoryCost', 'timeCost', 'parallelism'] as const) {
    const value = params[name];
    if (!Number.isSafeInteger(value))
      throw new Error(`password params: ${name} must be an integer`);
    if (value < MIN_PASSWORD_PARAMS[name]) {
      throw new Error(
        `password params: ${name} ${value} is below the OWASP minimum ${MIN_PASSWORD_PARAMS[name]}`,
      );
    }
    if (value > MAX[name])
      throw new Error(`password params: ${name} ${value} is above ${MAX[name]}`);
  }
}

export function createPasswordHasher(
  params: PasswordParams,
  options: { concurrency?: number } = {},
): PasswordHasher {
  checkParams(params);
  const concurrency = options.concurrency ?? availableParallelism();
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new Error('password hasher: concurrency must be a positive integer');
  }
  const { memoryCost, timeCost, parallelism } = params;
  // Each running hash holds memoryCost KiB: queue a login storm instead of exhausting memory.
  const limit = pLimit(concurrency);
  const hashNow = (password: string) =>
    limit(() => argonHash(password, { type: argon2id, memoryCost, timeCost, parallelism }));

  const verify = async (hash: string, password: string): Promise<boolean> => {
    const stored = parseHash(hash);
    if (!stored || !withinBounds(stored) || typeof password !== 'string') return false;
    try {
      return await limit(() => argonVerify(hash, password));
    } catch {
      return false;
    }
  };

  let dummy: Promise<string> | undefined;
  const dummyHash = () => {
    // Computed once, lazily, and forgotten on failure so that a later call can retry.
    dummy ??= hashNow('dummy password for unknown accounts').catch((error: unknown) => {
      dummy = undefined;
      throw error;
    });
    return dummy;
  };

  return {
    hash(password) {
      if (typeof password !== 'string')
        return Promise.reject(new Error('password must be a string'));
      return hashNow(password);
    },
    verify,
    async verifyDummy(password) {
      await verify(await dummyHash(), typeof password === 'string' ? password : '');
      return false;
    },
    needsRehash(hash) {
      const stored = parseHash(hash);
      if (!stored) return true;
      return (
        stored.memoryCost < memoryCost ||
        stored.timeCost < timeCost ||
        stored.parallelism < parallelism
      );
    },
  };
}
