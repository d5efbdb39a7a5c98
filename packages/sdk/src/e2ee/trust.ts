/**
 * Trust on first use, kept on this device: the keys of each user's devices as first accepted
 * (`CryptoStore.getTrust`). Every device list the server gives is compared with them before a
 * session starts, so a server (or whoever controls it) cannot swap a device's keys or add a
 * device unseen. As in Signal: a change is accepted and announced for someone I never verified,
 * and stops my sends to someone I verified until I accept it (or verify again).
 */
import { type CryptoStore, type TrustRecord, equalBytes } from '@mvp/crypto';
import { base64ToBytes } from '../base64';
import type { DirectoryDevice } from './transport';

export type IdentityChange = {
  userId: string;
  deviceId: string;
  /** `added`: a device I had not seen for a user I had; `changed`: new keys for a known device. */
  change: 'added' | 'changed';
  /** I had verified this user: sends to them wait for `trustIdentities` (or a new verification). */
  verified: boolean;
};

/** A send (or call) to someone I verified whose keys changed since: accept or verify first. */
export class UntrustedIdentityError extends Error {
  readonly code = 'UNTRUSTED_IDENTITY';
  constructor(readonly changes: IdentityChange[]) {
    super(
      `@mvp/sdk: the keys of a verified user changed (${changes[0]!.userId}); ` +
        'call e2ee.trustIdentities() or verify again',
    );
    this.name = 'UntrustedIdentityError';
  }
}

export function isUntrustedIdentityError(error: unknown): error is UntrustedIdentityError {
  return error instanceof UntrustedIdentityError;
}

export type Trust = {
  /**
   * Compares the user's whole device list with what I trust: a first list is trusted as it is,
   * changes are announced and (unless I verified the user) trusted; for a verified user they
   * throw `UntrustedIdentityError` and nothing is trusted.
   */
  check(userId: string, devices: DirectoryDevice[]): Promise<void>;
  /** Trusts the list as it is now and sets `verified` (false: `trustIdentities`; true: verified). */
  accept(userId: string, devices: DirectoryDevice[], verified: boolean): Promise<void>;
  isVerified(userId: string): Promise<boolean>;
};

const recordOf = (devices: DirectoryDevice[], verified: boolean): TrustRecord => ({
  verified,
  devices: devices.map((d) => ({
    deviceId: d.deviceId,
    keys: { identityKey: base64ToBytes(d.identityKey), signingKey: base64ToBytes(d.signingKey) },
  })),
});

export function createTrust(deps: {
  store: CryptoStore;
  announce: (change: IdentityChange) => void;
}): Trust {
  const { store } = deps;

  function changesOf(userId: string, record: TrustRecord, devices: DirectoryDevice[]) {
    const changes: IdentityChange[] = [];
    for (const device of devices) {
      const known = record.devices.find((d) => d.deviceId === device.deviceId);
      const same =
        known !== undefined &&
        equalBytes(known.keys.identityKey, base64ToBytes(device.identityKey)) &&
        equalBytes(known.keys.signingKey, base64ToBytes(device.signingKey));
      if (!same)
        changes.push({
          userId,
          deviceId: device.deviceId,
          change: known ? 'changed' : 'added',
          verified: record.verified,
        });
    }
    return changes;
  }

  // Each change is told once per process, not again with every send it stops.
  const told = new Set<string>();
  const tell = (change: IdentityChange, device: DirectoryDevice) => {
    const key = JSON.stringify([
      change.userId,
      change.deviceId,
      device.identityKey,
      change.verified,
    ]);
    if (told.has(key)) return;
    told.add(key);
    deps.announce(change);
  };

  return {
    async check(userId, devices) {
      const record = await store.getTrust(userId);
      if (!record) {
        // Nothing to trust yet: their first device is first use when it comes.
        if (devices.length > 0) await store.putTrust(userId, recordOf(devices, false));
        return;
      }
      const changes = changesOf(userId, record, devices);
      // Devices that left are dropped from the record (it stays as small as the list); one that
      // comes back is `added` again, which for a verified user still stops the send.
      const left = record.devices.some((d) => !devices.some((l) => l.deviceId === d.deviceId));
      if (changes.length === 0 && !left) return;
      for (const change of changes)
        tell(
          change,
          devices.find((d) => d.deviceId === change.deviceId)!,
        );
      if (record.verified && changes.length > 0) throw new UntrustedIdentityError(changes);
      await store.putTrust(userId, recordOf(devices, record.verified));
    },
    accept: (userId, devices, verified) => store.putTrust(userId, recordOf(devices, verified)),
    isVerified: async (userId) => (await store.getTrust(userId))?.verified ?? false,
  };
}
