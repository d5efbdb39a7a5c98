import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from './backoff';
import { errorCodeOf, isMvpError } from './errors';

describe('reconnectDelayMs', () => {
  const opts = { minDelayMs: 100, maxDelayMs: 1_000 };

  it('grows exponentially between half and all of the window, capped at the maximum', () => {
    expect(reconnectDelayMs(0, opts, () => 0)).toBe(50);
    expect(reconnectDelayMs(0, opts, () => 1)).toBe(100);
    expect(reconnectDelayMs(3, opts, () => 0)).toBe(400);
    expect(reconnectDelayMs(3, opts, () => 1)).toBe(800);
    expect(reconnectDelayMs(30, opts, () => 1)).toBe(1_000);
    expect(reconnectDelayMs(30, opts, () => 0)).toBe(500);
  });

  it('spreads clients: random draws give different delays within the window', () => {
    const delays = new Set(Array.from({ length: 50 }, () => reconnectDelayMs(4, opts)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1_000);
    }
  });
});

describe('errorCodeOf', () => {
  it('is undefined for anything that is not a server answer', () => {
    expect(errorCodeOf(new Error('network down'))).toBeUndefined();
    expect(errorCodeOf('nope')).toBeUndefined();
    expect(isMvpError(null)).toBe(false);
  });
});
