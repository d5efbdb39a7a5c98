/**
 * Safety numbers, as Signal computes them: per side, an iterated SHA-512 fingerprint of the
 * identity (here: X25519 identity key || Ed25519 signing key) and a stable user identifier;
 * 30 digits per side (six 5-byte chunks, each mod 100000); the two halves sorted so both
 * devices show the same 60 digits. The QR payload carries both 32-byte fingerprints, sorted
 * the same way, behind a version byte, so scanning compares bytes that are equal on both sides.
 */
import { concatBytes, equalBytes, utf8 } from './bytes.js';
import { CryptoError } from './errors.js';
import type { PublicDeviceKeys } from './keys.js';
import { sha512 } from './primitives.js';

const FINGERPRINT_VERSION = Uint8Array.of(0, 0);
const ITERATIONS = 5200;
const QR_VERSION = 1;
const QR_FINGERPRINT_LENGTH = 32;

export type SafetyNumberParty = { stableId: string; keys: PublicDeviceKeys };

function fingerprint(party: SafetyNumberParty): Uint8Array {
  const key = concatBytes(party.keys.identityKey, party.keys.signingKey);
  let hash = sha512(concatBytes(FINGERPRINT_VERSION, key, utf8.encode(party.stableId)));
  for (let i = 0; i < ITERATIONS; i++) hash = sha512(concatBytes(hash, key));
  return hash;
}

function digits(hash: Uint8Array): string {
  let out = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let value = 0;
    // 5 bytes = 40 bits: exact in a double, so no BigInt is needed.
    for (let i = 0; i < 5; i++) value = value * 256 + hash[chunk * 5 + i]!;
    out += String(value % 100000).padStart(5, '0');
  }
  return out;
}

function sortedHalves(local: SafetyNumberParty, remote: SafetyNumberParty) {
  const halves = [fingerprint(local), fingerprint(remote)].map((hash) => ({
    hash,
    digits: digits(hash),
  }));
  return halves.sort((a, b) => (a.digits < b.digits ? -1 : a.digits > b.digits ? 1 : 0));
}

/** 60 digits, the same on both devices; show them in groups of five. */
export function safetyNumber(local: SafetyNumberParty, remote: SafetyNumberParty): string {
  return sortedHalves(local, remote)
    .map((half) => half.digits)
    .join('');
}

/** Versioned bytes for a QR code: version (1) || fingerprint (32) || fingerprint (32). */
export function safetyNumberQrPayload(
  local: SafetyNumberParty,
  remote: SafetyNumberParty,
): Uint8Array {
  const [a, b] = sortedHalves(local, remote);
  return concatBytes(
    Uint8Array.of(QR_VERSION),
    a!.hash.slice(0, QR_FINGERPRINT_LENGTH),
    b!.hash.slice(0, QR_FINGERPRINT_LENGTH),
  );
}

/** True when a scanned payload matches ours; an unknown version is refused, not compared. */
export function compareSafetyNumberQr(ours: Uint8Array, scanned: Uint8Array): boolean {
  if (scanned.length === 0 || scanned[0] !== QR_VERSION) {
    throw new CryptoError('UNKNOWN_VERSION', `safety number QR version ${scanned[0]}`);
  }
  return equalBytes(ours, scanned);
}
