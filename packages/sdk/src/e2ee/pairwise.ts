/**
 * `client.e2ee.pairwise`: bytes for exactly one device of someone's, over the X3DH / Double
 * Ratchet sessions that also carry sender keys (started from a claimed bundle when there is none
 * yet). Calls use it for SDP and ICE. Every step on a session runs in that session's lane, so
 * encrypting and decrypting at once never lose a ratchet step; messages that arrive out of order
 * are read with the ratchet's skipped keys.
 */
import { type CryptoStore, CryptoError, encryptToDevice, isCryptoError } from '@mvp/crypto';
import type { Directory } from './directory';
import type { Inbound } from './inbound';
import { PAIRWISE_LABEL, addressOf, decodeContent, encodeContent } from './payloads';
import { lanes, type KeyedQueue } from './serial';

export type PairwiseCrypto = {
  /** Encrypts for one device of `userId` (a device with published keys). */
  encrypt(userId: string, deviceId: string, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Decrypts what that device encrypted for this one; throws when it cannot. */
  decrypt(userId: string, deviceId: string, ciphertext: Uint8Array): Promise<Uint8Array>;
};

export function createPairwise(deps: {
  store: CryptoStore;
  directory: Directory;
  queue: KeyedQueue;
  inbound: Pick<Inbound, 'openFrom'>;
  /** This device's keys exist and are published (`client.e2ee.setup`). */
  ready: () => Promise<void>;
}): PairwiseCrypto {
  const { store, directory, queue } = deps;

  return {
    async encrypt(userId, deviceId, plaintext) {
      await deps.ready();
      const framed = encodeContent({ contentType: PAIRWISE_LABEL, body: plaintext });
      const address = addressOf(userId, deviceId);
      for (let attempt = 1; ; attempt++) {
        const last = attempt >= 2;
        // Sessions with all of the user's devices at once: a claim hands out every device's
        // bundle anyway, and a call seals one offer per device right after this one.
        const ready = await directory.ensureSessions(userId, await directory.devicesOf(userId));
        if (ready.some((d) => d.deviceId === deviceId)) {
          try {
            return await queue(lanes.pair(address), () => encryptToDevice(store, address, framed));
          } catch (error) {
            // A key change dropped the session between the two steps: start another, once.
            if (last || !isCryptoError(error, 'UNKNOWN_KEY')) throw error;
          }
        } else if (last) {
          throw new Error('@mvp/sdk: that device has no published keys (or no longer has them)');
        }
        directory.forget(userId); // the cached list may be from before that device published
      }
    },

    async decrypt(userId, deviceId, ciphertext) {
      await deps.ready();
      const plaintext = await deps.inbound.openFrom({ userId, deviceId }, ciphertext);
      const content = decodeContent(plaintext);
      if (content.contentType !== PAIRWISE_LABEL)
        throw new CryptoError('MALFORMED', 'not a pairwise payload');
      return content.body;
    },
  };
}
