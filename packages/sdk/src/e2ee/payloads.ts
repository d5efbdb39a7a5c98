/**
 * What travels, and under which label. The server sees only the labels below and opaque bytes:
 *
 * - conversation messages carry `mvp/e2ee`; the sender-key ciphertext wraps
 *   `version (1) | content type length (1) | content type (utf-8) | body`, so the real content
 *   type is as private as the body;
 * - device-to-device envelopes carry `mvp/e2ee-device`; the Double Ratchet ciphertext wraps a
 *   small JSON object: a sender key distribution or a request for one, and the resend of a
 *   message's content to a device that could not read it (or the request for one);
 * - an edit replaces the message's bytes with `version (1) | device id length (1) | device id |
 *   sender-key ciphertext`: the editing device (any device of the sender's) names the key to
 *   read it with, and the associated data binds it to the conversation, that device and the
 *   message's seq, so it can be neither a new message nor the edit of another one;
 * - `client.e2ee.pairwise` (call SDP and ICE) frames its bytes like message content, under the
 *   label `mvp/pairwise`: binary, so never mistaken for an envelope's JSON, nor the reverse.
 */
import { CryptoError, utf8 } from '@mvp/crypto';
import { base64ToBytes, bytesToBase64 } from '../base64';

export const E2EE_CONTENT_TYPE = 'mvp/e2ee';
export const E2EE_DEVICE_CONTENT_TYPE = 'mvp/e2ee-device';
const CONTENT_VERSION = 1;
const PAYLOAD_VERSION = 1;

/** The opaque name a device has in the crypto store: `userId:deviceId`. */
export const addressOf = (userId: string, deviceId: string) => `${userId}:${deviceId}`;

/**
 * Associated data of every group message: the conversation and the sending device, so the
 * server cannot replay a ciphertext into another conversation or relabel its sender.
 */
export const groupContext = (conversationId: string, sender: string) =>
  utf8.encode(`mvp/e2ee/v1\n${conversationId}\n${sender}`);

/**
 * Associated data of an edit: like `groupContext`, plus the seq of the message it replaces (and
 * its own label, so an edit and a new message are never interchangeable).
 */
export const editContext = (conversationId: string, sender: string, seq: number) =>
  utf8.encode(`mvp/e2ee/v1/edit\n${conversationId}\n${sender}\n${seq}`);

export type Content = { contentType: string; body: Uint8Array };

export function encodeContent(content: Content): Uint8Array {
  const type = utf8.encode(content.contentType);
  if (type.length === 0 || type.length > 255)
    throw new RangeError('@mvp/sdk: a content type is 1 to 255 bytes');
  const out = new Uint8Array(2 + type.length + content.body.length);
  out[0] = CONTENT_VERSION;
  out[1] = type.length;
  out.set(type, 2);
  out.set(content.body, 2 + type.length);
  return out;
}

