import { UUID } from 'uuidv7';
import { describe, expect, it } from 'vitest';
import { newId } from './ids';

describe('newId', () => {
  it("is uuidv7's id in its canonical text, new and in order every time", () => {
    const ids = Array.from({ length: 2000 }, newId);
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(UUID.parse(id).toString()).toBe(id);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    // Its time is now (the first 48 bits are Unix milliseconds).
    expect(Math.abs(parseInt(ids[0]!.replace('-', '').slice(0, 12), 16) - Date.now())).toBeLessThan(
      60_000,
    );
  });
});
