/**
 * This device's keys on the server: created and published on first use (or again when the
 * server lost them or holds another identity for this device), topped up on `keys.low`, and the
 * signed prekey replaced on Signal's schedule.
 */
import {
  type CryptoStore,
  type OneTimePreKey,
  type SignedPreKey,
  generateDeviceKeys,
  generatePreKeys,
  randomBytes,
} from '@mvp/crypto';
import { bytesToBase64 } from '../base64';
import { errorCodeOf } from '../errors';
import type { E2eeTransport, Me } from './transport';

/** One-time prekeys per upload (the server's maximum) and the stock a top-up restores. */
export const PREKEY_BATCH = 100;
/** The server's prekey ids are 0..2^31-1. */
const MAX_KEY_ID = 2 ** 31 - 1;
const PUBLISH_ATTEMPTS = 3;
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Signal's schedule: a new signed prekey every 2 days, so a stolen one opens little; a replaced
 * one is kept 30 days, for prekey messages made from it still on their way (a device offline
 * does not rotate, so what waits for it was made from the key it still has).
 */
export const SIGNED_PREKEY_ROTATE_MS = 2 * DAY_MS;
export const SIGNED_PREKEY_KEEP_MS = 30 * DAY_MS;

/** A random start of `count` free ids: random 31-bit ranges do not collide in practice. */
function randomStart(count: number): number {
  const [a, b, c, d] = randomBytes(4);
  const n = ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0;
  return n % (MAX_KEY_ID - count);
}

export type Prekeys = {
  /** Creates device keys if the store has none and makes sure the server has them. */
  ensurePublished(): Promise<void>;
  /**
   * Uploads one-time prekeys until the server holds `PREKEY_BATCH` again, and replaces the
   * signed prekey when it is due.
   */
  topUp(): Promise<void>;
};

export function createPrekeys(deps: {
  store: CryptoStore;
  transport: E2eeTransport;
  me: () => Promise<Me>;
  report: (error: unknown) => void;
}): Prekeys {
  const { store, transport } = deps;

  /** A start whose whole range is unused in the store (ids still awaiting a prekey message). */
  async function freeRange(count: number): Promise<number> {
    for (;;) {
      const start = randomStart(count);
      let clash = false;
      for (let id = start; id < start + count && !clash; id++)
        clash = (await store.getOneTimePreKey(id)) !== undefined;
      // The signed prekey, when there is one, takes the range's last id.
      if (!clash && (await store.getSignedPreKey(start + count - 1)) === undefined) return start;
    }
  }

  /** Keys the server refused are of no use: forget them so their ids are free again. */
  async function forget(signed: SignedPreKey | undefined, oneTime: OneTimePreKey[]) {
    if (signed) await store.deleteSignedPreKey(signed.keyId);
    for (const key of oneTime) await store.deleteOneTimePreKey(key.keyId);
  }

  const wire = (signed: SignedPreKey) => ({
    keyId: signed.keyId,
    publicKey: bytesToBase64(signed.keyPair.publicKey),
    signature: bytesToBase64(signed.signature),
  });
  const wireOneTime = (keys: OneTimePreKey[]) =>
    keys.map((k) => ({ keyId: k.keyId, publicKey: bytesToBase64(k.keyPair.publicKey) }));

  /**
   * Generates fresh prekeys and hands them to `upload`; a BAD_REQUEST (most likely an id the
   * server still holds) gets new ids, a bounded number of times.
   */
  async function withFreshPrekeys(
    withSigned: boolean,
    count: number,
    upload: (signed: SignedPreKey | undefined, oneTime: OneTimePreKey[]) => Promise<unknown>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const start = await freeRange(count + 1);
      const { signedPreKey, oneTimePreKeys } = await generatePreKeys(store, {
        // The signed prekey takes the id after the one-time prekeys: freeRange's last.
        ...(withSigned ? { signedPreKeyId: start + count } : {}),
        firstOneTimePreKeyId: start,
        count,
      });
      try {
        await upload(signedPreKey, oneTimePreKeys);
        return;
      } catch (error) {
        if (errorCodeOf(error) !== 'BAD_REQUEST') throw error; // it may have arrived: keep them
        await forget(signedPreKey, oneTimePreKeys);
        if (attempt >= PUBLISH_ATTEMPTS) throw error;
      }
    }
  }

  async function publish(): Promise<void> {
    const keys = (await store.getDeviceKeys())!;
    await withFreshPrekeys(true, PREKEY_BATCH, (signed, oneTime) =>
      transport.publishKeys({
        identityKey: bytesToBase64(keys.identity.publicKey),
        signingKey: bytesToBase64(keys.signing.publicKey),
        signedPrekey: wire(signed!),
        oneTimePrekeys: wireOneTime(oneTime),
      }),
    );
  }

  /**
   * A new signed prekey when the server's is `SIGNED_PREKEY_ROTATE_MS` old (or one this store
   * does not hold: nobody could complete X3DH with it), then the replaced ones past their keep.
   */
  async function rotateSigned(currentId: number): Promise<void> {
    const now = Date.now();
    let serverHas = currentId;
    const current = await store.getSignedPreKey(currentId);
    if (!current || now - current.createdAt >= SIGNED_PREKEY_ROTATE_MS)
      await withFreshPrekeys(true, 0, async (signed) => {
        await transport.uploadPrekeys({ signedPrekey: wire(signed!), oneTimePrekeys: [] });
        serverHas = signed!.keyId;
      });
    // A key was replaced when the next one was made: kept until that is KEEP_MS ago.
    const held: SignedPreKey[] = [];
    for (const id of await store.signedPreKeyIds()) {
      const key = await store.getSignedPreKey(id);
      if (key) held.push(key);
    }
    held.sort((a, b) => a.createdAt - b.createdAt);
    // Never the one the server hands out, even if a newer one is held (an upload whose answer
    // was lost).
    for (let i = 0; i < held.length - 1; i++)
      if (held[i]!.keyId !== serverHas && now - held[i + 1]!.createdAt >= SIGNED_PREKEY_KEEP_MS)
        await store.deleteSignedPreKey(held[i]!.keyId);
  }

  async function topUp(): Promise<void> {
    let count = await transport.keyCount();
    if (count === null) return publish();
    await rotateSigned(count.signedPrekeyId);
    for (;;) {
      const need = Math.min(PREKEY_BATCH, PREKEY_BATCH - count.oneTimePrekeys);
      if (need <= 0) return;
      await withFreshPrekeys(false, need, (_signed, oneTime) =>
        transport.uploadPrekeys({ oneTimePrekeys: wireOneTime(oneTime) }),
      );
      count = await transport.keyCount();
      if (count === null) return publish();
    }
  }

  return {
    async ensurePublished() {
      let keys = await store.getDeviceKeys();
      if (!keys) {
        keys = generateDeviceKeys();
        await store.putDeviceKeys(keys);
      }
      const count = await transport.keyCount();
      if (count === null) return publish();
      // The server holds keys for this device: are they ours? (A wiped store on a device that
      // kept its session has new keys; peers must learn them, as a changed identity.)
      const me = await deps.me();
      const listed = (await transport.devices(me.userId)).find((d) => d.deviceId === me.deviceId);
      if (listed && listed.identityKey !== bytesToBase64(keys.identity.publicKey)) return publish();
      if (count.oneTimePrekeys < count.threshold) await topUp();
      // The keys in use still work: a failed rotation must not fail setup (the next one tries).
      else await rotateSigned(count.signedPrekeyId).catch(deps.report);
    },
    topUp,
  };
}