export function decodeContent(bytes: Uint8Array): Content {
  if (bytes.length < 2 || bytes[0] !== CONTENT_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', 'unknown e2ee content version');
  const length = bytes[1]!;
  if (length === 0 || bytes.length < 2 + length)
    throw new CryptoError('MALFORMED', 'truncated e2ee content');
  return {
    contentType: utf8.decode(bytes.subarray(2, 2 + length)),
    body: bytes.slice(2 + length),
  };
}

const EDIT_VERSION = 1;

/** An edit's bytes: the editing device, then the sender-key ciphertext. */
export function encodeEdit(deviceId: string, ciphertext: Uint8Array): Uint8Array {
  const device = utf8.encode(deviceId);
  if (device.length === 0 || device.length > 255)
    throw new RangeError('@mvp/sdk: a device id is 1 to 255 bytes');
  const out = new Uint8Array(2 + device.length + ciphertext.length);
  out[0] = EDIT_VERSION;
  out[1] = device.length;
  out.set(device, 2);
  out.set(ciphertext, 2 + device.length);
  return out;
}

export function decodeEdit(bytes: Uint8Array): { deviceId: string; ciphertext: Uint8Array } {
  if (bytes.length < 2 || bytes[0] !== EDIT_VERSION)
    throw new CryptoError('UNKNOWN_VERSION', 'unknown e2ee edit version');
  const length = bytes[1]!;
  if (length === 0 || bytes.length <= 2 + length)
    throw new CryptoError('MALFORMED', 'truncated e2ee edit');
  return {
    deviceId: utf8.decode(bytes.subarray(2, 2 + length)),
    ciphertext: bytes.subarray(2 + length),
  };
}

/** The label inside every `client.e2ee.pairwise` plaintext. */
export const PAIRWISE_LABEL = 'mvp/pairwise';

export type DevicePayload =
  /**
   * My sender key for a conversation (distribution bytes from @mvp/crypto); `forward` answers
   * a request with `behind`: move your copy of the chain up to here.
   */
  | { type: 'sender-key'; conversationId: string; distribution: Uint8Array; forward?: true }
  /**
   * "Please share the sender key with this id again": I could not read a message. `behind`: I
   * hold it, but a message was too far ahead of my copy to derive (TOO_MANY_SKIPPED).
   */
  | { type: 'key-request'; conversationId: string; keyId: string; behind?: true }
  /** The answer to a key request for a key I no longer use: ask for the messages instead. */
  | { type: 'key-gone'; conversationId: string; keyId: string }
  /**
   * "Please send me the content of these messages of yours" (Signal's retry receipt): I cannot
   * read them under your key. They are named by their place in your chain.
   */
  | { type: 'resend-request'; conversationId: string; keyId: string; iterations: number[] }
  /**
   * The content (as `encodeContent` made it) of my message at this place in my chain, and the
   * message (and version) the server stored it as: a message the server copied to another
   * place cannot have it.
   */
  | {
      type: 'resend';
      conversationId: string;
      keyId: string;
      iteration: number;
      messageId: string;
      /** For an edit, the message it edits (which its associated data binds). */
      seq: number;
      editedAt: string | null;
      content: Uint8Array;
    };

/** Most messages one resend request names (a gap asks in several). */
export const MAX_RESEND_ITERATIONS = 100;

export function encodeDevicePayload(payload: DevicePayload): Uint8Array {
  const head = { v: PAYLOAD_VERSION, c: payload.conversationId };
  // The flags are new fields: a device on an earlier SDK reads the rest as before.
  const json = (() => {
    switch (payload.type) {
      case 'sender-key':
        return {
          ...head,
          t: 'sk',
          d: bytesToBase64(payload.distribution),
          ...(payload.forward ? { f: 1 } : {}),
        };
      case 'key-request':
        return { ...head, t: 'kr', k: payload.keyId, ...(payload.behind ? { b: 1 } : {}) };
      case 'key-gone':
        return { ...head, t: 'kg', k: payload.keyId };
      case 'resend-request':
        return { ...head, t: 'rr', k: payload.keyId, i: payload.iterations };
      case 'resend':
        return {
          ...head,
          t: 'rs',
          k: payload.keyId,
          i: payload.iteration,
          m: payload.messageId,
          s: payload.seq,
          e: payload.editedAt,
          d: bytesToBase64(payload.content),
        };
    }
  })();
  return utf8.encode(JSON.stringify(json));
}

const isIteration = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

export function decodeDevicePayload(bytes: Uint8Array): DevicePayload {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new CryptoError('MALFORMED', 'device payload is not JSON');
  }
  const o = json as {
    v?: unknown;
    t?: unknown;
    c?: unknown;
    d?: unknown;
    k?: unknown;
    f?: unknown;
    b?: unknown;
    i?: unknown;
    m?: unknown;
    s?: unknown;
    e?: unknown;
  };
  if (o.v !== PAYLOAD_VERSION) throw new CryptoError('UNKNOWN_VERSION', 'device payload version');
  if (typeof o.c !== 'string') throw new CryptoError('MALFORMED', 'device payload');
  const conversationId = o.c;
  if (o.t === 'sk' && typeof o.d === 'string')
    return {
      type: 'sender-key',
      conversationId,
      distribution: base64ToBytes(o.d),
      ...(o.f === 1 ? { forward: true as const } : {}),
    };
  if (typeof o.k !== 'string') throw new CryptoError('MALFORMED', 'unknown device payload');
  const keyId = o.k;
  if (o.t === 'kr')
    return { type: 'key-request', conversationId, keyId, ...(o.b === 1 ? { behind: true } : {}) };
  if (o.t === 'kg') return { type: 'key-gone', conversationId, keyId };
  if (
    o.t === 'rr' &&
    Array.isArray(o.i) &&
    o.i.length > 0 &&
    o.i.length <= MAX_RESEND_ITERATIONS &&
    o.i.every(isIteration)
  )
    return { type: 'resend-request', conversationId, keyId, iterations: o.i };
  if (
    o.t === 'rs' &&
    isIteration(o.i) &&
    typeof o.m === 'string' &&
    Number.isSafeInteger(o.s) &&
    (o.s as number) > 0 &&
    (o.e === null || typeof o.e === 'string') &&
    typeof o.d === 'string'
  )
    return {
      type: 'resend',
      conversationId,
      keyId,
      iteration: o.i,
      messageId: o.m,
      seq: o.s as number,
      editedAt: o.e,
      content: base64ToBytes(o.d),
    };
  throw new CryptoError('MALFORMED', 'unknown device payload');
}
