/**
 * How SDP and ICE reach exactly one peer device without the server reading them: pairwise
 * device-to-device encryption (the E2EE sessions of `@mvp/crypto`). The CallManager only calls
 * these two functions.
 */
export type CallCrypto = {
  encrypt(userId: string, deviceId: string, plaintext: Uint8Array): Promise<Uint8Array>;
  decrypt(userId: string, deviceId: string, ciphertext: Uint8Array): Promise<Uint8Array>;
};

/**
 * NOT ENCRYPTED. Passes SDP and ICE through as plaintext, so the server (and anyone reading its
 * logs or database) sees IP addresses and media fingerprints. For unit tests and local
 * development only; never the default, and never for real users.
 */
export const insecurePlaintextCallCrypto: CallCrypto = Object.freeze({
  encrypt: async (_userId: string, _deviceId: string, plaintext: Uint8Array) => plaintext,
  decrypt: async (_userId: string, _deviceId: string, ciphertext: Uint8Array) => ciphertext,
});
