import { errors } from 'jose'

// What every JWT keygate reads (its own and an external issuer's) must look like before any
// crypto or parsing, and the fixed word a refusal is logged with.

// A JWT is three base64url parts; anything longer than this is refused before any crypto or parsing.
const MAX_JWT_CHARS = 8192
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export const shapeOk = (token: string): boolean => token.length <= MAX_JWT_CHARS && JWT_SHAPE.test(token)

/** Why jose refused a token: a fixed word for logs and metrics, never token content. */
export function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'expired'
  if (err instanceof errors.JWTClaimValidationFailed) return `claim_${err.claim}`
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm'
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature'
  if (err instanceof errors.JWKSNoMatchingKey) return 'no_key'
  if (err instanceof errors.JWKSTimeout) return 'jwks_timeout'
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'malformed'
  return 'invalid'
}
