import { describe, expect, it } from 'vitest';
import {
  createOutboundSession,
  createSenderKey,
  deserializeDeviceKeys,
  deserializeInboundSenderKey,
  deserializeOneTimePreKey,
  deserializeOutboundSenderKey,
  deserializeSession,
  deserializeSignedPreKey,
  deserializeTrust,
  fromBase64,
  generateDeviceKeys,
  generateOneTimePreKeys,
  generateSignedPreKey,
  isCryptoError,
  processSenderKeyDistribution,
  retireSenderKey,
  senderKeyDistribution,
  serializeDeviceKeys,
  serializeInboundSenderKey,
  serializeOneTimePreKey,
  serializeOutboundSenderKey,
  serializeSession,
  serializeSignedPreKey,
  serializeTrust,
  toBase64,
} from '../src/index.js';
import { bundleOf, device } from './helpers.js';

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (isCryptoError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('serialization', () => {
  const keys = generateDeviceKeys();
  const outbound = createSenderKey();
  const kinds = [
    ['device keys', keys, serializeDeviceKeys, deserializeDeviceKeys],
    [
      'signed prekey',
      generateSignedPreKey(keys, 7),
      serializeSignedPreKey,
      deserializeSignedPreKey,
    ],
    [
      'one-time prekey',
      generateOneTimePreKeys(1, 1)[0]!,
      serializeOneTimePreKey,
      deserializeOneTimePreKey,
    ],
    [
      'session',
      createOutboundSession(keys, bundleOf(device())),
      serializeSession,
      deserializeSession,
    ],
    ['outbound sender key', outbound, serializeOutboundSenderKey, deserializeOutboundSenderKey],
    [
      'inbound sender key',
      processSenderKeyDistribution(senderKeyDistribution(outbound)),
      serializeInboundSenderKey,
      deserializeInboundSenderKey,
    ],
    [
      'trust record',
      {
        verified: true,
        devices: [
          {
            deviceId: 'd1',
            keys: { identityKey: keys.identity.publicKey, signingKey: keys.signing.publicKey },
          },
        ],
      },
      serializeTrust,
      deserializeTrust,
    ],
  ] as const;

  for (const [name, value, serialize, deserialize] of kinds) {
    it(`${name}: round trip, unknown version refused, wrong kind refused`, () => {
      const text = (serialize as (v: unknown) => string)(value);
      const back = (deserialize as (t: string) => unknown)(text);
      expect(back).toEqual(value);
      expect((serialize as (v: unknown) => string)(back)).toBe(text);
      const json = JSON.parse(text) as Record<string, unknown>;
      expect(json.v).toBe(1);
      expect(errorCode(() => deserialize(JSON.stringify({ ...json, v: 2 })))).toBe(
        'UNKNOWN_VERSION',
      );
      expect(errorCode(() => deserialize(JSON.stringify({ ...json, v: undefined })))).toBe(
        'UNKNOWN_VERSION',
      );
      expect(errorCode(() => deserialize(JSON.stringify({ ...json, kind: 'other' })))).toBe(
        'MALFORMED',
      );
      expect(errorCode(() => deserialize('not json'))).toBe('MALFORMED');
    });
  }

  it('a retired inbound sender key round-trips; a record from before retirement reads as the oldest', () => {
    const retired = {
      ...retireSenderKey(processSenderKeyDistribution(senderKeyDistribution(outbound))),
      receivedAt: 1234,
    };
    const text = serializeInboundSenderKey(retired);
    expect(deserializeInboundSenderKey(text)).toEqual(retired);
    expect(deserializeInboundSenderKey(text).chainKey).toHaveLength(0);
    const {
      receivedAt,
      retired: flag,
      ...before
    } = JSON.parse(
      serializeInboundSenderKey(processSenderKeyDistribution(senderKeyDistribution(outbound))),
    ) as Record<string, unknown>;
    expect([receivedAt, flag]).toEqual([0, undefined]);
    const old = deserializeInboundSenderKey(JSON.stringify(before));
    expect([old.receivedAt, old.retired]).toEqual([0, undefined]);
  });

  it('a session with skipped keys and a pending prekey round-trips exactly', () => {
    const session = createOutboundSession(keys, bundleOf(device(), false));
    const withSkipped = {
      ...session,
      ratchet: {
        ...session.ratchet,
        skipped: [
          {
            ratchetKey: new Uint8Array(32).fill(3),
            counter: 4,
            messageKey: new Uint8Array(32).fill(5),
          },
        ],
      },
    };
    expect(deserializeSession(serializeSession(withSkipped))).toEqual(withSkipped);
  });

  it('a session with archived ones round-trips; one stored before archives existed has none', () => {
    const older = createOutboundSession(keys, bundleOf(device(), false));
    const { archived: _, ...state } = older;
    const session = {
      ...createOutboundSession(keys, bundleOf(device(), false)),
      archived: [state],
    };
    expect(deserializeSession(serializeSession(session))).toEqual(session);
    const stored = JSON.parse(serializeSession(older)) as Record<string, unknown>;
    delete stored.archived;
    expect(deserializeSession(JSON.stringify(stored))).toEqual(older);
  });

  it('base64 matches the standard alphabet and padding', () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of cases) {
      expect(toBase64(new TextEncoder().encode(plain))).toBe(encoded);
      expect(new TextDecoder().decode(fromBase64(encoded))).toBe(plain);
    }
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(fromBase64(toBase64(all))).toEqual(all);
    expect(errorCode(() => fromBase64('Zm9*'))).toBe('MALFORMED');
  });
});
