// Sealing of tenant secrets (a pool's secretEnv): the gateway seals, the one service that
// hands them to a container opens; everything between carries ciphertext.
export { isSealed, open, parseSecretsKey, seal, SecretsError } from './seal.js';

/** What an API answer shows in place of a secret's value. */
export const REDACTED = '(secret)';
export { deriveScrypt, hashPassword, sameSecret, SCRYPT_COST, SCRYPT_KEY_LENGTH } from './passwords.js';
export type { ScryptCost } from './passwords.js';
