import type { IncomingHttpHeaders } from 'node:http'
import { refuse, type Refusal } from '../errors.js'
import type { CompiledConfig, CompiledRoute } from '../config/compile.js'
import type { Principal, Scheme } from '../principal.js'
import { normalizeTarget, type NormalizedTarget } from './normalize.js'
import { createClientIpResolver, type ClientAddress } from './client-ip.js'
import { authenticate, credentialScheme, readAuthorization } from './authenticate.js'
import type { AuthenticatorChain } from '../auth/index.js'
import { authorize, createRouteTable, isActionApiPath } from './authorize.js'
import { checkActionParams } from './action-params.js'
import type { IdentityOf } from './identity.js'
import type { RateLimitCheck, RateLimitOutcome } from './rate-limit.js'
import type { AuditSink } from '../observe.js'
import type { ClientCertificate } from '../auth/mtls.js'
import { andThen, type MaybePromise } from '../util/maybe-promise.js'
import { isPageLoad } from '../signin/page-load.js'
import type { BodyRead } from '../http/request-body.js'

/** What a decision is made on: from the proxied request itself, or from forward-auth headers. */
export interface DecisionRequest {
  readonly method: string
  readonly target: string
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
  readonly peerIp: string
  /** the client certificate of the request's own TLS connection (null in forward-auth mode: that is the proxy's) */
  readonly clientCertificate: ClientCertificate | null
  /** null in forward-auth mode: the decision cannot see the body */
  readonly readBody: (() => Promise<BodyRead>) | null
  /**
   * A proxy asks about a request for its app (forward-auth): keygate's own endpoints are not what
   * is decided on, so their paths get the app's routes like any other path.
   */
  readonly forApp: boolean
}

export type Decision =
  | {
      readonly allow: true
      readonly route: CompiledRoute
      readonly principal: Principal | null
      readonly target: NormalizedTarget
      /** the path and query the route's upstream gets (the normalised target) */
      readonly upstreamPath: string
      readonly client: ClientAddress
      /** the caller's identity as headers: injected upstream, or set on a forward-auth answer */
      readonly identity: Readonly<Record<string, string>>
      /** the gateway's own scheme the Authorization header carries (kept from the upstream), whatever the route's policy; null on keygate's own anonymous endpoints, which proxy nothing */
      readonly credentialScheme: Scheme | null
      /** the body, when a stage had to read it (replayed to the upstream) */
      readonly body: Buffer | null
      /** the rate limit that counted this request; its headers go on the response */
      readonly rateLimit: RateLimitOutcome | null
    }
  | {
      readonly allow: false
      readonly refusal: Refusal
      /** the normalised target, when the path could be normalised (for the log line) */
      readonly target: NormalizedTarget | null
      readonly route: CompiledRoute | null
      readonly principal: Principal | null
      readonly client: ClientAddress | null
      /** the scheme a 401 challenges for */
      readonly challenge: string | null
      /** set when a rate limit refused the request (E1031, or E1006 with the store down) */
      readonly rateLimit: RateLimitOutcome | null
      /** a person's page load without (live) credentials: answered with a 302 to the sign-in page */
      readonly signIn: boolean
    }

/** Synchronous when no stage had to wait (anonymous routes, ApiKeys, cached tokens). */
export type Decide = (request: DecisionRequest) => MaybePromise<Decision>

const SIGN_IN_CODES: ReadonlySet<string> = new Set(['E1000', 'E1001', 'E1002', 'E1003'])
const CHALLENGE = 'Bearer realm="keygate", ApiKey realm="keygate", AppToken realm="keygate"'
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="keygate", error="invalid_token"'

const allow = (
  route: CompiledRoute,
  principal: Principal | null,
  target: NormalizedTarget,
  client: ClientAddress,
  identity: Readonly<Record<string, string>>,
  credentialScheme: Scheme | null,
  body: Buffer | null,
  rateLimit: RateLimitOutcome | null,
): Decision => ({
  allow: true,
  route,
  principal,
  target,
  upstreamPath: target.query ? `${target.path}?${target.query}` : target.path,
  client,
  identity,
  credentialScheme,
  body,
  rateLimit,
})

const deny = (
  refusal: Refusal,
  target: NormalizedTarget | null = null,
  route: CompiledRoute | null = null,
  principal: Principal | null = null,
  client: ClientAddress | null = null,
  rateLimit: RateLimitOutcome | null = null,
  signIn = false,
): Decision => ({
  allow: false,
  refusal,
  target,
  route,
  principal,
  client,
  rateLimit,
  signIn,
  challenge:
    refusal.code === 'E1000'
      ? CHALLENGE
      : refusal.code === 'E1001' || refusal.code === 'E1002' || refusal.code === 'E1003'
        ? INVALID_TOKEN_CHALLENGE
        : null,
})

/**
 * The one decision function behind the proxy and the forward-auth endpoint:
 * normalise → client IP → route → authenticate → authorize (incl. Action API modules) → rate limit.
 */
