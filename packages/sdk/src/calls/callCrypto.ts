/**
 * How SDP and ICE reach exactly one peer device without the server reading them: pairwise
 * device-to-device encryption. `client.e2ee.pairwise` (the X3DH / Double Ratchet sessions of
 * `@mvp/crypto`) is the one `createMvpClient` uses; the CallManager only calls these two.
 */
export type CallCrypto = {
  encrypt(userId: string, deviceId: string, plaintext: Uint8Array): Promise<Uint8Array>;
  decrypt(userId: string, deviceId: string, ciphertext: Uint8Array): Promise<Uint8Array>;
};
