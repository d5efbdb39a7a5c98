import { describe, expect, it } from 'vitest';
import { createPostingCache } from './postingCache';

const clock = { now: () => 1_000 };
const posting = (blocked: boolean) => ({
  kind: 'direct',
  role: 'member',
  slowModeSeconds: 0,
  disappearSeconds: 0,
  blocked,
  lastSeq: 1,
});

describe('the posting cache', () => {
  it('keeps what was read when nothing was forgotten meanwhile', () => {
    const cache = createPostingCache(clock, 5_000);
    const epoch = cache.epoch();
    cache.set('c1', 'u1', posting(false), epoch);
    expect(cache.get('c1', 'u1')).toEqual(posting(false));
  });

  it('does not keep a read that a block (a forget) overtook: the send after it is decided afresh', () => {
    const cache = createPostingCache(clock, 5_000);
    const epoch = cache.epoch(); // a send starts reading: not blocked yet
    cache.forget(['c1']); // the block commits and is announced meanwhile
    cache.set('c1', 'u1', posting(false), epoch); // the read ends, stale
    expect(cache.get('c1', 'u1')).toBeUndefined();
    // Reads begun after the forget are kept as ever.
    cache.set('c1', 'u1', posting(true), cache.epoch());
    expect(cache.get('c1', 'u1')).toEqual(posting(true));
  });
});
