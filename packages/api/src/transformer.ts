import type { CombinedDataTransformer } from '@trpc/server';
import superjson from 'superjson';
import { sharedItem } from './sharedEvents';

/**
 * superjson on the wire, as the SDK expects, without superjson's walk where it has nothing to
 * annotate. Its walk copies the whole value and allocates a path array per member; on a message
 * send that was an eighth of what the server allocated (bench/README, session 12). Almost every
 * answer is plain JSON (the contracts hold no dates, maps or bigints), and superjson's form of a
 * plain JSON value is `{ json: value }` with no `meta`. Anything else goes through superjson.
 * The same holds for inputs: superjson would copy a `meta`-less input only to give it back. Its
 * copy also dropped own `__proto__` keys (JSON.parse makes them plain properties); every
 * procedure's zod input drops them as well (a test pins it), so only zod-parsed input is used.
 */
export const transformer: CombinedDataTransformer = {
  input: {
    serialize: (value: unknown) => superjson.serialize(value),
    deserialize: (value: unknown): unknown =>
      value !== null && typeof value === 'object' && !('meta' in value)
        ? (value as { json?: unknown }).json
        : superjson.deserialize(value as never),
  },
  output: {
    serialize: (value: unknown) =>
      // A shared event is plain JSON by construction (share()), and is sent to many subscribers:
      // not looked into at all.
      sharedItem(value) || plainJson(value) ? { json: value } : superjson.serialize(value),
    deserialize: (value: unknown): unknown => superjson.deserialize(value as never),
  },
};

/** `isPlainJson` with one set for every answer, emptied after each (it runs synchronously). */
const seenObjects = new Set<object>();
function plainJson(value: unknown): boolean {
  try {
    return isPlainJson(value, seenObjects);
  } finally {
    seenObjects.clear();
  }
}

/** Keys superjson refuses (prototype pollution); it throws, and so should we, by deferring. */
const REFUSED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Whether superjson would send `value` unchanged and without `meta`: strings, booleans, null,
 * finite numbers other than -0, and arrays and plain objects of those in which no object occurs
 * twice (superjson records repeated objects, so that the client gets them back identical).
 * Allocates nothing but `seen`.
 */
export function isPlainJson(value: unknown, seen: Set<object>): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (seen.has(value)) return false;
  seen.add(value);
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], seen)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) {
    if (REFUSED_KEYS.has(key)) return false;
    if (!isPlainJson((value as Record<string, unknown>)[key], seen)) return false;
  }
  return true;
}
