import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { transformer } from './transformer';

const serialize = (value: unknown) => transformer.output.serialize(value) as { json: unknown };

function plainValues(): unknown[] {
  const bare = Object.create(null) as Record<string, unknown>;
  bare.a = 1;
  return [
    'text with "quotes", \u2028 and 👍',
    0,
    -1.5,
    true,
    null,
    [],
    {},
    bare,
    {
      id: 'm1',
      seq: 7,
      ciphertext: 'AAEC',
      replyToSeq: null,
      forwarded: false,
      reactions: [{ emoji: '👍', userIds: ['u1', 'u2'] }],
      nested: [[1, [2, { deep: [] }]]],
    },
  ];
}

class Point {
  constructor(public x = 1) {}
}

/** Values superjson annotates (`meta`) or sends changed (a class instance, a hole). */
function annotatedValues(): unknown[] {
  const repeated = { a: 1 };
  const cycle: Record<string, unknown> = { name: 'loop' };
  cycle.self = cycle;
  return [
    undefined,
    { at: new Date(0) },
    { missing: undefined },
    [1, undefined],
    // A hole reads as undefined too.
    // eslint-disable-next-line no-sparse-arrays
    [1, , 3],
    { n: 1n },
    { n: Number.NaN },
    { n: Number.POSITIVE_INFINITY },
    { n: -0 },
    { m: new Map([['k', 1]]) },
    { s: new Set([1]) },
    { p: new Point() },
    { re: /x/ },
    { bytes: new Uint8Array([1, 2]) },
    { twice: [repeated, repeated] },
    cycle,
  ];
}

describe('transformer', () => {
  afterEach(() => vi.restoreAllMocks());

  it('sends plain JSON as superjson would, without its walk', () => {
    const walk = vi.spyOn(superjson, 'serialize');
    for (const value of plainValues()) {
      const wire = serialize(value);
      expect(wire).toEqual({ json: value });
      // The value itself, not a copy: superjson's walk did not run.
      expect(wire.json).toBe(value);
    }
    expect(walk).not.toHaveBeenCalled();
    // The same text on the wire.
    for (const value of plainValues())
      expect(JSON.stringify(serialize(value))).toBe(JSON.stringify(superjson.serialize(value)));
  });

  it('leaves to superjson every value it would annotate or change', () => {
    for (const value of annotatedValues()) {
      const wire = serialize(value);
      expect(wire).toStrictEqual(superjson.serialize(value));
      expect(wire.json).not.toBe(value);
    }
  });

  it('refuses keys superjson refuses', () => {
    for (const key of ['constructor', 'prototype', '__proto__']) {
      const value = JSON.parse(`{"${key}": 1}`) as object;
      expect(() => superjson.serialize(value)).toThrow(/prototype pollution/);
      expect(() => serialize(value)).toThrow(/prototype pollution/);
    }
  });

  it('reads inputs as superjson does, taking a plain one as it is', () => {
    const walk = vi.spyOn(superjson, 'deserialize');
    for (const value of plainValues()) {
      const wire = JSON.parse(JSON.stringify(superjson.serialize(value))) as object;
      expect(transformer.input.deserialize(wire)).toEqual(value);
      expect(transformer.input.deserialize(wire)).toBe((wire as { json: unknown }).json);
    }
    expect(walk).not.toHaveBeenCalled();
    for (const value of annotatedValues()) {
      const wire = JSON.parse(JSON.stringify(superjson.serialize(value))) as object;
      expect(transformer.input.deserialize(wire)).toStrictEqual(
        superjson.deserialize(wire as never),
      );
    }
    expect(walk).toHaveBeenCalled();
  });

  it("leaves an input's __proto__ key to zod, which drops it (superjson's copy used to)", () => {
    const wire = JSON.parse('{"json":{"id":"x","__proto__":{"admin":true}}}') as object;
    const input = transformer.input.deserialize(wire) as object;
    expect(Object.keys(input)).toEqual(['id', '__proto__']); // an own key, not the prototype
    expect(Object.getPrototypeOf(input)).toBe(Object.prototype);
    const parsed = z.object({ id: z.string() }).parse(input);
    expect(Object.keys(parsed)).toEqual(['id']);
    expect('admin' in parsed).toBe(false);
  });
});
