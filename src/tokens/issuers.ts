import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  errors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type FetchImplementation,
  type JWSHeaderParameters,
  type FlattenedJWSInput,
  type JWTPayload,
} from 'jose'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { KeygateError, refused, type Refused } from '../errors.js'
import type { Principal } from '../principal.js'
import { usernamePrefixOf, type IssuerConfig } from '../config/schema.js'
import { isCleanName, isCleanText } from '../util/identity-value.js'
import { claimAt, isStringArray } from '../util/claims.js'
import { readPem, spkiPem } from './keyring.js'
import { reasonOf, shapeOk } from './jwt-shape.js'

// External issuers (an IdP's JWKS or a static public key): their tokens stand for their users,
// with the issuer's user-name prefix.

/** Who an external token says the caller is: the user name with the issuer's prefix; uid 0 unless `uidClaim` is set. */
interface ExternalIdentity extends Pick<Principal, 'username' | 'uid' | 'realName' | 'email' | 'groups'> {
  readonly issuer: string
  readonly jti: string | undefined
  /** epoch ms */
  readonly expiresAt: number
  readonly payload: Readonly<JWTPayload>
}

/** 'skip': the token is not an external issuer's (keygate's own, or no JWT at all); the caller's own verifier decides. */
type ExternalVerifyResult = { readonly ok: true; readonly identity: ExternalIdentity } | Refused | 'skip'

export interface IssuerVerifier {
  /** Verifies a token of any configured issuer (picked by its `iss`, then checked against that issuer's keys). */
  verify(token: string): Promise<ExternalVerifyResult>
}

export interface IssuerVerifierOptions {
  /** keygate's own issuer (secrets.jwt.issuer): its tokens are never an external issuer's, even one configured with that name */
  ownIssuer: string
  clock?: Clock
  readFile?: (path: string) => string
  /** after a successful JWKS fetch, an unknown `kid` triggers no new fetch for this long (jose cooldownDuration) */
  cooldownMs?: number
  /** keys are refetched when older than this (jose cacheMaxAge) */
  cacheMaxAgeMs?: number
  timeoutMs?: number
  /** after a failed fetch, only already cached keys are used for this long, so a dead IdP is not hammered per request */
  failureBackoffMs?: number
  clockToleranceSec?: number
  fetch?: FetchImplementation
}

type KeyResolver = (header: JWSHeaderParameters, input: FlattenedJWSInput) => Promise<CryptoKey>

interface CompiledIssuer {
  readonly cfg: IssuerConfig
  readonly getKey: KeyResolver
  readonly usernamePrefix: string
}

function groupsFrom(v: unknown): string[] | null {
  if (v === undefined || v === null) return []
  if (isStringArray(v)) return v
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean)
  return null
}

function remoteResolver(
  url: string,
  o: Required<Pick<IssuerVerifierOptions, 'cooldownMs' | 'cacheMaxAgeMs' | 'timeoutMs' | 'failureBackoffMs'>> & {
    clock: Clock
    fetch?: FetchImplementation
  },
): KeyResolver {
  const remote = createRemoteJWKSet(new URL(url), {
    cooldownDuration: o.cooldownMs,
    cacheMaxAge: o.cacheMaxAgeMs,
    timeoutDuration: o.timeoutMs,
    ...(o.fetch ? { [customFetch]: o.fetch } : {}),
  })
  let backoffUntil = 0
  return async (header, input) => {
    if (o.clock.now() < backoffUntil) {
      // jose's cooldown only follows a SUCCESSFUL fetch; while the IdP is failing, every unknown
      // kid would start a new fetch, so serve from what is cached and fetch nothing.
      const cached = remote.jwks()
      if (!cached) throw new errors.JWKSNoMatchingKey()
      return createLocalJWKSet(cached)(header, input)
    }
    try {
      return await remote(header, input)
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) && !(err instanceof errors.JWKSMultipleMatchingKeys)) {
        backoffUntil = o.clock.now() + o.failureBackoffMs
      }
      throw err
    }
  }
}

