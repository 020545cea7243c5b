import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { readFileSync } from 'node:fs'
import { Pool, errors as undiciErrors } from 'undici'
import type { UpstreamTlsConfig } from '../config/schema.js'
import { refuse, type Refusal } from '../errors.js'
import { connectionListed, HOP_BY_HOP } from '../util/header-names.js'
import { hasBody } from '../http/request-body.js'

/** An upstream origin and how to reach it over TLS (null: as undici does by default). */
export interface Upstream {
  readonly origin: string
  readonly tls: UpstreamTlsConfig | null
}

export interface ForwardTarget extends Upstream {
  /** normalised path + '?' + raw query */
  readonly pathAndQuery: string
  readonly headers: Record<string, string | string[]>
  /** a body a stage already read; otherwise the request streams through */
  readonly body: Buffer | null
  readonly requestId: string
  /** keygate's own headers for the client's response (RateLimit), over the upstream's */
  readonly responseHeaders?: Readonly<Record<string, string>> | null
}

export interface ForwarderOptions {
  readonly connectTimeoutMs: number
  readonly timeoutMs: number
}

export interface ForwardResult {
  /** the upstream failed before its answer started: 502/504 E1032, for the caller to send (after that the socket is cut) */
  readonly refusal: Refusal | null
  /** from sending the request to the upstream's response headers; null when none came */
  readonly upstreamMs: number | null
}

/** How an upgrade reports an upstream that failed before the tunnel opened: 502/504 E1032. */
export type ForwardFailure = (refusal: Refusal) => void

/** One proxied request, passed to undici as `opaque` rather than captured by a closure per request. */
interface InFlight {
  readonly res: ServerResponse
  readonly requestId: string
  readonly sentAt: number
  headersAt: number
  readonly extraHeaders: Readonly<Record<string, string>> | null
}

function answerWithUpstreamHeaders({
  statusCode,
  headers,
  opaque,
}: {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  opaque: unknown
}): ServerResponse {
  const flight = opaque as InFlight
  flight.headersAt = performance.now()
  flight.res.writeHead(statusCode, responseHeaders(headers, flight.requestId, flight.extraHeaders))
  return flight.res
}

const upstreamMs = (flight: InFlight): number | null =>
  flight.headersAt === 0 ? null : flight.headersAt - flight.sentAt

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

export function upstreamRefusal(err: unknown): Refusal {
  const code = (err as { code?: string }).code ?? ''
  return TIMEOUT_CODES.has(code) ? refuse('E1032', { status: 504, message: 'Upstream timed out' }) : refuse('E1032')
}

function responseHeaders(
  headers: Record<string, string | string[] | undefined>,
  requestId: string,
  extra: Readonly<Record<string, string>> | null = null,
): Record<string, string | string[]> {
  const listed = connectionListed(headers.connection)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const v = headers[name]
    if (v === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue
    out[name] = v
  }
  out['x-request-id'] = requestId
  if (extra !== null) for (const name in extra) out[name] = extra[name]!
  return out
}

/**
 * The TLS side of undici's connect options: PEM files read when the config snapshot is built
 * (so a SIGHUP picks up rotated ones), the SNI name that is also the name verified.
 */
function tlsConnectOptions(tls: UpstreamTlsConfig | null) {
  if (tls === null) return {}
  return {
    ...(tls.ca ? { ca: readFileSync(tls.ca, 'utf8') } : {}),
    ...(tls.cert && tls.key ? { cert: readFileSync(tls.cert, 'utf8'), key: readFileSync(tls.key, 'utf8') } : {}),
    ...(tls.servername ? { servername: tls.servername } : {}),
  }
}

/** One keep-alive undici pool per upstream origin and TLS setting; bodies stream both ways. */
export function createForwarder(upstreams: readonly Upstream[], options: ForwarderOptions) {
  // origin → the compiled config's upstreamTls object (or null) → pool
  const pools = new Map<string, Map<UpstreamTlsConfig | null, Pool>>()
  for (const { origin, tls } of upstreams) {
    const byTls = pools.get(origin) ?? new Map<UpstreamTlsConfig | null, Pool>()
    pools.set(origin, byTls)
    if (byTls.has(tls)) continue
    byTls.set(
      tls,
      new Pool(origin, {
        connect: { timeout: options.connectTimeoutMs, ...(origin.startsWith('https:') ? tlsConnectOptions(tls) : {}) },
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        keepAliveTimeout: 4_000,
        pipelining: 1,
      }),
    )
  }
  const poolFor = ({ origin, tls }: Upstream): Pool => {
    const pool = pools.get(origin)?.get(tls)
    if (!pool) throw new Error(`no pool for ${origin}`) // upstreams come from the compiled config
    return pool
  }

  async function forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): Promise<ForwardResult> {
    // No AbortController per request: a client that goes away destroys `res` (or errors the
    // request body) and undici aborts the upstream request itself.
    const flight: InFlight = {
      res,
      requestId: target.requestId,
      sentAt: performance.now(),
      headersAt: 0,
      extraHeaders: target.responseHeaders ?? null,
    }
    try {
      await poolFor(target).stream(
        {
          path: target.pathAndQuery,
          method: req.method as 'GET',
          headers: target.headers,
          body: target.body ?? (hasBody(req) ? req : null),
          opaque: flight,
        },
        answerWithUpstreamHeaders,
      )
      return { refusal: null, upstreamMs: upstreamMs(flight) }
    } catch (err) {
      if (res.destroyed || err instanceof undiciErrors.RequestAbortedError)
        return { refusal: null, upstreamMs: upstreamMs(flight) }
      if (!res.headersSent) return { refusal: upstreamRefusal(err), upstreamMs: null }
      res.destroy()
      return { refusal: null, upstreamMs: upstreamMs(flight) }
    }
  }

  /** WebSocket (and other) upgrades, proxied after the same decision as any request. */
  async function upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: ForwardTarget,
    fail: ForwardFailure,
  ): Promise<void> {
    try {
      const protocol = String(req.headers.upgrade ?? 'websocket')
      const { headers, socket: upstream } = await poolFor(target).upgrade({
        path: target.pathAndQuery,
        method: req.method,
        headers: target.headers,
        protocol,
      })
      let response = 'HTTP/1.1 101 Switching Protocols\r\n'
      const resHeaders = { ...responseHeaders(headers, target.requestId), connection: 'Upgrade', upgrade: protocol }
      for (const [k, v] of Object.entries(resHeaders)) {
        for (const one of Array.isArray(v) ? v : [v]) response += `${k}: ${one}\r\n`
      }
      socket.write(`${response}\r\n`)
      if (head.length > 0) upstream.write(head)
      // Either side closing ends both, and a client that hangs up ends the tunnel at once: the
      // client socket is half-open (http.Server's allowHalfOpen) and would otherwise wait for an
      // upstream that may never close its side.
      upstream.on('close', () => socket.destroy())
      socket.on('close', () => upstream.destroy())
      socket.on('end', () => upstream.destroy())
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
      upstream.pipe(socket).pipe(upstream)
    } catch (err) {
      fail(upstreamRefusal(err))
    }
  }

  return {
    forward,
    upgrade,
    close: async () => {
      await Promise.all([...pools.values()].flatMap((byTls) => [...byTls.values()].map((p) => p.close())))
    },
  }
}

export type Forwarder = ReturnType<typeof createForwarder>
