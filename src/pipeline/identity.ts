import type { IncomingHttpHeaders } from 'node:http'
import { canonicalHeaderName, connectionListed, HOP_BY_HOP, SET_BY_GATEWAY } from '../util/header-names.js'
import type { Principal } from '../principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { CompiledRoute } from '../config/compile.js'
import type { AssertionFor } from '../tokens/assertion.js'
import { renderMapping, type HeaderMapping } from '../identity/mapping.js'
import { encodeGroupsHeader, encodeHeaderValue } from '../util/identity-value.js'

export interface IdentityInput {
  readonly headers: IncomingHttpHeaders
  /** canonical identity header names (canonicalHeaderName: lower-case, every non-alphanumeric as '-') */
  readonly identityHeaderNames: ReadonlySet<string>
  /** the caller's identity headers (createIdentityHeaders) */
  readonly identity: Readonly<Record<string, string>>
  /** keep the gateway's own Authorization / session cookie for the upstream */
  readonly passCredentials: boolean
  /** keygate's own cookies (ownCookiesPattern): never passed on */
  readonly ownCookies: RegExp
  /** the Authorization header carries one of the gateway's own schemes */
  readonly ownAuthorization: boolean
  readonly requestId: string
  readonly clientIp: string
  readonly peerIp: string
  readonly peerTrusted: boolean
  /** how the request reached keygate: 'https' on its TLS listener */
  readonly proto: 'http' | 'https'
}

// Headers with which some frameworks let a request rename its own path or method after the
// gateway has judged it (Symfony/IIS X-Original-URL and X-Rewrite-URL, method overrides, proxy
// path prefixes): never passed on, in any spelling, so the upstream acts on what was decided.
const REROUTING = new Set([
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-original-method',
  'x-forwarded-uri',
  'x-forwarded-method',
  'x-forwarded-path',
  'x-forwarded-prefix',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
])

const COLON = 58

/**
 * Matches each `name=value` pair of a Cookie header whose name is one of `names` (the session
 * cookie under each of its names, the sign-in form's and flow's), with the ';' before it: one
 * regular expression per snapshot instead of splitting every Cookie header into pairs.
 */
