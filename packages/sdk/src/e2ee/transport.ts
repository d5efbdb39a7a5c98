/**
 * The server calls end-to-end encryption needs, narrowed to plain results: the logic in this
 * folder never sees tRPC, so the unit tests drive it with an in-memory fake.
 */
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { errorCodeOf, isMvpError } from '../errors';
import { sessionDeviceId } from '../sessionDeviceId';
import type { RouterInputs, RouterOutputs } from '../types';

export type Me = { userId: string; deviceId: string };
export type KeyCount = RouterOutputs['keys']['count'];
export type PublishKeysInput = RouterInputs['keys']['publish'];
export type UploadPrekeysInput = RouterInputs['keys']['upload'];
export type DirectoryDevice = { deviceId: string; identityKey: string; signingKey: string };
export type ClaimedDevice = RouterOutputs['keys']['claim']['devices'][number];
export type OutgoingEnvelope = {
  userId: string;
  deviceId: string;
  contentType: string;
  ciphertext: string;
};
export type DeviceRef = { userId: string; deviceId: string };
export type SendToDevicesResult =
  /** `full`: devices whose queue on the server was full (they got nothing; try them later). */
  | { ok: true; full: string[] }
  /** DEVICES_CHANGED: the sender's view of a recipient's devices is out of date. */
  | { ok: false; missing: DeviceRef[]; stale: DeviceRef[] };
export type Verification = RouterOutputs['keys']['verify'];

export type E2eeTransport = {
  whoAmI(): Promise<Me>;
  /** Null when the server has no keys for this device (CONFLICT). */
  keyCount(): Promise<KeyCount | null>;
  publishKeys(input: PublishKeysInput): Promise<KeyCount>;
  uploadPrekeys(input: UploadPrekeysInput): Promise<KeyCount>;
  devices(userId: string): Promise<DirectoryDevice[]>;
  /** Bundles of the user's devices; one-time prekeys taken only from `deviceIds` when given. */
  claim(userId: string, deviceIds?: string[]): Promise<ClaimedDevice[]>;
  /** `claim` for up to 100 users in one call, in their order. */
  claimMany(users: { userId: string; deviceIds: string[] }[]): Promise<ClaimedDevice[][]>;
  /** The user ids of the conversation's members now. */
  members(conversationId: string): Promise<string[]>;
  /**
   * `conversationId`: the envelopes carry keys of (or requests for) that conversation; the
   * server checks membership and stamps it on each, for the recipient to check.
   */
  sendToDevices(
    envelopes: OutgoingEnvelope[],
    allDevices: boolean,
    conversationId?: string,
  ): Promise<SendToDevicesResult>;
  verify(input: RouterInputs['keys']['verify']): Promise<Verification>;
};

/** The narrowing over `client.api`. */
export function createApiE2eeTransport(api: TRPCClient<AppRouter>): E2eeTransport {
  return {
    whoAmI: async () => {
      const [me, deviceId] = await Promise.all([api.me.get.query(), sessionDeviceId(api)]);
      return { userId: me.id, deviceId };
    },
    keyCount: async () => {
      try {
        return await api.keys.count.query();
      } catch (error) {
        if (errorCodeOf(error) === 'CONFLICT') return null;
        throw error;
      }
    },
    publishKeys: (input) => api.keys.publish.mutate(input),
    uploadPrekeys: (input) => api.keys.upload.mutate(input),
    devices: async (userId) => (await api.keys.devices.query({ userId })).devices,
    claim: async (userId, deviceIds) =>
      (await api.keys.claim.mutate({ userId, ...(deviceIds ? { deviceIds } : {}) })).devices,
    claimMany: async (users) =>
      (await api.keys.claimMany.mutate({ users })).users.map((u) => u.devices),
    members: async (id) =>
      (await api.conversations.members.query({ id })).members.map((m) => m.userId),
    sendToDevices: async (envelopes, allDevices, conversationId) => {
      try {
        const { full } = await api.sync.sendToDevices.mutate({
          allDevices,
          envelopes,
          ...(conversationId ? { conversationId } : {}),
        });
        return { ok: true, full };
      } catch (error) {
        if (errorCodeOf(error) !== 'DEVICES_CHANGED' || !isMvpError(error)) throw error;
        const devices = (error.data as { devices?: { missing: DeviceRef[]; stale: DeviceRef[] } })
          .devices;
        return { ok: false, missing: devices?.missing ?? [], stale: devices?.stale ?? [] };
      }
    },
    verify: (input) => api.keys.verify.mutate(input),
  };
}