export interface DecideDeps {
  /** keygate's own endpoints first, then the configured routes and the fallback */
  readonly routes: readonly CompiledRoute[]
  readonly chain: AuthenticatorChain
  /** the caller's identity headers on a route (the signed assertion among them when configured) */
  readonly identityOf: IdentityOf
  readonly audit: AuditSink
  readonly rateLimit: RateLimitCheck | null
}

export function createDecide(config: CompiledConfig, deps: DecideDeps): Decide {
  const { chain, identityOf, audit, rateLimit } = deps
  const resolveClientIp = createClientIpResolver(config.trustedProxies)
  const postBodies = config.forwardAuth.actionPostBodies
  const findRoute = createRouteTable(deps.routes)
  const findAppRoute = createRouteTable(deps.routes.filter((r) => r.endpoint === null))
  const redirects = config.signIn?.redirect === 'auto'
  /** No credentials, or only a session cookie that is no longer good: a person's page load goes to sign in. */
  const unauthenticated = (
    request: DecisionRequest,
    target: NormalizedTarget,
    route: CompiledRoute,
    client: ClientAddress,
    refusal: Refusal,
  ): Decision =>
    deny(
      refusal,
      target,
      route,
      null,
      client,
      null,
      redirects && route.signIn && SIGN_IN_CODES.has(refusal.code) && isPageLoad(request.method, request.headers),
    )

  return function decide(request) {
    const target = normalizeTarget(request.target)
    if (!target.ok) return deny(target.refusal)
    const xff = request.headers['x-forwarded-for']
    const client = resolveClientIp(request.peerIp, Array.isArray(xff) ? xff.join(',') : xff)
    const route = (request.forApp ? findAppRoute : findRoute)(target.matchPath, request.method)

    if (route.policy === 'deny') return deny(refuse('E1004'), target, route, null, client)
    if (route.policy === 'anonymous') {
      // which of keygate's schemes the header carries matters only to an upstream (it is kept from
      // it): keygate's own endpoints (forward-auth's question among them) need not read it
      const scheme = route.endpoint === null ? credentialScheme(readAuthorization(request.rawHeaders), chain) : null
      return allowed(route, null, target, client, scheme)
    }
    const authorization = readAuthorization(request.rawHeaders)
    const scheme = credentialScheme(authorization, chain)
    const credentials = {
      authorization,
      rawHeaders: request.rawHeaders,
      clientIp: client.clientIp,
      clientCertificate: request.clientCertificate,
    }
    return andThen(authenticate(credentials, chain), (outcome) => {
      if (outcome.kind === 'deny') return unauthenticated(request, target, route, client, outcome.refusal)
      if (outcome.kind !== 'ok')
        return route.policy === 'optional'
          ? allowed(route, null, target, client, scheme)
          : unauthenticated(request, target, route, client, refuse('E1000'))
      return judge(request, route, outcome.principal, target, client, scheme)
    })
  }

  /** An allowed request, counted by the rate limit that applies to it (if any). */
  function allowed(
    route: CompiledRoute,
    principal: Principal | null,
    target: NormalizedTarget,
    client: ClientAddress,
    scheme: Scheme | null,
    body: Buffer | null = null,
  ): MaybePromise<Decision> {
    const identity = identityOf(principal, route)
    const counted = rateLimit === null ? null : rateLimit(route, principal, client.clientIp)
    if (counted === null) return allow(route, principal, target, client, identity, scheme, body, null)
    return andThen(counted, (limit) =>
      limit.refusal
        ? deny(limit.refusal, target, route, principal, client, limit)
        : allow(route, principal, target, client, identity, scheme, body, limit),
    )
  }

  /** What an authenticated caller may do here: the route, then its own limits (paths, Action API modules). */
  function judge(
    request: DecisionRequest,
    route: CompiledRoute,
    principal: Principal,
    target: NormalizedTarget,
    client: ClientAddress,
    scheme: Scheme | null,
  ): MaybePromise<Decision> {
    const onActionApi = route.endpoint === null && isActionApiPath(config.actionApi.paths, target.matchPath)
    const refusal = authorize(route, principal, target.matchPath, onActionApi)
    if (refusal) {
      if (principal.keyName)
        audit({ kind: 'apikey.refused', keyName: principal.keyName, clientIp: client.clientIp, reason: 'path' })
      return deny(refusal, target, route, principal, client)
    }
    if (!onActionApi || !principal.limits) return allowed(route, principal, target, client, scheme)

    return checkActionParams({
      method: request.method,
      query: target.query,
      headers: request.headers,
      rawHeaders: request.rawHeaders,
      limits: principal.limits,
      readBody: request.readBody,
      postBodies,
    }).then((action) => {
      if (action.ok) return allowed(route, principal, target, client, scheme, action.body)
      if (principal.keyName)
        audit({
          kind: 'apikey.refused',
          keyName: principal.keyName,
          clientIp: client.clientIp,
          reason: 'module',
        })
      return deny(action.refusal, target, route, principal, client)
    })
  }
}
