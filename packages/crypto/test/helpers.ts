import {
  type DeviceKeys,
  type OneTimePreKey,
  type SignedPreKey,
  generateDeviceKeys,
  generateOneTimePreKeys,
  generateSignedPreKey,
  preKeyBundle,
} from '../src/index.js';

export const text = (value: string) => new TextEncoder().encode(value);
export const str = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

export type TestDevice = {
  keys: DeviceKeys;
  signedPreKey: SignedPreKey;
  oneTimePreKeys: OneTimePreKey[];
};

export function device(): TestDevice {
  const keys = generateDeviceKeys();
  return {
    keys,
    signedPreKey: generateSignedPreKey(keys, 1),
    oneTimePreKeys: generateOneTimePreKeys(100, 3),
  };
}

export function bundleOf(d: TestDevice, withOneTime = true) {
  return preKeyBundle(d.keys, d.signedPreKey, withOneTime ? d.oneTimePreKeys[0] : undefined);
}

/** A copy with one byte flipped at `index` (negative counts from the end). */
export function flip(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  const i = index < 0 ? out.length + index : index;
  out[i]! ^= 0x01;
  return out;
}
