import type { IncomingHttpHeaders } from 'node:http'
import { refuse, statusOf } from '../errors.js'
import type { Decide, Decision } from '../pipeline/index.js'
import { matchesPrefix } from '../util/path-prefix.js'
import type { GatewayConfig } from '../config/schema.js'
import type { EndpointContext, EndpointHandler } from './types.js'
import { originalUrlOf, signInLocation } from '../signin/page-load.js'

/** On a forward-auth 401 for a person's page load: the sign-in page's URL (nginx redirects there). */
export const SIGN_IN_HEADER = 'x-keygate-sign-in'

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

interface OriginalRequest {
  readonly method: string
  readonly target: string
  readonly via: 'nginx' | 'forwarded' | 'path'
}

/**
 * The original request as the calling proxy describes it: nginx (X-Original-URI/-Method),
 * Traefik and Caddy (X-Forwarded-Uri/-Method), or Envoy ext_authz (the original path after
 * the endpoint's own path, same method). URI and method always come from the same pair, and two
 * pairs that disagree are refused: Traefik and Caddy pass a client's own X-Original-* on, nginx a
 * client's X-Forwarded-*, so a mix would let the client choose what is decided.
 */
export function originalRequest(
  method: string,
  path: string,
  query: string,
  headers: IncomingHttpHeaders,
  endpointPath: string,
): OriginalRequest | null {
  const nginx = { uri: first(headers['x-original-uri']), method: first(headers['x-original-method']) }
  const traefik = { uri: first(headers['x-forwarded-uri']), method: first(headers['x-forwarded-method']) }
  if (
    nginx.uri !== undefined &&
    traefik.uri !== undefined &&
    (nginx.uri !== traefik.uri || (nginx.method ?? 'GET') !== (traefik.method ?? 'GET'))
  )
    return null
  if (nginx.uri !== undefined) return { method: (nginx.method ?? 'GET').toUpperCase(), target: nginx.uri, via: 'nginx' }
  if (traefik.uri !== undefined)
    return { method: (traefik.method ?? 'GET').toUpperCase(), target: traefik.uri, via: 'forwarded' }
  if (nginx.method !== undefined || traefik.method !== undefined) return null // a method without its URI
  const suffix = matchesPrefix(path, endpointPath) ? path.slice(endpointPath.replace(/\/$/, '').length) : ''
  return { method: method.toUpperCase(), target: `${suffix || '/'}${query ? `?${query}` : ''}`, via: 'path' }
}

/**
 * 200 (no body) with the identity on the response headers, 401 with a challenge, 403, or 503.
 * 400 becomes 403 here: nginx turns any status but 401/403 into a 500 for the client.
 */
export function createForwardAuth(decide: Decide, cfg: Pick<GatewayConfig, 'forwardAuth' | 'signIn'>): EndpointHandler {
  // Synchronous when the decision is (ApiKeys, cached tokens): no promise or microtask per question.
  return (ctx) => {
    const original = originalRequest(
      ctx.req.method ?? 'GET',
      ctx.target.path,
      ctx.target.query,
      ctx.req.headers,
      cfg.forwardAuth.path,
    )
    if (!original)
      return ctx.refuse(refuse('E1030', { status: 403, message: 'The proxy headers describe two different requests' }))
    const { method, target, via } = original
    // X-Real-IP stands in for X-Forwarded-For when a trusted proxy sends only that (a copy then:
    // the request's own headers stay as they came).
    const sent = ctx.req.headers
    const realIp = sent['x-forwarded-for'] === undefined ? sent['x-real-ip'] : undefined
    const headers = typeof realIp === 'string' ? { ...sent, 'x-forwarded-for': realIp } : sent
    const decided = decide({
      method,
      target,
      headers,
      rawHeaders: ctx.req.rawHeaders,
      peerIp: ctx.req.socket.remoteAddress ?? '',
      clientCertificate: null,
      readBody: null,
      forApp: true,
    })
    if (decided instanceof Promise) return decided.then((decision) => answer(ctx, decision, via, target))
    answer(ctx, decided, via, target)
  }

  function answer(ctx: EndpointContext, decision: Decision, via: OriginalRequest['via'], target: string): void {
    // RateLimit-Policy / RateLimit go on the answer too: the proxy passes them on
    // (nginx: auth_request_set $ratelimit $upstream_http_ratelimit).
    const rateHeaders = decision.rateLimit?.headers
    if (decision.allow) {
      // No body: nginx reads none of an auth_request answer, and keeps its connection to keygate
      // only when there is none to skip (a body, chunked or not, cost a new connection per request).
      ctx.res.writeHead(200, {
        ...decision.identity,
        ...rateHeaders,
        'cache-control': 'no-store',
        'x-request-id': ctx.requestId,
        'content-length': '0',
      })
      ctx.res.end()
      return
    }
    // Traefik and Caddy pass a 302 on to the browser; nginx cannot (its example's error_page turns the 401 into one).
    if (decision.signIn && via === 'forwarded' && cfg.signIn) {
      const h = ctx.req.headers
      const proto = first(h['x-forwarded-proto']) === 'https' ? 'https' : 'http'
      const location = signInLocation(
        cfg.signIn.path,
        cfg.signIn.publicUrl,
        originalUrlOf(proto, first(h['x-forwarded-host']), target),
      )
      ctx.res.writeHead(302, {
        location,
        'cache-control': 'no-store',
        'x-request-id': ctx.requestId,
        'content-length': '0',
      })
      ctx.res.end()
      return
    }
    const status = statusOf(decision.refusal)
    const headers: Record<string, string> = { ...rateHeaders }
    // nginx: the 401 says where the sign-in page is; the example's error_page adds the original URL.
    if (decision.signIn && cfg.signIn) headers[SIGN_IN_HEADER] = `${cfg.signIn.publicUrl ?? ''}${cfg.signIn.path}`
    ctx.refuse(
      { ...decision.refusal, status: status === 400 ? 403 : status },
      { challenge: decision.challenge, headers },
    )
  }
}
