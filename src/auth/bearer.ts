import { LRUCache } from 'lru-cache'
import { refuse, refused } from '../errors.js'
import type { Clock } from '../clock.js'
import { principalFromClaims, verifyJwt, type JwtClaims } from '../tokens/own-tokens.js'
import type { JwtKeys } from '../tokens/jwt-keys.js'
import type { IssuerVerifier } from '../tokens/issuers.js'
import type { Revocation, TokenVerifier } from '../tokens/revocation.js'
import { RECORDED_TYPES, type IssuedTokens } from '../tokens/issued.js'
import type { UserConfig } from '../config/schema.js'
import { hasWindow, inStanding } from './user-standing.js'
import type { UserDirectory } from './login.js'
import type { Authenticator, AuthResult } from './types.js'
import { REQUEST_TOKEN_TYPES, type Principal, type TokenType } from '../principal.js'
import { andThen, type MaybePromise } from '../util/maybe-promise.js'

export interface JwtAuthDeps {
  readonly keys: JwtKeys
  readonly clock: Clock
  readonly revocation: Revocation<JwtClaims>
  readonly issued: IssuedTokens
  /** the idle timeout a session slides by */
  readonly sessionIdleMs: number
  /** one per gateway snapshot, shared by the Bearer and the cookie authenticator */
  readonly sessions: SessionKeeper
  readonly issuers: IssuerVerifier | null
  /** this snapshot's enabled users: a token speaks for its user only while the user is here */
  readonly users: ReadonlyMap<string, UserConfig>
  /** where users not in `users` are looked up (usersFrom.ldap), or null */
  readonly directory: UserDirectory | null
  /**
   * this snapshot's sign-in providers (signIn.providers ids): a session from a provider sign-in
   * (its `idp` claim) speaks for whom the provider vouched for, while that provider is configured
   */
  readonly providers: ReadonlySet<string>
}

/**
 * Sessions slide: tokens.session.ttl is an idle timeout kept in the session's record. The
 * verified-token cache skips the store, so the record is slid here, at most every quarter of the
 * idle timeout (capped at a minute) per session and instance: every instance then sees an active
 * session alive, and an idle one gone within that quarter.
 */
export function createSessionKeeper(deps: Pick<JwtAuthDeps, 'clock' | 'issued' | 'sessionIdleMs'>) {
  const slideEveryMs = Math.min(60_000, Math.max(50, Math.floor(deps.sessionIdleMs / 4)))
  const lastSlid = new LRUCache<string, number>({ max: 50_000 })
  const slide = async (claims: JwtClaims, now: number): Promise<boolean> => {
    const record = await deps.issued.slide(claims.jti, Math.min(deps.sessionIdleMs, claims.expiresAt - now))
    if (!record) {
      lastSlid.delete(claims.jti)
      return false
    }
    lastSlid.set(claims.jti, now)
    return true
  }
  return function alive(claims: JwtClaims): MaybePromise<boolean> {
    const now = deps.clock.now()
    const last = lastSlid.get(claims.jti)
    if (last !== undefined && now - last < slideEveryMs) return true
    return slide(claims, now)
  }
}

type SessionKeeper = ReturnType<typeof createSessionKeeper>

const SESSION_RECORD_GONE = refused('E1003', 'record_gone')
const RECORD_GONE = refused('E1002', 'record_gone')

/**
 * Full check of a keygate JWT, called only when the verified-token cache has no fresh answer:
 * signature and claims, then for session / api / refresh tokens their record in the store.
 */
function createJwtVerifier(deps: JwtAuthDeps, types: readonly TokenType[]): TokenVerifier<JwtClaims> {
  return async (token) => {
    const v = await verifyJwt(deps.keys, token, deps.clock, { types })
    if (!v.ok || !RECORDED_TYPES.has(v.claims.type)) return v
    const { jti, type } = v.claims
    const present = type === 'session' ? await deps.sessions(v.claims) : (await deps.issued.get(jti)) !== null
    if (!present) return type === 'session' ? SESSION_RECORD_GONE : RECORD_GONE
    return v
  }
}

