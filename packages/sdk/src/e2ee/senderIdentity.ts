/**
 * Whether a pairwise message may be taken as from the device the server names: the server
 * relays every envelope and says who sent it, and X3DH proves only that a prekey message's
 * sender holds the keys it carries, not whose device they are. So the keys of the session that
 * opens a message must be the ones the server lists for that device and this device trusts.
 */
import { type CryptoStore, type PublicDeviceKeys, equalBytes, toBase64 } from '@mvp/crypto';
import { classifySendError } from '../errors';
import type { Directory } from './directory';
import { addressOf } from './payloads';
import type { DeviceRef } from './transport';
import { isUntrustedIdentityError } from './trust';

/**
 * The sender's keys could not be checked (the server did not answer): no verdict either way, so
 * the message is neither read nor given up. An envelope's handler fails with it, and the sync
 * engine hands the envelope over again after a backoff; nothing was stored meanwhile.
 */
export class SenderCheckUnavailable extends Error {
  constructor(from: DeviceRef, cause: unknown) {
    super(`@mvp/sdk: could not check the keys of ${addressOf(from.userId, from.deviceId)}`, {
      cause,
    });
    this.name = 'SenderCheckUnavailable';
  }
}

export type SenderIdentity = {
  /**
   * Before a prekey message may start a session with the keys it carries: the server must list
   * them for that device, and the trust check of the user's list must not refuse that device.
   * Receiving is where a change is first seen as often as sending: it is checked, told and
   * remembered here too, so a server cannot slip a device in by only ever receiving from it.
   * Takes the user's sessions lane: never call it from a session's lane (`ensureSessions` holds
   * the first while it waits for the second).
   */
  vouch(from: DeviceRef, claimed: PublicDeviceKeys): Promise<void>;
  /**
   * Throws unless `remote` is what the server lists for that device now and what the trust
   * record holds for it (a user with no record yet is first use, as `Trust.check` takes it).
   * Reads only, so it can run in the session's lane, before a decryption's state is stored.
   */
  require(from: DeviceRef, remote: PublicDeviceKeys): Promise<void>;
};

export function createSenderIdentity(deps: {
  store: CryptoStore;
  directory: Directory;
}): SenderIdentity {
  const { store, directory } = deps;

  /** Whether the server lists `identityKey` for that device (asked again once when not). */
  async function listed(from: DeviceRef, identityKey: Uint8Array): Promise<boolean> {
    const key = toBase64(identityKey);
    const lookup = async () => {
      let devices;
      try {
        devices = await directory.devicesOf(from.userId);
      } catch (error) {
        // A server that will answer the same again (the account is gone: NOT_FOUND) lists
        // nothing: refused for good. Held back for ever, the envelope would stop the stream.
        if (!classifySendError(error).retry) return false;
        throw new SenderCheckUnavailable(from, error);
      }
      return devices.find((d) => d.deviceId === from.deviceId)?.identityKey === key;
    };
    if (await lookup()) return true;
    directory.forget(from.userId); // maybe they just published it: ask again
    return lookup();
  }

  const refusal = (from: DeviceRef, why: string) =>
    new Error(`@mvp/sdk: ${addressOf(from.userId, from.deviceId)} used keys ${why}`);

  return {
    async vouch(from, claimed) {
      if (!(await listed(from, claimed.identityKey)))
        throw refusal(from, 'the directory does not list');
      try {
        await directory.check(from.userId);
      } catch (error) {
        if (!isUntrustedIdentityError(error)) throw new SenderCheckUnavailable(from, error);
        // Another device's change waits for the next send to them; this one is refused.
        if (error.changes.some((c) => c.deviceId === from.deviceId)) throw error;
      }
    },

    async require(from, remote) {
      if (!(await listed(from, remote.identityKey)))
        throw refusal(from, 'the directory does not list');
      const record = await store.getTrust(from.userId);
      const trusted = record?.devices.find((d) => d.deviceId === from.deviceId);
      if (record && !(trusted && equalBytes(trusted.keys.identityKey, remote.identityKey)))
        throw refusal(from, 'this device does not trust');
    },
  };
}
