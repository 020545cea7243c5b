import type { IncomingHttpHeaders } from 'node:http'
import { refuse, type Refusal } from '../errors.js'
import type { CompiledConfig, CompiledRoute } from '../config/compile.js'
import type { Principal } from '../auth/types.js'
import { normalizeTarget, type NormalizedTarget } from './normalize.js'
import { createClientIpResolver, type ClientAddress } from './client-ip.js'
import { authenticate, type AuthenticatorChain } from './authenticate.js'
import { authorize, createRouteTable, isActionApiPath } from './authorize.js'
import { checkActionParams } from './action-params.js'
import { publishAudit } from '../observe.js'

/** What a decision is made on: from the proxied request itself, or from forward-auth headers. */
export interface DecisionRequest {
  readonly method: string
  readonly target: string
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
  readonly peerIp: string
  /** null in forward-auth mode: the decision cannot see the body */
  readonly readBody: (() => Promise<Buffer | Refusal>) | null
}

export type Decision =
  | {
      readonly allow: true
      readonly route: CompiledRoute
      readonly principal: Principal | null
      readonly target: NormalizedTarget
      readonly client: ClientAddress
      /** the body, when a stage had to read it (replayed to the upstream) */
      readonly body: Buffer | null
    }
  | {
      readonly allow: false
      readonly refusal: Refusal
      readonly route: CompiledRoute | null
      readonly principal: Principal | null
      readonly client: ClientAddress | null
      /** the scheme a 401 challenges for */
      readonly challenge: string | null
    }

export type Decide = (request: DecisionRequest) => Promise<Decision>

const CHALLENGE = 'Bearer realm="keygate", ApiKey realm="keygate", AppToken realm="keygate"'
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="keygate", error="invalid_token"'

/**
 * The one decision function behind the proxy and the forward-auth endpoint:
 * normalise → client IP → route → authenticate → authorize (incl. Action API modules).
 */
export function createDecide(config: CompiledConfig, chain: AuthenticatorChain): Decide {
  const resolveClientIp = createClientIpResolver(config.raw.trustedProxies)
  const postBodies = config.raw.forwardAuth.actionPostBodies
  const findRoute = createRouteTable(config.routes)

  return async function decide(request) {
    const deny = (refusal: Refusal, extra: { route?: CompiledRoute; principal?: Principal | null; client?: ClientAddress } = {}): Decision => ({
      allow: false,
      refusal,
      route: extra.route ?? null,
      principal: extra.principal ?? null,
      client: extra.client ?? null,
      challenge: refusal.code === 'E1000' ? CHALLENGE : (refusal.code === 'E1001' || refusal.code === 'E1002' || refusal.code === 'E1003') ? INVALID_TOKEN_CHALLENGE : null,
    })

    const target = normalizeTarget(request.target)
    if ('code' in target) return deny(target)
    const xff = request.headers['x-forwarded-for']
    const client = resolveClientIp(request.peerIp, Array.isArray(xff) ? xff.join(',') : xff)
    const route = findRoute(target.matchPath, request.method)
    const allow = (principal: Principal | null, body: Buffer | null = null): Decision => ({ allow: true, route, principal, target, client, body })

    if (route.policy === 'deny') return deny(refuse('E1004'), { route, client })
    if (route.policy === 'anonymous') return allow(null)

    const outcome = await authenticate({ rawHeaders: request.rawHeaders, clientIp: client.clientIp }, chain)
    if (outcome.kind === 'deny') return deny(outcome.refusal, { route, client })
    if (outcome.kind !== 'ok') {
      return route.policy === 'optional' ? allow(null) : deny(refuse('E1000'), { route, client })
    }
    const principal = outcome.principal
    const onActionApi = route.endpoint === null && isActionApiPath(config.actionApiPaths, target.matchPath)
    const refusal = authorize(route, principal, target.matchPath, onActionApi)
    if (refusal) {
      if (principal.keyName) publishAudit({ kind: 'apikey.refused', keyName: principal.keyName, clientIp: client.clientIp, reason: 'path' })
      return deny(refusal, { route, principal, client })
    }
    if (!onActionApi || !principal.limits) return allow(principal)

    const action = await checkActionParams({
      method: request.method, query: target.query, headers: request.headers, rawHeaders: request.rawHeaders,
      limits: principal.limits, readBody: request.readBody, postBodies,
    })
    if (action.ok) return allow(principal, action.body)
    if (principal.keyName) publishAudit({ kind: 'apikey.refused', keyName: principal.keyName, clientIp: client.clientIp, reason: 'module' })
    return deny(action.refusal, { route, principal, client })
  }
}
