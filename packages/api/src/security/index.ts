export { createFieldCipher } from './fieldCipher';
export type { DataKey, FieldCipher, FieldCipherKeys } from './fieldCipher';
export { createPasswordHasher, MIN_PASSWORD_PARAMS } from './passwords';
export type { PasswordHasher, PasswordParams } from './passwords';
export { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, passwordProblem } from './passwordPolicy';
export type { PasswordProblem } from './passwordPolicy';
export {
  hashOtp,
  hashRefreshToken,
  newOtpCode,
  newRefreshToken,
  safeEqualHex,
} from './refreshTokens';
export {
  createTokenSigner,
  generateSigningKey,
  signingKeyProblem,
  verifyKeyProblem,
} from './tokens';
export type { AccessClaims, TokenSigner, TokenSignerOptions } from './tokens';