/**
 * `Authorization: Bearer <jwt>` (scheme bearer) and the session cookie (scheme session) share
 * one path: the hot path answers from the verified-token cache with no signature check and no
 * store round trip; tokens of configured external issuers go to their own verifier.
 */
export function createJwtAuthenticator(scheme: 'bearer' | 'session', deps: JwtAuthDeps): Authenticator {
  const types: readonly TokenType[] = scheme === 'session' ? ['session'] : REQUEST_TOKEN_TYPES
  const verify = createJwtVerifier(deps, types)
  const allowed = new Set(types)
  const wrongType: AuthResult = { kind: 'deny', refusal: refuse('E1020') }
  const sessionGone: AuthResult = { kind: 'deny', refusal: refuse('E1003') }
  const userGone: AuthResult = scheme === 'session' ? sessionGone : { kind: 'deny', refusal: refuse('E1001') }
  // Cached claims come back as the same object: so does their answer (its principal, and so its
  // identity headers). The users table is fixed for a snapshot and a reload builds new
  // authenticators, so the answer (refusal included) stands as long as this map holds the claims.
  const answers = new WeakMap<JwtClaims, AuthResult>()
  /** The cache answered: a session's record must still be alive (and slides). */
  const ok = (claims: JwtClaims): MaybePromise<AuthResult> => {
    if (!allowed.has(claims.type)) return wrongType
    if (claims.type !== 'session') return answerFor(claims)
    return andThen(deps.sessions(claims), (alive) => (alive ? answerFor(claims) : sessionGone))
  }
  // Users with a validity window can fall out of it with no reload: they are checked on every request.
  const windowed = new Map([...deps.users].filter(([, user]) => hasWindow(user)))
  /** The user as configured now (groups, name, e-mail), not as the token said at issue. */
  const okFor = (claims: JwtClaims, user?: UserConfig): AuthResult => ({
    kind: 'ok',
    principal: principalFromClaims(claims, scheme, user),
  })
  const answerFor = (claims: JwtClaims): MaybePromise<AuthResult> => {
    const idp = claims.payload.idp
    if (typeof idp !== 'string') {
      const timed = windowed.get(claims.sub)
      if (timed && !inStanding(timed, deps.clock.now())) return userGone
      if (deps.directory && !deps.users.has(claims.sub)) return fromDirectory(deps.directory, claims)
    }
    let answer = answers.get(claims)
    if (!answer) {
      if (typeof idp === 'string') answer = deps.providers.has(idp) ? okFor(claims) : userGone
      else {
        const user = deps.users.get(claims.sub)
        answer = user ? okFor(claims, user) : userGone
      }
      answers.set(claims, answer)
    }
    return answer
  }
  /** A directory user as the directory has it now (cached there): unreachable is E1006, never a pass. */
  const fromDirectory = async (directory: UserDirectory, claims: JwtClaims): Promise<AuthResult> => {
    const user = await directory.find(claims.sub)
    return user ? { kind: 'ok', principal: principalFromClaims(claims, scheme, user) } : userGone
  }
  const verifyAndCache = async (token: string): Promise<AuthResult> => {
    if (scheme === 'bearer' && deps.issuers) {
      const external = await externalIdentity(deps.issuers, token)
      if (external) return external
    }
    const r = await deps.revocation.check(token, verify)
    if (!r.ok) return { kind: 'deny', refusal: r.refusal }
    return ok(r.claims)
  }

  return {
    scheme,
    authenticate({ token }) {
      const hot = deps.revocation.cached(token)
      return hot ? ok(hot) : verifyAndCache(token)
    },
  }
}

/** null when the token is not from a configured external issuer (then it must be ours). */
async function externalIdentity(issuers: IssuerVerifier, token: string): Promise<AuthResult | null> {
  const r = await issuers.verify(token)
  if (r === 'skip') return null
  if (!r.ok) return { kind: 'deny', refusal: refuse('E1001') }
  const id = r.identity
  const principal: Principal = {
    scheme: 'bearer',
    username: id.username,
    uid: id.uid,
    realName: id.realName,
    email: id.email,
    groups: id.groups,
    tokenType: 'access',
    jti: id.jti,
    issuer: id.issuer,
    expiresAt: id.expiresAt,
    claims: id.payload,
  }
  return { kind: 'ok', principal }
}
