import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  SignJWT,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type FetchImplementation,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type FlattenedJWSInput,
  type JWTPayload,
} from 'jose'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { KeygateError } from '../errors.js'
import { isTokenType, type Principal, type Scheme, type TokenType } from '../principal.js'
import { usernamePrefixOf, type GatewayConfig, type IssuerConfig, type UserConfig } from '../config/schema.js'
import { randomToken } from '../util/secret.js'
import { isCleanName, isCleanText } from '../util/identity-value.js'
import { createKeyring, readPem, spkiPem, type Keyring } from './keyring.js'

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

// A JWT is three base64url parts; anything longer than this is refused before any crypto or parsing.
const MAX_JWT_CHARS = 8192
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  'sub',
  'jti',
  'iat',
  'exp',
  'nbf',
  'iss',
  'aud',
  'type',
  'uid',
  'name',
  'email',
  'groups',
  'fam',
])
// A refresh family id: what randomToken makes, and nothing a store key or a channel message could trip on.
const FAMILY_SHAPE = /^[A-Za-z0-9_-]{16,64}$/

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

export interface JwtIssueClaims {
  /** username */
  readonly sub: string
  readonly type: TokenType
  readonly uid: number
  readonly name: string
  readonly email: string
  readonly groups: readonly string[]
  readonly ttlMs: number
  /** the refresh family: every refresh token of one login and the access tokens issued with them */
  readonly family?: string
  /** further claims (e.g. clientid); they cannot override the registered ones above */
  readonly extra?: Readonly<Record<string, unknown>>
}

export type JwtIssueResult =
  | {
      readonly ok: true
      readonly token: string
      readonly jti: string
      readonly issuedAt: number
      readonly expiresAt: number
    }
  | { readonly ok: false; readonly code: 'E1024' }

/** Signs a JWT; times come from the injected clock (epoch ms in the result, seconds in the token). */
export async function issueJwt(keys: JwtKeys, claims: JwtIssueClaims, clock: Clock): Promise<JwtIssueResult> {
  const signing = keys.ring.signing
  if (!signing || !(claims.ttlMs > 0)) return { ok: false, code: 'E1024' }
  const now = clock.now()
  const iat = Math.floor(now / 1000)
  const exp = Math.floor((now + claims.ttlMs) / 1000)
  const jti = randomToken(16)
  const extra: Record<string, unknown> = {}
  if (claims.extra) for (const [k, v] of Object.entries(claims.extra)) if (!RESERVED_CLAIMS.has(k)) extra[k] = v
  const payload: JWTPayload = {
    ...extra,
    sub: claims.sub,
    jti,
    iat,
    nbf: iat,
    exp,
    iss: keys.issuer,
    ...(keys.audience !== undefined ? { aud: keys.audience } : {}),
    type: claims.type,
    uid: claims.uid,
    name: claims.name,
    email: claims.email,
    groups: [...claims.groups],
    ...(claims.family !== undefined ? { fam: claims.family } : {}),
  }
  try {
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: signing.alg, typ: 'JWT', kid: signing.kid })
      .sign(signing.cryptoKey)
    return { ok: true, token, jti, issuedAt: iat * 1000, expiresAt: exp * 1000 }
  } catch {
    return { ok: false, code: 'E1024' }
  }
}

/** What a verified keygate JWT says, checked for shape. */
export interface JwtClaims {
  readonly sub: string
  readonly jti: string
  readonly type: TokenType
  readonly uid: number
  readonly name: string
  readonly email: string
  readonly groups: readonly string[]
  readonly iss: string
  /** epoch ms */
  readonly issuedAt: number
  /** epoch ms */
  readonly expiresAt: number
  /** the refresh family the token belongs to (refresh tokens and the access tokens issued with them) */
  readonly family: string | undefined
  /** the whole verified payload, for claims beyond the above (e.g. clientid) */
  readonly payload: Readonly<JWTPayload>
}

/** reason is for logs and metrics only: a fixed word, never token content */
export type JwtVerifyResult =
  | { readonly ok: true; readonly claims: JwtClaims }
  | { readonly ok: false; readonly code: 'E1001' | 'E1020'; readonly reason: string }

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'expired'
  if (err instanceof errors.JWTClaimValidationFailed) return `claim_${err.claim}`
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm'
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature'
  if (err instanceof errors.JWKSNoMatchingKey) return 'no_key'
  if (err instanceof errors.JWKSTimeout) return 'jwks_timeout'
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'malformed'
  return 'invalid'
}

const shapeOk = (token: string): boolean => token.length <= MAX_JWT_CHARS && JWT_SHAPE.test(token)

/**
 * Verifies a keygate JWT. The algorithm allowlist is exactly the configured one, so `alg: none`
 * and HS/RS confusion (an HS256 token "signed" with the RSA public key) are refused by jose before
 * any key is used. `types` restricts the token type (E1020 otherwise).
 */
