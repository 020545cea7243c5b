import { SignJWT, jwtVerify, type JWTPayload } from 'jose'
import type { Clock } from '../clock.js'
import { refused, type Refused } from '../errors.js'
import { isTokenType, type Principal, type Scheme, type TokenType } from '../principal.js'
import type { UserConfig } from '../config/schema.js'
import { randomToken } from '../util/secret.js'
import { isStringArray } from '../util/claims.js'
import type { JwtKeys } from './jwt-keys.js'
import { reasonOf, shapeOk } from './jwt-shape.js'

// The JWTs keygate issues itself: signed with the keyring's first key, verified with any of its keys.

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
const CANNOT_SIGN = refused('E1024')

/** What a token is issued with: who it speaks for (as JwtClaims has it), and for how long. */
export interface JwtIssueClaims extends Pick<JwtClaims, 'sub' | 'type' | 'uid' | 'name' | 'email' | 'groups'> {
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
  | Refused

/** Signs a JWT; times come from the injected clock (epoch ms in the result, seconds in the token). */
export async function issueJwt(keys: JwtKeys, claims: JwtIssueClaims, clock: Clock): Promise<JwtIssueResult> {
  const signing = keys.ring.signing
  if (!signing || !(claims.ttlMs > 0)) return CANNOT_SIGN
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
    return CANNOT_SIGN
  }
}

/** What a verified keygate JWT says, checked for shape. */
export interface JwtClaims {
  /** username */
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

/** E1001, or E1020 for a type not asked for */
export type JwtVerifyResult = { readonly ok: true; readonly claims: JwtClaims } | Refused

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
  if (!shapeOk(token)) return refused('E1001', 'malformed')
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
    return refused('E1001', reasonOf(err))
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
    return refused('E1001', 'claims')
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
    return refused('E1001', 'claims')
  }
  if (opts.types && !opts.types.includes(type)) return refused('E1020', 'type')
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
