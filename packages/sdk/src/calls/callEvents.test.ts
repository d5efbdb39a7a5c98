import { describe, expect, it } from 'vitest';
import type { RawSyncEvent } from '../messaging';
import { createSyncEngine } from '../syncEngine';
import { createMemoryCursorStore, readCursor, type SyncTransport } from '../syncTransport';

/**
 * Call signals are ephemeral: the server sends them with the current cursor as their id. The
 * engine must deliver them (not drop them as duplicates of the last durable event) and must
 * never save them as the cursor.
 */
describe('call events on the sync stream', () => {
  it('delivers call.signal at the current cursor, several in a row, without moving it', async () => {
    let push: ((value: { id: string; data: RawSyncEvent }) => void) | undefined;
    const transport: SyncTransport = {
      whoAmI: async () => 'me',
      snapshot: async () => ({
        cursor: '5',
        conversations: [],
        contactRequests: { incoming: [], outgoing: [] },
        pendingEnvelopes: [],
        ringingCalls: [],
      }),
      pendingEnvelopes: async () => ({ envelopes: [], more: false }),
      subscribe(_from, handlers) {
        push = (value) => handlers.onData(value);
        queueMicrotask(() => handlers.onStarted());
        return { unsubscribe: () => undefined };
      },
      ack: async () => undefined,
      markDelivered: async () => undefined,
    };
    const cursors = createMemoryCursorStore();
    const sync = createSyncEngine({ transport, cursorStore: cursors });
    const seen: { type: string; ephemeral: boolean }[] = [];
    sync.onEvent((event, info) => void seen.push({ type: event.type, ephemeral: info.ephemeral }));
    await sync.start();
    const signal = (n: number) =>
      ({
        type: 'call.signal',
        callId: 'c1',
        fromDeviceId: 'd1',
        kind: 'candidates',
        ciphertext: btoa(`batch ${n}`),
      }) as RawSyncEvent;
    push!({ id: '5', data: signal(1) });
    push!({ id: '5', data: signal(2) });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual([
      { type: 'call.signal', ephemeral: true },
      { type: 'call.signal', ephemeral: true },
    ]);
    expect(readCursor(await cursors.get())?.id).toBe('5');
    await sync.stop();
  });
});
