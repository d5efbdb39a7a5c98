import { type CryptoStore, safetyNumber, safetyNumberQrPayload } from '@mvp/crypto';
import { base64ToBytes } from '../base64';
import type { Directory } from './directory';
import type { DirectoryDevice, Me } from './transport';

export type SafetyNumber = {
  /** Their device this number covers (a user has one per device). */
  deviceId: string;
  /** 60 digits, equal on both sides; show them in groups of five. */
  digits: string;
  /** Bytes for a QR code; the other side compares with `compareSafetyNumberQr`. */
  qrPayload: Uint8Array;
};

type Deps = { store: CryptoStore; directory: Directory; me: () => Promise<Me> };

/** The safety number of my device with each of their devices (oldest device first). */
export async function safetyNumbersWith(deps: Deps, userId: string): Promise<SafetyNumber[]> {
  return (await safetyNumbersListed(deps, userId)).numbers;
}

/** The same, with the device list (as the server lists it now) the numbers were made from. */
export async function safetyNumbersListed(
  deps: Deps,
  userId: string,
): Promise<{ numbers: SafetyNumber[]; devices: DirectoryDevice[] }> {
  const keys = await deps.store.getDeviceKeys();
  if (!keys) throw new Error('@mvp/sdk: call e2ee.setup() first');
  const me = await deps.me();
  deps.directory.forget(userId); // compare what the server says now
  const local = {
    stableId: me.userId,
    keys: { identityKey: keys.identity.publicKey, signingKey: keys.signing.publicKey },
  };
  const devices = await deps.directory.devicesOf(userId);
  const numbers = devices.map((device) => {
    const remote = {
      stableId: userId,
      keys: {
        identityKey: base64ToBytes(device.identityKey),
        signingKey: base64ToBytes(device.signingKey),
      },
    };
    return {
      deviceId: device.deviceId,
      digits: safetyNumber(local, remote),
      qrPayload: safetyNumberQrPayload(local, remote),
    };
  });
  return { numbers, devices };
}
