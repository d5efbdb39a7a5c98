/**
 * The server calls the CallManager needs, narrowed to plain results so the logic never sees
 * tRPC and the unit tests drive it with an in-memory fake server.
 */
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@mvp/api';
import { OUTLIVE_PAGE } from '../outlivePage';
import { sessionDeviceId } from '../sessionDeviceId';
import type { RouterInputs, RouterOutputs } from '../types';

export type ServerCall = RouterOutputs['calls']['get'];
export type CallMedia = ServerCall['media'];
export type ServerEndReason = NonNullable<ServerCall['endReason']>;
/** The reasons a participant may hang up with (the rest are the server's findings). */
export type HangupReason = NonNullable<RouterInputs['calls']['hangup']['reason']>;
export type CallHistoryPage = RouterOutputs['calls']['history'];
export type CallSignalKind = RouterInputs['calls']['signal']['kind'];
export type IceServersResult = RouterOutputs['calls']['iceServers'];

export type CallTransport = {
  /** This device's id, as call events name the device that answered. */
  deviceId(): Promise<string>;
  iceServers(): Promise<IceServersResult>;
  /** The user's devices with published keys (the ones that can ring). */
  devices(userId: string): Promise<string[]>;
  start(input: RouterInputs['calls']['start']): Promise<ServerCall>;
  accept(input: { callId: string; answer: string }): Promise<ServerCall>;
  reject(callId: string): Promise<ServerCall>;
  /** `outlivePage`: sent so that it reaches the server after the page is gone (see `leave`). */
  hangup(
    callId: string,
    reason: HangupReason,
    options?: { outlivePage?: boolean },
  ): Promise<ServerCall>;
  signal(input: { callId: string; kind: CallSignalKind; ciphertext: string }): Promise<void>;
  heartbeat(callId: string): Promise<void>;
  get(callId: string): Promise<ServerCall>;
  history(input: { before?: string; limit?: number }): Promise<CallHistoryPage>;
};

export function createApiCallTransport(api: TRPCClient<AppRouter>): CallTransport {
  return {
    deviceId: () => sessionDeviceId(api),
    iceServers: () => api.calls.iceServers.query(),
    devices: async (userId) =>
      (await api.keys.devices.query({ userId })).devices.map((d) => d.deviceId),
    start: (input) => api.calls.start.mutate(input),
    accept: (input) => api.calls.accept.mutate(input),
    reject: (callId) => api.calls.reject.mutate({ callId }),
    hangup: (callId, reason, options) =>
      api.calls.hangup.mutate(
        { callId, reason },
        options?.outlivePage ? { context: { [OUTLIVE_PAGE]: true } } : undefined,
      ),
    signal: async (input) => void (await api.calls.signal.mutate(input)),
    heartbeat: async (callId) => void (await api.calls.heartbeat.mutate({ callId })),
    get: (callId) => api.calls.get.query({ id: callId }),
    history: (input) => api.calls.history.query(input),
  };
}