export async function verifyJwt(
  keys: JwtKeys,
  token: string,
  clock: Clock,
  opts: { types?: readonly TokenType[] } = {},
): Promise<JwtVerifyResult> {
  if (!shapeOk(token)) return { ok: false, code: 'E1001', reason: 'malformed' }
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(token, keys.ring.keyFor, {
      algorithms: [...keys.ring.algorithms],
      issuer: keys.issuer,
      ...(keys.audience !== undefined ? { audience: keys.audience } : {}),
      clockTolerance: keys.clockToleranceSec,
      currentDate: new Date(clock.now()),
      requiredClaims: ['sub', 'jti', 'exp', 'iat'],
    }))
  } catch (err) {
    return { ok: false, code: 'E1001', reason: reasonOf(err) }
  }
  const p = payload as Record<string, unknown>
  const type = p.type
  if (
    typeof p.sub !== 'string' ||
    p.sub === '' ||
    typeof p.jti !== 'string' ||
    p.jti === '' ||
    typeof type !== 'string' ||
    !isTokenType(type) ||
    typeof p.exp !== 'number' ||
    typeof p.iat !== 'number'
  ) {
    return { ok: false, code: 'E1001', reason: 'claims' }
  }
  const uid = p.uid ?? 0
  const groups = p.groups ?? []
  if (
    typeof uid !== 'number' ||
    !Number.isSafeInteger(uid) ||
    uid < 0 ||
    !isStringArray(groups) ||
    (p.name !== undefined && typeof p.name !== 'string') ||
    (p.email !== undefined && typeof p.email !== 'string') ||
    (p.fam !== undefined && (typeof p.fam !== 'string' || !FAMILY_SHAPE.test(p.fam)))
  ) {
    return { ok: false, code: 'E1001', reason: 'claims' }
  }
  if (opts.types && !opts.types.includes(type)) return { ok: false, code: 'E1020', reason: 'type' }
  return {
    ok: true,
    claims: {
      sub: p.sub,
      jti: p.jti,
      type: type,
      uid,
      name: p.name ?? '',
      email: p.email ?? '',
      groups,
      iss: p.iss as string,
      issuedAt: p.iat * 1000,
      expiresAt: p.exp * 1000,
      family: typeof p.fam === 'string' ? p.fam : undefined,
      payload,
    },
  }
}

/** The Principal a verified keygate JWT stands for: its user as configured now, when given. */
export const principalFromClaims = (
  claims: JwtClaims,
  scheme: Scheme = 'bearer',
  user?: Pick<UserConfig, 'uid' | 'name' | 'email' | 'groups'>,
): Principal => ({
  scheme,
  username: claims.sub,
  uid: user?.uid ?? claims.uid,
  realName: user?.name ?? claims.name,
  email: user?.email ?? claims.email,
  groups: user?.groups ?? claims.groups,
  tokenType: claims.type,
  jti: claims.jti,
  expiresAt: claims.expiresAt,
  ...(claims.family !== undefined ? { family: claims.family } : {}),
})

/** Body of /.well-known/jwks.json: the public key of every RS256/ES256/EdDSA key of the ring, never an HS256 secret. */
export const publicJwks = (keys: JwtKeys): JSONWebKeySet => keys.ring.jwks as JSONWebKeySet

// ---------------------------------------------------------------------------------------------
// External issuers (an IdP's JWKS or a static public key)

/** Who an external token says the caller is: the user name with the issuer's prefix; uid 0 unless `uidClaim` is set. */
export interface ExternalIdentity {
  readonly issuer: string
  readonly username: string
  readonly uid: number
  readonly realName: string
  readonly email: string
  readonly groups: readonly string[]
  readonly jti: string | undefined
  /** epoch ms */
  readonly expiresAt: number
  readonly payload: Readonly<JWTPayload>
}

export type ExternalVerifyResult =
  | { readonly ok: true; readonly identity: ExternalIdentity }
  | { readonly ok: false; readonly code: 'E1001'; readonly reason: string }

export interface IssuerVerifier {
  /** true when `iss` names a configured external issuer */
  has(iss: string): boolean
  /** Verifies a token from any configured issuer (picked by its `iss`, then checked against that issuer's keys). */
  verify(token: string): Promise<ExternalVerifyResult>
}

export interface IssuerVerifierOptions {
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

/** Reads `a.b.c` paths, for claims such as Keycloak's realm_access.roles. */
function claimAt(payload: Record<string, unknown>, path: string): unknown {
  if (path in payload) return payload[path]
  let v: unknown = payload
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
    v = (v as Record<string, unknown>)[part]
  }
  return v
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
  opts: IssuerVerifierOptions = {},
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
    has: (iss) => byIssuer.has(iss),
    async verify(token) {
      if (!shapeOk(token)) return { ok: false, code: 'E1001', reason: 'malformed' }
      // `iss` is read unverified only to pick the issuer; jwtVerify then checks it against that issuer's keys.
      let iss: unknown
      try {
        iss = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { iss?: unknown } | null)
          ?.iss
      } catch {
        return { ok: false, code: 'E1001', reason: 'malformed' }
      }
      const issuer = typeof iss === 'string' ? byIssuer.get(iss) : undefined
      if (!issuer) return { ok: false, code: 'E1001', reason: 'issuer' }
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
        return { ok: false, code: 'E1001', reason: reasonOf(err) }
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
        return { ok: false, code: 'E1001', reason: 'claims' }
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
