/**
 * Who is out there: users' devices (cached until a `device.keys` event or a DEVICES_CHANGED
 * answer says otherwise) and the pairwise sessions with them (started from claimed bundles).
 */
import { type CryptoStore, equalBytes, startSession } from '@mvp/crypto';
import { base64ToBytes } from '../base64';
import { classifySendError, errorCodeOf } from '../errors';
import { addressOf } from './payloads';
import { lanes, type KeyedQueue } from './serial';
import type { ClaimedDevice, DirectoryDevice, E2eeTransport } from './transport';
import type { Trust } from './trust';

export type Directory = {
  /** The user's live devices with published keys (cached). */
  devicesOf(userId: string): Promise<DirectoryDevice[]>;
  /** Forget the cached list: the next `devicesOf` asks the server. */
  forget(userId: string): void;
  /** Forget every cached list (the stream skipped events that would have said what changed). */
  forgetAll(): void;
  /**
   * The next `ensureSessions` starts a new session with this device (X3DH) although one
   * exists: the current one is kept as archived, so what the device already sent under it
   * still reads.
   */
  renew(address: string): void;
  /**
   * Makes sure a session exists with each of these devices, under the identity the directory
   * lists (a session with an older identity is replaced), once the user's list passed the trust
   * check (`UntrustedIdentityError` for a verified user's new keys). Claims the bundle when needed;
   * answers the devices that now have a session. A device whose bundle cannot start one (a key
   * X3DH refuses, a bad signature) is reported and left out: one member's bad keys must not
   * stop every send to everyone else.
   */
  ensureSessions(userId: string, devices: DirectoryDevice[]): Promise<DirectoryDevice[]>;
  /**
   * Sessions with many users' devices at once (a first send to a group): the bundles of every
   * device lacking one are claimed in calls of up to 100 users, not one call per user. What
   * cannot start here (a change the trust check refuses, a bad bundle) is left to
   * `ensureSessions`, which decides and tells.
   */
  prepare(users: { userId: string; devices: DirectoryDevice[] }[]): Promise<void>;
  /** The trust check of the user's list as `devicesOf` has it (my own, which nothing else checks). */
  check(userId: string): Promise<void>;
  /** `Trust.acceptTold` of the user's list as `devicesOf` has it, in the trust check's lane. */
  acceptTold(userId: string): Promise<void>;
  /** `Trust.verify` of these devices, in the trust check's lane. */
  verify(userId: string, devices: DirectoryDevice[]): Promise<void>;
};

function toBundle(device: ClaimedDevice) {
  return {
    identityKey: base64ToBytes(device.identityKey),
    signingKey: base64ToBytes(device.signingKey),
    signedPreKey: {
      keyId: device.signedPrekey.keyId,
      publicKey: base64ToBytes(device.signedPrekey.publicKey),
      signature: base64ToBytes(device.signedPrekey.signature),
    },
    ...(device.oneTimePrekey && {
      oneTimePreKey: {
        keyId: device.oneTimePrekey.keyId,
        publicKey: base64ToBytes(device.oneTimePrekey.publicKey),
      },
    }),
  };
}

