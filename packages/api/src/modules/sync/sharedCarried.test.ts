import { describe, expect, it } from 'vitest';
import type { TSyncEvent } from '@mvp/contracts';
import { share } from '../../sharedEvents';
import { sharedCarried } from './events';

/** What a wake-up's event looks like after Redis: a fresh parse per member's channel. */
function parsedCopy(event: TSyncEvent): TSyncEvent {
  return JSON.parse(JSON.stringify(event)) as TSyncEvent;
}

const newMessage = (seq: number): TSyncEvent => ({
  type: 'message.new',
  message: {
    id: `m${seq}`,
    conversationId: '0198f1c2-0000-7000-8000-0000000000aa',
    seq,
    senderId: 'u1',
    senderDeviceId: 'd1',
    clientMessageId: `c${seq}`,
    contentType: 'application/octet-stream',
    ciphertext: 'AAEC',
    replyToSeq: null,
    forwarded: false,
    createdAt: new Date(0).toISOString(),
    editedAt: null,
    deletedAt: null,
    expiresAt: null,
    reactions: [],
  },
});

describe('sharedCarried', () => {
  it('makes the parsed copies of one new message one object, and only of the same message', () => {
    const first = sharedCarried(parsedCopy(newMessage(1)));
    expect(sharedCarried(parsedCopy(newMessage(1)))).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    const other = sharedCarried(parsedCopy(newMessage(2)));
    expect(other).not.toBe(first);
    expect(other).toEqual(newMessage(2));
  });

  it('forgets a message at the next turn of the event loop, so nothing outlives its burst', async () => {
    const first = sharedCarried(parsedCopy(newMessage(5)));
    expect(sharedCarried(parsedCopy(newMessage(5)))).toBe(first);
    await new Promise((resolve) => setImmediate(resolve));
    const later = sharedCarried(parsedCopy(newMessage(5)));
    expect(later).not.toBe(first);
    expect(later).toEqual(first);
    // A later turn empties the map again: the next copy is its own object once more.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sharedCarried(parsedCopy(newMessage(5)))).not.toBe(later);
  });

  it('leaves other events as they came', () => {
    const update = { ...newMessage(3), type: 'message.updated' } as TSyncEvent;
    const copy = parsedCopy(update);
    expect(sharedCarried(copy)).toBe(copy);
    expect(sharedCarried(parsedCopy(update))).not.toBe(copy);
  });

  it('hands back an event this instance shared itself, without remembering it', () => {
    const own = share(newMessage(4));
    expect(sharedCarried(own)).toBe(own);
    // Not interned: a copy from another instance is not answered with this instance's object.
    const copy = parsedCopy(newMessage(4));
    expect(sharedCarried(copy)).toBe(copy);
  });
});
