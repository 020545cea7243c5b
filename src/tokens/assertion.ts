import { createHmac, sign } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import type { Principal } from '../principal.js'
import type { SigningKey } from './keyring.js'

// The signed identity assertion: a short-lived JWT beside the plain identity headers, which an
// upstream (the KeygateAuth MediaWiki extension, or anything with a JWT library and keygate's
// JWKS) can verify, so that it need not trust whoever reaches it with X-Auth-User.
//
// Signing is not paid per request: an assertion is reused for the same identity and audience
// until only half of its lifetime is left, so an upstream always receives one with at least
// half its TTL to run. The cache is bounded (LRU) and keyed by everything the assertion says.

/** A current assertion for this caller and audience (signed at most once per reuse window). */
export type AssertionFor = (principal: Principal, audience: string) => string

export interface AssertionDeps {
  readonly key: SigningKey
  readonly issuer: string
  readonly ttlMs: number
  readonly clock: Clock
  /** distinct identity × audience pairs kept; beyond it the least recently used is signed anew */
  readonly maxEntries?: number
}

interface Signed {
  readonly token: string
  /** epoch ms after which a fresh one is signed */
  readonly renewAt: number
}

const DEFAULT_MAX_ENTRIES = 10_000

/** Everything an assertion carries but the audience and times, as one injective string. */
const identityKeyOf = (p: Principal): string =>
  JSON.stringify([p.scheme, p.username, p.uid, p.realName, p.email, p.groups])

export function createAssertionSigner(deps: AssertionDeps): AssertionFor {
  const { key, issuer, ttlMs, clock } = deps
  const header = Buffer.from(JSON.stringify({ alg: key.alg, typ: 'JWT', kid: key.kid })).toString('base64url')
  const signature = signerFor(key)
  const cache = new LRUCache<string, Signed>({ max: deps.maxEntries ?? DEFAULT_MAX_ENTRIES })
  // Principals of cached tokens and ApiKeys are the same object request after request: their
  // cache key is built once. Weak, so it holds nothing the token cache has let go of.
  const identityKeys = new WeakMap<Principal, string>()

  return (principal, audience) => {
    let identityKey = identityKeys.get(principal)
    if (identityKey === undefined) {
      identityKey = identityKeyOf(principal)
      identityKeys.set(principal, identityKey)
    }
    const cacheKey = `${audience}\n${identityKey}`
    const now = clock.now()
    const hit = cache.get(cacheKey)
    if (hit !== undefined && now < hit.renewAt) return hit.token
    const iat = Math.floor(now / 1000)
    const exp = Math.floor((now + ttlMs) / 1000)
    const payload = Buffer.from(
      JSON.stringify({
        iss: issuer,
        aud: audience,
        sub: principal.username,
        uid: principal.uid,
        name: principal.realName,
        email: principal.email,
        groups: principal.groups,
        scheme: principal.scheme,
        iat,
        nbf: iat,
        exp,
      }),
    ).toString('base64url')
    const data = `${header}.${payload}`
    const token = `${data}.${signature(data)}`
    cache.set(cacheKey, { token, renewAt: now + ttlMs / 2 })
    return token
  }
}

/**
 * A synchronous JWS signature (node:crypto; jose signs only through async WebCrypto, and the
 * decision is synchronous on a cache hit: a miss should not make it wait a tick either).
 */
function signerFor(key: SigningKey): (data: string) => string {
  switch (key.alg) {
    case 'HS256':
      return (data) => createHmac('sha256', key.nodeKey).update(data).digest('base64url')
    case 'ES256':
      return (data) =>
        sign('sha256', Buffer.from(data), { key: key.nodeKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    case 'RS256':
      return (data) => sign('sha256', Buffer.from(data), key.nodeKey).toString('base64url')
    case 'EdDSA':
      return (data) => sign(null, Buffer.from(data), key.nodeKey).toString('base64url')
  }
}
