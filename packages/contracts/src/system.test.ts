import { describe, expect, it } from 'vitest';
import { ZAppErrorCode, APP_ERROR_TRANSPORT } from './errors';
import { ZTicksInput } from './system';

describe('contracts', () => {
  it('ticks input defaults and bounds', () => {
    expect(ZTicksInput.parse(undefined)).toEqual({ intervalMs: 1_000 });
    expect(ZTicksInput.parse({ lastEventId: '12' })).toEqual({
      intervalMs: 1_000,
      lastEventId: '12',
    });
    expect(ZTicksInput.safeParse({ intervalMs: 5 }).success).toBe(false);
    expect(ZTicksInput.safeParse({ lastEventId: '1; drop table' }).success).toBe(false);
  });

  it('every application error code has a transport code', () => {
    for (const code of ZAppErrorCode.options)
      expect(APP_ERROR_TRANSPORT[code]).toBeTypeOf('string');
  });
});
