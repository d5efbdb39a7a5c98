/**
 * How SDP and ICE travel: JSON, encrypted to the one peer device with `CallCrypto`, base64 on
 * the wire. The server relays these bytes and cannot read them.
 */
import { utf8 } from '@mvp/crypto';
import { base64ToBytes, bytesToBase64 } from '../base64';
import type { CallCrypto } from './callCrypto';
import { CallError } from './callError';
import { timeOfCallId } from './callId';
import type { SignalPayload } from './peerLink';
import type { SessionDescription } from './webrtc';

export async function seal(
  crypto: CallCrypto,
  userId: string,
  deviceId: string,
  payload: SignalPayload,
): Promise<string> {
  return bytesToBase64(
    await crypto.encrypt(userId, deviceId, utf8.encode(JSON.stringify(payload))),
  );
}

export async function open(
  crypto: CallCrypto,
  userId: string,
  deviceId: string,
  ciphertext: string,
): Promise<SignalPayload> {
  const plaintext = await crypto.decrypt(userId, deviceId, base64ToBytes(ciphertext));
  return JSON.parse(utf8.decode(plaintext)) as SignalPayload;
}

/**
 * How far an offer's call id (the caller's clock) may be from this device's clock when it
 * rings: the ring lasts 60 s by default; the rest is room for two devices' clocks. The server
 * refuses call ids further than this from its own clock too.
 */
export const OFFER_MAX_SKEW_MS = 10 * 60_000;

/**
 * Opens the caller's offer before anything rings, and holds it to its invite: it must decrypt
 * from the calling device, name this very call (the id is sealed inside, so an offer the
 * server moves into another call is refused) and be recent (so is an old offer this device
 * never opened, replayed later under its own id). Anything else is `INVALID_OFFER`.
 */
export async function openOffer(
  crypto: CallCrypto,
  invite: { callId: string; callerId: string; callerDeviceId: string; offer: string },
  now = Date.now(),
): Promise<SessionDescription> {
  let payload: SignalPayload;
  try {
    payload = await open(crypto, invite.callerId, invite.callerDeviceId, invite.offer);
  } catch (error) {
    throw new CallError('INVALID_OFFER', 'A call came in whose offer does not decrypt', {
      cause: error,
    });
  }
  if (payload.callId !== invite.callId)
    throw new CallError('INVALID_OFFER', 'A call came in with an offer sealed for another call');
  if (!(Math.abs(now - timeOfCallId(invite.callId)) <= OFFER_MAX_SKEW_MS))
    throw new CallError('INVALID_OFFER', 'A call came in with an offer too old to ring');
  if (payload.description?.type !== 'offer')
    throw new CallError('INVALID_OFFER', 'A call came in without an SDP offer');
  return payload.description;
}