export function ownCookiesPattern(names: readonly string[]): RegExp {
  const alternatives = names.map((n) => n.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|')
  return new RegExp(`(?:^|;)\\s*(?:${alternatives})\\s*(?:=[^;]*)?(?=;|$)`, 'g')
}

const LEADING_SEPARATORS = /^[\s;]+/

function withoutOwnCookies(cookie: string, own: RegExp): string {
  // what is left of a leading pair's removal is its following ';'
  return cookie.replace(own, '').replace(LEADING_SEPARATORS, '').trim()
}

/** A header name never passed on, whatever the request (the Connection header's list aside). */
function neverPassed(name: string, identityHeaderNames: ReadonlySet<string>): boolean {
  if (HOP_BY_HOP.has(name)) return true
  // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are the request line, not headers
  if (name.charCodeAt(0) === COLON) return true
  // PHP reads '.' as '_': a dotted name cannot be told from the header it imitates, and none is legitimate.
  if (name.includes('.')) return true
  const canonical = canonicalHeaderName(name)
  return SET_BY_GATEWAY.has(canonical) || identityHeaderNames.has(canonical) || REROUTING.has(canonical)
}

// The answer for a name is the same on every request of a config snapshot (identity header names
// come with it): kept per snapshot for the names seen, up to a bound (names are the client's choice).
const NAMES_KEPT = 1_000
const droppedBySnapshot = new WeakMap<ReadonlySet<string>, (name: string) => boolean>()

function droppedNames(identityHeaderNames: ReadonlySet<string>): (name: string) => boolean {
  let dropped = droppedBySnapshot.get(identityHeaderNames)
  if (dropped) return dropped
  const known = new Map<string, boolean>()
  dropped = (name) => {
    let answer = known.get(name)
    if (answer === undefined) {
      answer = neverPassed(name, identityHeaderNames)
      if (known.size < NAMES_KEPT) known.set(name, answer)
    }
    return answer
  }
  droppedBySnapshot.set(identityHeaderNames, dropped)
  return dropped
}

/**
 * The request headers the upstream gets: every spelling of an identity header removed first
 * (X-Auth_User and X-Auth.User included: PHP reads both as X-Auth-User), dotted names dropped, hop-by-hop headers and the gateway's own
 * credentials dropped, forwarding headers rebuilt, then the caller's identity injected.
 */
export function buildUpstreamHeaders(input: IdentityInput): Record<string, string | string[]> {
  const src = input.headers
  const listed = connectionListed(src.connection)
  const dropped = droppedNames(input.identityHeaderNames)
  const out: Record<string, string | string[]> = {}
  for (const name in src) {
    const value = src[name]
    if (value === undefined || listed.has(name)) continue
    if (dropped(name)) continue
    if (name === 'authorization' && input.ownAuthorization && !input.passCredentials) continue
    if (name === 'cookie' && !input.passCredentials) {
      const kept = withoutOwnCookies(String(value), input.ownCookies)
      if (kept) out.cookie = kept
      continue
    }
    out[name] = value
  }

  const host = src.host ?? (src[':authority'] as string | undefined) ?? ''
  if (input.peerTrusted) {
    out['x-forwarded-for'] = src['x-forwarded-for']
      ? `${String(src['x-forwarded-for'])}, ${input.peerIp}`
      : input.peerIp
    out['x-forwarded-proto'] = firstValue(src['x-forwarded-proto']) || input.proto
    out['x-forwarded-host'] = firstValue(src['x-forwarded-host']) || host
  } else {
    out['x-forwarded-for'] = input.clientIp
    out['x-forwarded-proto'] = input.proto
    if (host) out['x-forwarded-host'] = host
  }
  out['x-real-ip'] = input.clientIp
  out['x-request-id'] = input.requestId

  return Object.assign(out, input.identity)
}

/** The caller's identity as headers for one route (assertion audience and mappings are per route). */
export type IdentityOf = (principal: Principal | null, route: RouteIdentity) => Readonly<Record<string, string>>

/** What of a route decides the identity headers sent on it. */
export type RouteIdentity = Pick<CompiledRoute, 'assertionAudience' | 'headerMapping'>

/** identityAssertion's header and the signer of its assertions (src/tokens/assertion.ts). */
export interface AssertionHeader {
  readonly header: string
  readonly sign: AssertionFor
}

/**
 * The caller's identity as headers: injected upstream, and set on forward-auth answers
 * (auth_request_set, copy_headers). Made once per config snapshot; a principal's plain headers are
 * built once, since ApiKey principals are fixed and cached tokens give the same principal back.
 * The assertion beside them is reused by its signer until half its lifetime is left.
 */
export function createIdentityHeaders(
  h: GatewayConfig['identityHeaders'],
  assertion: AssertionHeader | null = null,
): IdentityOf {
  const anonymous = Object.freeze({ [h.scheme]: 'anonymous' })
  // per principal, per mapping (routes without their own share one)
  const built = new WeakMap<Principal, Map<HeaderMapping, Readonly<Record<string, string>>>>()
  return (principal, route) => {
    if (!principal) return anonymous
    let byMapping = built.get(principal)
    if (!byMapping) {
      byMapping = new Map()
      built.set(principal, byMapping)
    }
    let headers = byMapping.get(route.headerMapping)
    if (!headers) {
      const out = buildIdentityHeaders(principal, h)
      renderMapping(route.headerMapping, principal, out)
      headers = Object.freeze(out)
      byMapping.set(route.headerMapping, headers)
    }
    if (assertion === null || route.assertionAudience === null) return headers
    return { ...headers, [assertion.header]: assertion.sign(principal, route.assertionAudience) }
  }
}

function buildIdentityHeaders(principal: Principal, h: GatewayConfig['identityHeaders']): Record<string, string> {
  const out: Record<string, string> = {
    [h.user]: encodeHeaderValue(principal.username),
    [h.userId]: String(principal.uid),
    [h.groups]: encodeGroupsHeader(principal.groups),
    [h.scheme]: principal.scheme,
  }
  if (principal.email) out[h.email] = encodeHeaderValue(principal.email)
  return out
}

const firstValue = (v: string | string[] | undefined): string =>
  (Array.isArray(v) ? (v[0] ?? '') : (v ?? '')).split(',')[0]!.trim()
