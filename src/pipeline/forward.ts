import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
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

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

export function upstreamRefusal(err: unknown): Refusal {
  const code = (err as { code?: string }).code ?? ''
  return TIMEOUT_CODES.has(code) ? refuse('E1032', { status: 504, message: 'Upstream timed out' }) : refuse('E1032')
}

/** The client's response as the exchange writes it: node:http's, or HTTP/2's compatibility one. */
type ClientResponse = Pick<ServerResponse, 'writeHead' | 'write' | 'end' | 'destroy' | 'on' | 'once' | 'headersSent'>

/**
 * One proxied request as undici's dispatch handler: the upstream's status and raw header bytes
 * go straight into the client's response as one flat header list, its body chunks straight into
 * `res.write`. Pool.stream() did the same through an AsyncResource, a header object, a Writable
 * check and end-of-stream listeners per request. The handler uses undici's raw-header callbacks
 * (onHeaders with Buffer[]): the newer onResponseStart gets its headers parsed into an object first.
 */
class Exchange {
  private abort: ((err?: Error) => void) | null = null
  private resume: (() => void) | null = null
  private headersAt = 0
  private settled = false
  private clientGone = false

  constructor(
    private readonly res: ClientResponse,
    private readonly requestId: string,
    private readonly extraHeaders: Readonly<Record<string, string>> | null,
    private readonly sentAt: number,
    private readonly settle: (result: ForwardResult) => void,
  ) {
    // A client that goes away ends the upstream request too (before the answer started as well).
    // 'close' comes once per response: `on` spares the wrapper `once` makes.
    res.on('close', this.onClientClose)
  }

  private readonly onClientClose = (): void => {
    if (this.settled) return
    this.clientGone = true
    this.abort?.(new undiciErrors.RequestAbortedError())
  }

  private readonly onDrain = (): void => this.resume?.()

  private finish(refusal: Refusal | null): void {
    if (this.settled) return
    this.settled = true
    this.settle({ refusal, upstreamMs: this.headersAt === 0 ? null : this.headersAt - this.sentAt })
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort
    if (this.clientGone) abort(new undiciErrors.RequestAbortedError())
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true // 1xx: informational, not the answer (as Pool.stream() did)
    this.headersAt = performance.now()
    this.resume = resume
    this.res.writeHead(statusCode, responseHeaderList(rawHeaders, this.requestId, this.extraHeaders))
    return true
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true
    this.res.once('drain', this.onDrain)
    return false
  }

  onComplete(): void {
    this.res.end()
    this.finish(null)
  }

  onError(err: Error): void {
    if (this.clientGone || err instanceof undiciErrors.RequestAbortedError) return this.finish(null)
    // Before the answer started the caller sends a 502/504; after, the client's answer is cut short.
    if (!this.res.headersSent) return this.finish(upstreamRefusal(err))
    this.res.destroy()
    this.finish(null)
  }
}

/**
 * The upstream's response headers for the client, as a flat [name, value, …] list (what
 * writeHead takes without building an object): hop-by-hop ones and those its Connection header
 * names left out; keygate's X-Request-Id and `extra` (RateLimit) over the upstream's own.
 */
export function responseHeaderList(
  raw: readonly Buffer[],
  requestId: string,
  extra: Readonly<Record<string, string>> | null = null,
): string[] {
  const out: string[] = []
  let connection: string | null = null
  for (let i = 0; i < raw.length; i += 2) {
    // latin1 both ways: the upstream's bytes reach the client unchanged
    const name = raw[i]!.toString('latin1').toLowerCase()
    const value = raw[i + 1]!.toString('latin1')
    if (name === 'connection') connection = connection === null ? value : `${connection},${value}`
    if (HOP_BY_HOP.has(name) || name === 'x-request-id' || (extra !== null && name in extra)) continue
    out.push(name, value)
  }
  const listed = connectionListed(connection ?? undefined)
  const kept = listed.size === 0 ? out : out.filter((_, i) => !listed.has(out[i - (i % 2)]!))
  kept.push('x-request-id', requestId)
  if (extra !== null) for (const name in extra) kept.push(name, extra[name]!)
  return kept
}

/** The same for an upgrade's 101, from undici's parsed headers. */
function responseHeaders(
  headers: Record<string, string | string[] | undefined>,
  requestId: string,
): Record<string, string | string[]> {
  const listed = connectionListed(headers.connection)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const v = headers[name]
    if (v === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue
    out[name] = v
  }
  out['x-request-id'] = requestId
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

  function forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): Promise<ForwardResult> {
    if (req.httpVersionMajor < 2) return dispatch(req, res, target)
    // HTTP/2 rapid reset: a RST_STREAM read with the HEADERS is handled after them, so wait one
    // turn of the event loop; a stream reset by then costs the upstream nothing (one cancelled in
    // flight costs it a connection, and thousands of connects fill its backlog).
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      (res as unknown as Http2ServerResponse).stream.destroyed
        ? { refusal: null, upstreamMs: null }
        : dispatch(req, res, target),
    )
  }

  function dispatch(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): Promise<ForwardResult> {
    return new Promise((settle) => {
      const exchange = new Exchange(res, target.requestId, target.responseHeaders ?? null, performance.now(), settle)
      poolFor(target).dispatch(
        {
          path: target.pathAndQuery,
          method: req.method as 'GET',
          headers: target.headers,
          body: target.body ?? (hasBody(req) ? req : null),
        },
        exchange,
      )
    })
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
