/**
 * Serialise a fanned-out event once, not once per subscriber. A message sent to a group of 100
 * reaches 100 `sync.events` subscriptions as the same event object (see `wakeWithEvent`). Such
 * events are plain JSON (strings, numbers, booleans, null, arrays, plain objects), so superjson
 * has nothing to annotate, and their JSON text is the same in every frame: the transformer
 * (transformer.ts) skips superjson's walk for them without looking inside, and `encodeFrame`
 * writes the text, built on first use, into each subscriber's frame.
 */
const shared = new WeakSet<object>();
const texts = new WeakMap<object, string>();

/**
 * Marks `event` as plain JSON, to be sent as is to many subscribers. It is frozen: a change
 * after the first frame would not reach the others.
 */
export function share<T extends object>(event: T): T {
  shared.add(deepFreeze(event));
  return event;
}

/** Whether `share` has marked it: one of this instance's own events, already shared. */
export function isShared(event: object): boolean {
  return shared.has(event);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key in value) deepFreeze(value[key]);
  }
  return value;
}

/** The JSON text of a shared event, built on first use. */
export function sharedText(event: object): string {
  let text = texts.get(event);
  if (text === undefined) texts.set(event, (text = JSON.stringify(event)));
  return text;
}

/** A tracked subscription item (`{ id, data }`, built by tRPC) whose data is a shared event. */
export function sharedItem(value: unknown): { id: unknown; data: object } | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const { data } = value as { data?: unknown };
  return data !== null && typeof data === 'object' && shared.has(data)
    ? (value as { id: unknown; data: object })
    : undefined;
}

/** `,"name":value` (or with `sep` first), as JSON.stringify writes a member; '' for undefined. */
function member(name: string, value: unknown, sep = ','): string {
  return value === undefined ? '' : `${sep}"${name}":${JSON.stringify(value)}`;
}

function hasOnlyKeys(value: object, keys: readonly string[]): boolean {
  for (const key in value) if (!keys.includes(key)) return false;
  return true;
}

/**
 * The text of one WebSocket frame, as `JSON.stringify(frame)` would write it. The frame of a
 * shared event (`{ id, jsonrpc, result: { type: 'data', data: { json: { id, data } }, id } }`,
 * what tRPC's adapter sends for a tracked item) is assembled around the event's text, computed
 * once per event; anything else is stringified as usual.
 */
export function encodeFrame(frame: unknown): string {
  const text = sharedFrameText(frame);
  return text ?? JSON.stringify(frame);
}

function sharedFrameText(frame: unknown): string | undefined {
  if (frame === null || typeof frame !== 'object') return undefined;
  if (!hasOnlyKeys(frame, ['id', 'jsonrpc', 'result'])) return undefined;
  const { id, jsonrpc, result } = frame as { id?: unknown; jsonrpc?: unknown; result?: unknown };
  if (result === null || typeof result !== 'object') return undefined;
  if (!hasOnlyKeys(result, ['type', 'data', 'id'])) return undefined;
  const r = result as { type?: unknown; data?: unknown; id?: unknown };
  if (r.type !== 'data' || r.data === null || typeof r.data !== 'object') return undefined;
  if (!hasOnlyKeys(r.data, ['json'])) return undefined;
  const item = sharedItem((r.data as { json?: unknown }).json);
  if (!item || !hasOnlyKeys(item, ['id', 'data'])) return undefined;
  const eventText = sharedText(item.data);
  // Members in tRPC's order; like JSON.stringify, undefined ones are left out.
  const head = `${member('id', id, '')}${member('jsonrpc', jsonrpc, id === undefined ? '' : ',')}`;
  const json = `{${member('id', item.id, '')}${item.id === undefined ? '' : ','}"data":${eventText}}`;
  return `{${head}${head ? ',' : ''}"result":{"type":"data","data":{"json":${json}}${member('id', r.id)}}}`;
}
