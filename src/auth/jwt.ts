import { decodeJwt } from 'jose'
import { refuse } from '../errors.js'
import type { Clock } from '../clock.js'
import { principalFromClaims, verifyJwt, type IssuerVerifier, type JwtClaims, type JwtKeys } from '../tokens/jwt.js'
import type { Revocation, TokenVerifier } from '../tokens/revocation.js'
import { RECORDED_TYPES, type IssuedTokens } from '../tokens/issued.js'
import type { Authenticator, AuthResult, Principal, TokenType } from './types.js'

export interface JwtAuthDeps {
  readonly keys: JwtKeys
  readonly clock: Clock
  readonly revocation: Revocation<JwtClaims>
  readonly issued: IssuedTokens
  /** the idle timeout a session slides by */
  readonly sessionIdleMs: number
  readonly issuers: IssuerVerifier | null
}

/**
 * Full check of a keygate JWT, called only when the verified-token cache has no fresh answer:
 * signature and claims, then for session / api / refresh tokens their record in the store
 * (a session's record also slides its idle expiry here, at most once a second per instance).
 */
export function createJwtVerifier(deps: JwtAuthDeps, types: readonly TokenType[]): TokenVerifier<JwtClaims> {
  return async (token) => {
    const v = await verifyJwt(deps.keys, token, deps.clock, { types })
    if (!v.ok || !RECORDED_TYPES.has(v.claims.type)) return v
    const { jti, type, expiresAt } = v.claims
    const record = type === 'session'
      ? await deps.issued.slide(jti, Math.min(deps.sessionIdleMs, expiresAt - deps.clock.now()))
      : await deps.issued.get(jti)
    if (!record) return { ok: false, code: type === 'session' ? 'E1003' : 'E1002', reason: 'record_gone' }
    return v
  }
}

/**
 * `Authorization: Bearer <jwt>` (scheme bearer) and the session cookie (scheme session) share
 * one path: the hot path answers from the verified-token cache with no signature check and no
 * store round trip; tokens of configured external issuers go to their own verifier.
 */
export function createJwtAuthenticator(scheme: 'bearer' | 'session', deps: JwtAuthDeps): Authenticator {
  const types: readonly TokenType[] = scheme === 'session' ? ['session'] : ['access', 'api', 'session']
  const verify = createJwtVerifier(deps, types)
  const allowed = new Set(types)
  const ok = (claims: JwtClaims): AuthResult => ({ kind: 'ok', principal: principalFromClaims(claims, scheme) })
  const wrongType: AuthResult = { kind: 'deny', refusal: refuse('E1020') }

  return {
    scheme,
    async authenticate({ token }) {
      const hot = deps.revocation.cached(token)
      if (hot) return allowed.has(hot.type) ? ok(hot) : wrongType
      if (scheme === 'bearer' && deps.issuers) {
        const external = await externalIdentity(deps.issuers, deps.keys.issuer, token)
        if (external) return external
      }
      const r = await deps.revocation.check(token, verify)
      if (!r.ok) return { kind: 'deny', refusal: refuse(r.code) }
      return allowed.has(r.claims.type) ? ok(r.claims) : wrongType
    },
  }
}

/** null when the token is not from a configured external issuer (then it must be ours). */
async function externalIdentity(issuers: IssuerVerifier, ownIssuer: string, token: string): Promise<AuthResult | null> {
  let iss: unknown
  try { iss = decodeJwt(token).iss } catch { return null }
  if (typeof iss !== 'string' || iss === ownIssuer || !issuers.has(iss)) return null
  const r = await issuers.verify(token)
  if (!r.ok) return { kind: 'deny', refusal: refuse('E1001') }
  const id = r.identity
  const principal: Principal = {
    scheme: 'bearer', username: id.username, uid: id.uid, realName: id.realName, email: id.email,
    groups: id.groups, tokenType: 'access', jti: id.jti, expiresAt: id.expiresAt,
  }
  return { kind: 'ok', principal }
}
