import type { JSONWebKeySet } from 'jose'
import type { GatewayConfig } from '../config/schema.js'
import { createKeyring, type Keyring } from './keyring.js'

export type { JwtAlg } from './keyring.js'

/** Keys for the JWTs keygate issues, imported once at config load (never per request). */
export interface JwtKeys {
  readonly ring: Keyring
  readonly issuer: string
  readonly audience: string | undefined
  readonly clockToleranceSec: number
  /** true when HS256 had no secret and a random one was made: tokens die with the process, and other instances cannot verify them */
  readonly ephemeral: boolean
}

/** Imports the configured keys once (createKeyring); throws KeygateError E1023 at start-up on a bad key. */
export async function createJwtKeys(
  cfg: GatewayConfig['secrets']['jwt'],
  opts: { readFile?: (path: string) => string } = {},
): Promise<JwtKeys> {
  const ring = await createKeyring(cfg, opts)
  return Object.freeze({
    ring,
    issuer: cfg.issuer,
    audience: cfg.audience,
    clockToleranceSec: Math.floor(cfg.clockSkew / 1000),
    ephemeral: ring.ephemeral,
  })
}

/** Body of /.well-known/jwks.json: the public key of every RS256/ES256/EdDSA key of the ring, never an HS256 secret. */
export const publicJwks = (keys: JwtKeys): JSONWebKeySet => keys.ring.jwks as JSONWebKeySet
