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
  /**
   * "Send anyway": trusts the list, no longer verified, if every change in it was announced;
   * a change nobody was told of yet is announced and thrown instead (the app shows it first).
   */
  acceptTold(userId: string, devices: DirectoryDevice[]): Promise<void>;
  /** Trusts exactly these devices as verified (the ones whose safety numbers I compared). */
  verify(userId: string, devices: DirectoryDevice[]): Promise<void>;
  isVerified(userId: string): Promise<boolean>;
};

/**
 * Devices that left the list are remembered, keys and all, up to this many per user: one that
 * comes back with the same keys (signed in again after its session expired) is no change, not
 * a new device that stops sends to a verified user.
 */
const MAX_REMEMBERED = 50;

const entryOf = (d: DirectoryDevice): TrustRecord['devices'][number] => ({
  deviceId: d.deviceId,
  keys: { identityKey: base64ToBytes(d.identityKey), signingKey: base64ToBytes(d.signingKey) },
});

/** The listed devices first, then the remembered ones not listed (most recently listed first). */
function recordOf(
  record: TrustRecord | undefined,
  devices: DirectoryDevice[],
  verified: boolean,
): TrustRecord {
  const gone = (record?.devices ?? []).filter(
    (d) => !devices.some((l) => l.deviceId === d.deviceId),
  );
  return { verified, devices: [...devices.map(entryOf), ...gone.slice(0, MAX_REMEMBERED)] };
}

const idsOf = (record: TrustRecord) => record.devices.map((d) => d.deviceId).join('\n');

export function createTrust(deps: {
  store: CryptoStore;
  announce: (change: IdentityChange) => void;
}): Trust {
  const { store } = deps;

  function changesOf(userId: string, record: TrustRecord, devices: DirectoryDevice[]) {
    const changes: { change: IdentityChange; device: DirectoryDevice }[] = [];
    for (const device of devices) {
      const known = record.devices.find((d) => d.deviceId === device.deviceId);
      const same =
        known !== undefined &&
        equalBytes(known.keys.identityKey, base64ToBytes(device.identityKey)) &&
        equalBytes(known.keys.signingKey, base64ToBytes(device.signingKey));
      if (!same)
        changes.push({
          change: {
            userId,
            deviceId: device.deviceId,
            change: known ? 'changed' : 'added',
            verified: record.verified,
          },
          device,
        });
    }
    return changes;
  }

  // Each change is told once per process, not again with every send it stops.
  const told = new Set<string>();
  const keyOf = ({ change, device }: { change: IdentityChange; device: DirectoryDevice }) =>
    JSON.stringify([change.userId, change.deviceId, device.identityKey, change.verified]);
  const tell = (found: { change: IdentityChange; device: DirectoryDevice }) => {
    const key = keyOf(found);
    if (told.has(key)) return;
    told.add(key);
    deps.announce(found.change);
  };

  return {
    async check(userId, devices) {
      const record = await store.getTrust(userId);
      if (!record) {
        // Nothing to trust yet: their first device is first use when it comes.
        if (devices.length > 0) await store.putTrust(userId, recordOf(undefined, devices, false));
        return;
      }
      const changes = changesOf(userId, record, devices);
      for (const found of changes) tell(found);
      if (record.verified && changes.length > 0)
        throw new UntrustedIdentityError(changes.map((c) => c.change));
      const next = recordOf(record, devices, record.verified);
      if (changes.length > 0 || idsOf(next) !== idsOf(record)) await store.putTrust(userId, next);
    },
    async acceptTold(userId, devices) {
      const record = await store.getTrust(userId);
      const untold = record
        ? changesOf(userId, record, devices).filter((c) => !told.has(keyOf(c)))
        : [];
      if (untold.length > 0) {
        for (const found of untold) tell(found);
        throw new UntrustedIdentityError(untold.map((c) => c.change));
      }
      await store.putTrust(userId, recordOf(record, devices, false));
    },
    // Exactly the compared devices: none remembered from before, which nobody compared.
    verify: (userId, devices) => store.putTrust(userId, recordOf(undefined, devices, true)),
    isVerified: async (userId) => (await store.getTrust(userId))?.verified ?? false,
  };
}
