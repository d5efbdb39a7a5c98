import { transformTRPCResponse } from '@trpc/server/unstable-core-do-not-import';
import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeFrame, share } from './sharedEvents';
import { transformer } from './transformer';

const config = { transformer } as Parameters<typeof transformTRPCResponse>[0];

/** A frame as tRPC's WebSocket adapter builds it for a tracked subscription item. */
function trackedFrame(requestId: unknown, eventId: string, event: object) {
  return transformTRPCResponse(config, {
    id: requestId as number,
    jsonrpc: '2.0',
    result: { type: 'data', data: { id: eventId, data: event }, id: eventId },
  });
}

function sampleEvent() {
  return {
    type: 'message.new',
    message: {
      id: 'm1',
      seq: 7,
      ciphertext: 'AAEC',
      replyToSeq: null,
      forwarded: false,
      reactions: [{ emoji: '👍', userIds: ['u"1'] }],
    },
  };
}

describe('shared events', () => {
  afterEach(() => vi.restoreAllMocks());

  it('serialises a shared event once, however many frames carry it', () => {
    const event = share(sampleEvent());
    const stringify = vi.spyOn(JSON, 'stringify');
    const walk = vi.spyOn(superjson, 'serialize');
    for (let i = 0; i < 5; i++) encodeFrame(trackedFrame(i, String(i), event));
    expect(stringify.mock.calls.filter(([value]) => value === event)).toHaveLength(1);
    expect(walk).not.toHaveBeenCalled();
  });

  it('writes a shared event frame exactly as JSON.stringify does, for any request id', () => {
    const event = share(sampleEvent());
    for (const requestId of [1, 'abc', 'with "quotes" and \u2028', null, undefined]) {
      const frame = trackedFrame(requestId, '42', event);
      expect(encodeFrame(frame)).toBe(JSON.stringify(frame));
      const bare = { ...(frame as object), jsonrpc: undefined };
      expect(encodeFrame(bare)).toBe(JSON.stringify(bare));
    }
  });

  it('gives the client what superjson would have given it', () => {
    const event = share(sampleEvent());
    const frame = JSON.parse(encodeFrame(trackedFrame(3, '9', event))) as {
      result: { data: Parameters<typeof superjson.deserialize>[0] };
    };
    expect(superjson.deserialize(frame.result.data)).toEqual({ id: '9', data: sampleEvent() });
  });

  it('freezes a shared event, so no subscriber can see a later change', () => {
    const event = share(sampleEvent());
    expect(() => {
      event.message.reactions[0]!.userIds.push('x');
    }).toThrow(TypeError);
  });

  it('leaves other frames and values to superjson and JSON.stringify', () => {
    const withDate = { at: new Date(0), n: 1n };
    expect(transformer.output.serialize(withDate)).toEqual(superjson.serialize(withDate));
    const frame = trackedFrame(1, '5', { type: 'typing', at: new Date(0) });
    expect(frame).toMatchObject({ result: { data: { meta: expect.anything() } } });
    expect(encodeFrame(frame)).toBe(JSON.stringify(frame));
    // An extra member anywhere in the frame: not the shape this encoder knows.
    const event = share(sampleEvent());
    const odd = { ...(trackedFrame(1, '5', event) as object), extra: true };
    expect(encodeFrame(odd)).toBe(JSON.stringify(odd));
  });
});
