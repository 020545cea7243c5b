import { refuse, refusalFor } from '../errors.js'
import type { AuthResult, Authenticator } from '../auth/types.js'
import type { AuthenticatorChain } from '../auth/index.js'
import type { Scheme } from '../principal.js'
import { cookieValues, headerValues } from '../util/raw-headers.js'
import { andThen, type MaybePromise } from '../util/maybe-promise.js'
import type { ClientCertificate } from '../auth/mtls.js'

/** The request's Authorization header, read once: what authentication checks and the proxy strips. */
export interface Authorization {
  /** how many Authorization headers the request has: more than one is refused as ambiguous */
  readonly count: number
  /** the first one's scheme word (lower-case) and token */
  readonly scheme: string
  readonly token: string
}

export interface AuthInput {
  readonly authorization: Authorization | null
  /** for the session cookie and the wiki's own cookies */
  readonly rawHeaders: readonly string[]
  readonly clientIp: string
  /** the connection's client certificate, when keygate terminated TLS and one was sent */
  readonly clientCertificate: ClientCertificate | null
}

export type AuthOutcome = AuthResult | { readonly kind: 'none' }

const AMBIGUOUS = { kind: 'deny', refusal: refuse('E1030') } as const
const MALFORMED = { kind: 'deny', refusal: refuse('E1001') } as const

/** Splits "Scheme token"; the scheme word is case-insensitive (RFC 9110). */
function parseAuthorization(value: string): { scheme: string; token: string } {
  const trimmed = value.trim()
  const sp = trimmed.search(/\s/)
  if (sp === -1) return { scheme: trimmed.toLowerCase(), token: '' }
  return { scheme: trimmed.slice(0, sp).toLowerCase(), token: trimmed.slice(sp).trim() }
}

export function readAuthorization(rawHeaders: readonly string[]): Authorization | null {
  const values = headerValues(rawHeaders, 'authorization')
  if (values.length === 0) return null
  return { count: values.length, ...parseAuthorization(values[0]!) }
}

/** Which of the gateway's own schemes the Authorization header carries, if any (kept from the upstream). */
export const credentialScheme = (authorization: Authorization | null, chain: AuthenticatorChain): Scheme | null =>
  authorization === null ? null : (chain.byScheme.get(authorization.scheme)?.scheme ?? null)

/** The store being down is an answer (E1006), not a failure of the request. */
function storeDownOrThrow(err: unknown): AuthResult {
  const refusal = refusalFor(err)
  if (refusal) return { kind: 'deny', refusal }
  throw err
}

function run(authenticator: Authenticator, token: string, clientIp: string): MaybePromise<AuthResult> {
  let result: MaybePromise<AuthResult>
  try {
    result = authenticator.authenticate({ token, clientIp })
  } catch (err) {
    return storeDownOrThrow(err)
  }
  return result instanceof Promise ? result.catch(storeDownOrThrow) : result
}

const NONE: AuthOutcome = { kind: 'none' }

// More session cookies than a browser has reason to send (the __Host- one, a plain one left over,
// one planted by a sibling subdomain): more is refused rather than tried.
const MAX_SESSION_COOKIES = 4

/**
 * The __Host- cookie when there is one: no other host can have set it. Otherwise every non-empty
 * plain one: a sibling subdomain may add its own keygate_session beside the person's.
 */
function sessionCookies(rawHeaders: readonly string[], name: string): string[] {
  const { plain, hostOnly } = cookieValues(rawHeaders, name)
  return hostOnly.length > 0 ? hostOnly : plain
}

/**
 * Several session cookies: each is tried; the invalid ones are passed over, and the valid ones must
 * all be the same person's, or the request is refused as ambiguous (fail closed).
 */
async function oneSession(session: Authenticator, values: string[], clientIp: string): Promise<AuthResult> {
  if (values.length > MAX_SESSION_COOKIES) return AMBIGUOUS
  const results = await Promise.all(values.map((v) => Promise.resolve(run(session, v, clientIp))))
  const valid = results.filter((r) => r.kind === 'ok')
  if (valid.length === 0) return results.find((r) => r.kind === 'deny') ?? results[0]!
  return valid.every((r) => r.principal.username === valid[0]!.principal.username) ? valid[0]! : AMBIGUOUS
}

/**
 * Authorization header first, then the session cookie, then the wiki's own cookies.
 * "none" means no credential of ours at all; whether that is enough is the route's business.
 */
export function authenticate(input: AuthInput, chain: AuthenticatorChain): MaybePromise<AuthOutcome> {
  // A certificate shown on the connection identifies the caller, whatever else the request carries.
  if (input.clientCertificate && chain.clientCert)
    return chain.clientCert.authenticate(input.clientCertificate, input.clientIp)
  const authorization = input.authorization
  if (authorization !== null) {
    if (authorization.count > 1) return AMBIGUOUS
    const { scheme, token } = authorization
    const authenticator = chain.byScheme.get(scheme)
    if (authenticator) {
      if (!token || /\s/.test(token)) return MALFORMED
      return run(authenticator, token, input.clientIp)
    }
    // Another scheme (Basic for the app itself, say) is not ours: fall through to cookies.
  }
  const sessions = sessionCookies(input.rawHeaders, chain.sessionCookie)
  if (sessions.length === 1) return run(chain.session, sessions[0]!, input.clientIp)
  if (sessions.length > 1) return oneSession(chain.session, sessions, input.clientIp)
  if (chain.upstream) {
    const cookies = headerValues(input.rawHeaders, 'cookie').join('; ')
    if (cookies) return andThen(run(chain.upstream, cookies, input.clientIp), (r) => (r.kind === 'skip' ? NONE : r))
  }
  return NONE
}