async function staticResolver(cfg: IssuerConfig, pem: string): Promise<KeyResolver> {
  const spki = spkiPem(createPublicKey(pem))
  const byAlg = new Map<string, CryptoKey>()
  for (const alg of cfg.algorithms) byAlg.set(alg, await importSPKI(spki, alg))
  return async (header) => {
    const key = header.alg !== undefined ? byAlg.get(header.alg) : undefined
    if (!key) throw new errors.JOSEAlgNotAllowed('algorithm not allowed')
    return key
  }
}

/**
 * Verifies JWTs from configured external issuers. Throws KeygateError E1023 at creation when a
 * static key cannot be decoded or an issuer has no key source.
 */
export async function createIssuerVerifier(
  issuers: readonly IssuerConfig[],
  opts: IssuerVerifierOptions,
): Promise<IssuerVerifier> {
  const clock = opts.clock ?? systemClock
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'))
  const remoteOpts = {
    clock,
    cooldownMs: opts.cooldownMs ?? 30_000,
    cacheMaxAgeMs: opts.cacheMaxAgeMs ?? 600_000,
    timeoutMs: opts.timeoutMs ?? 5_000,
    failureBackoffMs: opts.failureBackoffMs ?? 5_000,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  }
  const clockToleranceSec = opts.clockToleranceSec ?? 30
  const byIssuer = new Map<string, CompiledIssuer>()
  for (const cfg of issuers) {
    let getKey: KeyResolver
    try {
      if (cfg.publicKey) getKey = await staticResolver(cfg, readPem(cfg.publicKey, readFile))
      else if (cfg.jwksUrl) getKey = remoteResolver(cfg.jwksUrl, remoteOpts)
      else throw new KeygateError('E1023', `issuer ${cfg.issuer}: jwksUrl or publicKey is required`)
    } catch (err) {
      if (err instanceof KeygateError) throw err
      throw new KeygateError('E1023', `issuer ${cfg.issuer}: cannot decode the public key`, { cause: err })
    }
    byIssuer.set(cfg.issuer, { cfg, getKey, usernamePrefix: usernamePrefixOf(cfg) })
  }

  return {
    async verify(token) {
      // `iss` is read unverified only to pick the issuer; jwtVerify then checks it against that issuer's keys.
      let iss: unknown
      try {
        iss = decodeJwt(token).iss
      } catch {
        return 'skip'
      }
      const issuer = typeof iss === 'string' && iss !== opts.ownIssuer ? byIssuer.get(iss) : undefined
      if (!issuer) return 'skip'
      if (!shapeOk(token)) return refused('E1001', 'malformed')
      const { cfg } = issuer
      let payload: JWTPayload
      try {
        ;({ payload } = await jwtVerify(token, issuer.getKey, {
          algorithms: cfg.algorithms,
          issuer: cfg.issuer,
          ...(cfg.audience !== undefined ? { audience: cfg.audience } : {}),
          clockTolerance: clockToleranceSec,
          currentDate: new Date(clock.now()),
          requiredClaims: ['exp'],
        }))
      } catch (err) {
        return refused('E1001', reasonOf(err))
      }
      const p = payload as Record<string, unknown>
      const username = claimAt(p, cfg.usernameClaim)
      const groups = groupsFrom(claimAt(p, cfg.groupsClaim))
      const uid = cfg.uidClaim === undefined ? 0 : claimAt(p, cfg.uidClaim)
      const realName = p.name ?? ''
      const email = p.email ?? ''
      // Refused, never cleaned: "admin\t" or " admin " must not become admin on the way upstream.
      if (
        typeof username !== 'string' ||
        !isCleanName(username) ||
        groups === null ||
        !groups.every(isCleanName) ||
        typeof uid !== 'number' ||
        !Number.isSafeInteger(uid) ||
        uid < 0 ||
        typeof realName !== 'string' ||
        !isCleanText(realName) ||
        typeof email !== 'string' ||
        !isCleanText(email)
      )
        return refused('E1001', 'claims')
      return {
        ok: true,
        identity: {
          issuer: cfg.issuer,
          username: issuer.usernamePrefix + username,
          uid,
          realName,
          email,
          groups,
          jti: typeof p.jti === 'string' ? p.jti : undefined,
          expiresAt: (payload.exp as number) * 1000,
          payload,
        },
      }
    },
  }
}
