import {
  ZAcceptCallInput,
  ZCall,
  ZCallSignalInput,
  ZHangupInput,
  ZOk,
  ZStartCallInput,
} from '@mvp/contracts';
import type { SignallingBaselinePayload } from './signallingBaseline';
import { createCallRelay, type RelayDevice, type RelayInput } from './signallingRelay';
import { createFloor } from './trpcFloor';

/**
 * The tRPC floor of call signalling (see trpcFloor.ts): the raw relay's work
 * (signallingRelay.ts: a Map, no storage, no checks) behind the MVP's call procedures.
 */
export async function startSignallingFloor(payload: SignallingBaselinePayload) {
  const floor = createFloor<RelayDevice>(payload.devices, (me) => me.deviceId);
  const calls = createCallRelay(Object.values(payload.devices), (deviceIds, seq, event) =>
    floor.deliver(deviceIds, seq, event),
  );
  const relay = (path: string) => (me: RelayDevice, input: object) =>
    calls[path]!(me, input as RelayInput);
  const { t, mutation } = floor;
  return floor.serve(
    t.router({
      calls: t.router({
        start: mutation(ZStartCallInput, ZCall, relay('calls.start')),
        accept: mutation(ZAcceptCallInput, ZCall, relay('calls.accept')),
        signal: mutation(ZCallSignalInput, ZOk, relay('calls.signal')),
        hangup: mutation(ZHangupInput, ZCall, relay('calls.hangup')),
      }),
      sync: t.router({ events: floor.events }),
    }),
  );
}