export function createDirectory(deps: {
  store: CryptoStore;
  transport: E2eeTransport;
  queue: KeyedQueue;
  trust: Trust;
  report: (error: unknown) => void;
}): Directory {
  const { store, transport, queue, trust, report } = deps;
  const cache = new Map<string, Promise<DirectoryDevice[]>>();
  /** Addresses whose session is to be replaced (in memory: a restart keeps using it). */
  const renewing = new Set<string>();
  /** When each address was last renewed: see `RENEW_AT_MOST_EVERY_MS`. */
  const renewed = new Map<string, number>();

  const devicesOf = (userId: string) => {
    let list = cache.get(userId);
    if (!list) {
      list = transport.devices(userId);
      cache.set(userId, list);
      list.catch(() => cache.delete(userId));
    }
    return list;
  };

  const hasSession = async (userId: string, device: DirectoryDevice) => {
    const address = addressOf(userId, device.deviceId);
    if (renewing.has(address)) return false;
    const session = await store.getSession(address);
    return (
      session !== undefined &&
      equalBytes(session.remote.identityKey, base64ToBytes(device.identityKey))
    );
  };

  /** Devices of `userId` (checked against trust) without a session, in that user's lane. */
  const lackingOf = async (userId: string, devices: DirectoryDevice[]) => {
    const listed = await devicesOf(userId);
    await trust.check(userId, listed);
    // Only devices as the checked list has them: one from an older list is left out.
    const current = devices.filter((d) =>
      listed.some(
        (l) =>
          l.deviceId === d.deviceId &&
          l.identityKey === d.identityKey &&
          l.signingKey === d.signingKey,
      ),
    );
    const lacking: DirectoryDevice[] = [];
    for (const device of current) if (!(await hasSession(userId, device))) lacking.push(device);
    return { current, lacking };
  };

  /** Starts a session with each lacking device from its claimed bundle (same keys only). */
  const startFrom = async (
    userId: string,
    lacking: DirectoryDevice[],
    claimed: ClaimedDevice[],
  ) => {
    for (const device of lacking) {
      const bundle = claimed.find(
        (c) =>
          c.deviceId === device.deviceId &&
          c.identityKey === device.identityKey &&
          c.signingKey === device.signingKey,
      );
      const address = addressOf(userId, device.deviceId);
      if (!bundle) {
        // Gone, or a new identity: the next device list tells. One only due for renewal keeps
        // the session it has meanwhile rather than get nothing.
        renewing.delete(address);
        continue;
      }
      try {
        await queue(lanes.pair(address), () => startSession(store, address, toBundle(bundle)));
        if (renewing.delete(address)) renewed.set(address, Date.now());
      } catch (error) {
        report(error); // left without a session: not among the ready ones
      }
    }
  };

  return {
    devicesOf,
    forget: (userId) => void cache.delete(userId),
    forgetAll: () => cache.clear(),
    renew(address) {
      const last = renewed.get(address);
      if (last !== undefined && Date.now() - last < RENEW_AT_MOST_EVERY_MS) return;
      renewing.add(address);
    },
    // One at a time per user: two callers that both find a session missing would both claim
    // (spending one-time prekeys) and the second session would replace the first, under which
    // a message may already have gone out.
    ensureSessions: (userId, devices) =>
      queue(lanes.sessions(userId), async () => {
        const { current, lacking } = await lackingOf(userId, devices);
        if (lacking.length > 0) {
          // One-time prekeys only from the devices lacking a session: the others keep theirs.
          const ids = lacking.map((d) => d.deviceId);
          await startFrom(
            userId,
            lacking,
            await waitingOutLimits(() => transport.claim(userId, ids)),
          );
        }
        const ready: DirectoryDevice[] = [];
        for (const device of current) if (await hasSession(userId, device)) ready.push(device);
        return ready;
      }),
    async prepare(users) {
      const wanting: { userId: string; lacking: DirectoryDevice[] }[] = [];
      for (const { userId, devices } of users) {
        try {
          const { lacking } = await queue(lanes.sessions(userId), () => lackingOf(userId, devices));
          if (lacking.length > 0) wanting.push({ userId, lacking });
        } catch {
          // A refused trust check: ensureSessions meets it again and throws it to the sender.
        }
      }
      for (let i = 0; i < wanting.length; i += CLAIM_BATCH) {
        const chunk = wanting.slice(i, i + CLAIM_BATCH);
        let claimed: ClaimedDevice[][];
        try {
          claimed = await waitingOutLimits(() =>
            transport.claimMany(
              chunk.map((w) => ({ userId: w.userId, deviceIds: w.lacking.map((d) => d.deviceId) })),
            ),
          );
        } catch (error) {
          // Only a shortcut: ensureSessions claims user by user (say the claim budget is set
          // below a batch's size).
          report(error);
          return;
        }
        for (const [index, { userId, lacking }] of chunk.entries())
          await queue(lanes.sessions(userId), async () => {
            // Another caller may have started some meanwhile: only those still lacking.
            const still: DirectoryDevice[] = [];
            for (const d of lacking) if (!(await hasSession(userId, d))) still.push(d);
            await startFrom(userId, still, claimed[index] ?? []);
          });
      }
    },
    check: (userId) =>
      queue(lanes.sessions(userId), async () => trust.check(userId, await devicesOf(userId))),
    acceptTold: (userId) =>
      queue(lanes.sessions(userId), async () => trust.acceptTold(userId, await devicesOf(userId))),
    verify: (userId, devices) => queue(lanes.sessions(userId), () => trust.verify(userId, devices)),
  };
}

/**
 * A session is renewed at most this often: each renewal spends one of the peer's one-time
 * prekeys and an archive slot, and whoever relays envelopes could otherwise force one per
 * made-up envelope.
 */
export const RENEW_AT_MOST_EVERY_MS = 60_000;

/** Users per `keys.claimMany` call (the server's maximum). */
const CLAIM_BATCH = 100;

/**
 * A rate-limited claim is waited out this many times, each wait at most the server's default
 * window (ten minutes): longer means a limit set on purpose, and the send fails instead.
 */
const CLAIM_TRIES = 5;
const MAX_CLAIM_WAIT_MS = 600_000;

/**
 * A claim (`keys.claim` or `keys.claimMany`), waiting out its rate limit: the server allows
 * 2 000 users' bundles per ten minutes per account by default, two full groups' first sends,
 * so a third (or a first send after a restart with the memory store) can meet the limit part
 * way, and would fail instead of taking longer.
 */
async function waitingOutLimits<T>(claim: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await claim();
    } catch (error) {
      const verdict = classifySendError(error);
      const wait = verdict.retry ? verdict.afterMs : undefined;
      const limited = errorCodeOf(error) === 'TOO_MANY_REQUESTS' && wait !== undefined;
      if (!limited || attempt >= CLAIM_TRIES || wait > MAX_CLAIM_WAIT_MS) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
