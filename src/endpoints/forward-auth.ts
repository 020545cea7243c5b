import type { IncomingHttpHeaders } from 'node:http'
import { statusOf } from '../errors.js'
import type { Decide } from '../pipeline/index.js'
import { identityHeaders } from '../pipeline/identity.js'
import { matchesPrefix } from '../util/path-prefix.js'
import type { GatewayConfig } from '../config/schema.js'
import type { EndpointHandler } from './types.js'

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/**
 * The original request as the calling proxy describes it: nginx (X-Original-URI/-Method),
 * Traefik and Caddy (X-Forwarded-Uri/-Method), or Envoy ext_authz (the original path after
 * the endpoint's own path, same method).
 */
export function originalRequest(method: string, path: string, query: string, headers: IncomingHttpHeaders, endpointPath: string): { method: string; target: string } {
  const uri = first(headers['x-original-uri']) ?? first(headers['x-forwarded-uri'])
  const originalMethod = first(headers['x-original-method']) ?? first(headers['x-forwarded-method'])
  if (uri !== undefined) return { method: (originalMethod ?? 'GET').toUpperCase(), target: uri }
  const suffix = matchesPrefix(path, endpointPath) ? path.slice(endpointPath.replace(/\/$/, '').length) : ''
  return { method: (originalMethod ?? method).toUpperCase(), target: `${suffix || '/'}${query ? `?${query}` : ''}` }
}

/**
 * 200 with the identity on the response headers, 401 with a challenge, 403, or 503.
 * 400 becomes 403 here: nginx turns any status but 401/403 into a 500 for the client.
 */
export function createForwardAuth(decide: () => Decide, config: () => GatewayConfig): EndpointHandler {
  return async (ctx) => {
    const cfg = config()
    const { method, target } = originalRequest(ctx.req.method ?? 'GET', ctx.target.path, ctx.target.query, ctx.req.headers, cfg.forwardAuth.path)
    const headers = { ...ctx.req.headers }
    // X-Real-IP stands in for X-Forwarded-For when a trusted proxy sends only that.
    if (headers['x-forwarded-for'] === undefined && typeof headers['x-real-ip'] === 'string') headers['x-forwarded-for'] = headers['x-real-ip']
    const decision = await decide()({ method, target, headers, rawHeaders: ctx.req.rawHeaders, peerIp: ctx.req.socket.remoteAddress ?? '', readBody: null })
    if (decision.allow) {
      ctx.send(200, { status: true }, identityHeaders(decision.principal, cfg.identityHeaders))
      return
    }
    const status = statusOf(decision.refusal)
    ctx.refuse({ ...decision.refusal, status: status === 400 ? 403 : status }, decision.challenge ? { 'www-authenticate': decision.challenge } : undefined)
  }
}
