import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createHash, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { statusOf, StoreUnavailableError, type Refusal } from './errors.js'
import {
  BODY_TIMED_OUT,
  endSocketWithRefusal,
  HEADERS_TOO_LARGE,
  MALFORMED_REQUEST,
  REQUEST_TIMED_OUT,
  sendRefusal,
} from './http/refusal.js'
import type { Observer } from './observe.js'
import { buildSnapshot, createGatewayParts, type Snapshot } from './gateway/snapshot.js'
import { createLogger, createRequestLog, redactPath, type Logger } from './log.js'
import { describeProblems, formatProblem, loadConfigFile } from './config/load.js'
import type { GatewayConfig } from './config/schema.js'
import type { Store } from './store/types.js'
import type { Decision, DecisionRequest } from './pipeline/index.js'
import { buildUpstreamHeaders } from './pipeline/identity.js'
import { answerAsDemo } from './upstream/demo.js'
import { OWN_ENDPOINT_MAX_BODY_BYTES, readBoundedBody } from './endpoints/body.js'
import { bodyPending, hasBody } from './http/request-body.js'
import { canAnswer, serverTimeoutOptions, trackConnections } from './http/connections.js'
import {
  awaitingBody,
  createBodyIdleTimeout,
  createStreamBodyIdleTimeout,
  type AwaitingBody,
} from './http/body-timeout.js'
import { isWebSocketUpgrade } from './http/upgrade.js'
import { createDrain } from './http/drain.js'
import { compileCidrs } from './util/cidr.js'
import type { EndpointContext } from './endpoints/types.js'
import { JSON_CONTENT_TYPE } from './util/json-type.js'
import { cameOverHttps } from './signin/cookies.js'
import { signInRedirectLocation } from './signin/page-load.js'
import type { TLSSocket } from 'node:tls'
import { createHttpsListener, createTlsFiles } from './http/tls.js'
import { clientCertificateOf } from './auth/mtls.js'

export interface GatewayOptions {
  /** a loaded config (tests), or a file to load (and reload on SIGHUP) */
  readonly config?: GatewayConfig
  readonly configFile?: string
  readonly logger?: Logger
  /** overrides `listen` (tests pass port 0) */
  readonly listen?: { host: string; port: number }
  /** a store shared with something else (tests, cluster workers); otherwise made from the config */
  readonly store?: Store
}

/** What happened after the decision: filled while answering, read by the log line and the request event. */
/** The request body, read once, bounded by limits.maxBodyBytes and by maxBytes when given. */
type ReadBody = (maxBytes?: number) => Promise<Buffer | Refusal>

interface Outcome {
  /** a refusal made after an allowing decision (an endpoint's, or the upstream's E1032) */
  refusal: Refusal | null
  upstreamMs: number | null
  upstreamError: 'unreachable' | 'timeout' | null
}

export interface Gateway {
  readonly server: Server
  readonly store: Store
  /** this gateway's events (its metrics and audit trail listen here) */
  readonly observer: Observer
  readonly url: string
  readonly port: number
  /** the file again, or `config` (a cluster worker's, from its primary); true when the new config was taken */
  reload(config?: GatewayConfig): Promise<boolean>
  close(): Promise<void>
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const initial = options.config ?? loadOrThrow(options.configFile!)
  const logger = options.logger ?? createLogger(initial.logLevel)
  const requestLog = createRequestLog(logger)
  let configDigest = configHash(JSON.stringify(initial))
  const parts = createGatewayParts(initial, logger, () => configDigest, options.store)
  const { store, observer } = parts
  const build = (config: GatewayConfig) => buildSnapshot(config, parts)
  let current = await build(initial)

  /**
   * A replaced snapshot lets go of the store (its revocation subscription) and its caches at once;
   * its upstream pools close when the last request answered with it is done, so that no request
   * that started before the swap finds its pool closed.
   */
  const retire = (snap: Snapshot): Promise<void> => {
    snap.retired = true
    snap.detach()
    return closeWhenIdle(snap)
  }
  const closeWhenIdle = async (snap: Snapshot): Promise<void> => {
    if (snap.retired && snap.inFlight === 0) await snap.forwarder.close()
  }
  const release = (snap: Snapshot): void => {
    if (--snap.inFlight === 0 && snap.retired) void snap.forwarder.close()
  }

  // Connection limits are taken at start: a reload does not re-open the listening socket.
  const serverOptions = { maxHeaderSize: initial.limits.maxHeaderBytes, ...serverTimeoutOptions(initial.limits) }
  const tlsFiles = initial.tls ? createTlsFiles(initial.tls, logger) : null
  const server: Server =
    initial.tls && tlsFiles ? createHttpsListener(serverOptions, initial.tls, tlsFiles) : createServer(serverOptions)
  // Peers in trustedProxies carry many clients' connections: the per-address cap is not theirs.
  const trustedPeer = compileCidrs(initial.trustedProxies)
  const { sockets } = trackConnections(server, initial.limits, (ip) => trustedPeer(ip))
  const drain = createDrain(server, sockets)
  const answerTimedOut = ({ res, requestId }: AwaitingBody, socket: Socket) => {
    if (res.headersSent) return socket.destroy()
    sendRefusal(res, BODY_TIMED_OUT, requestId)
  }
  const watchBody = createBodyIdleTimeout(server, initial.limits.bodyIdleTimeout, answerTimedOut)
  const watchStreamBody = createStreamBodyIdleTimeout(initial.limits.bodyIdleTimeout, (res, requestId) =>
    sendRefusal(res, BODY_TIMED_OUT, requestId),
  )
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID()
    if (bodyPending(req)) (req.httpVersionMajor < 2 ? watchBody : watchStreamBody)(req, res, requestId)
    const snap = current
    snap.inFlight++
    handle(snap, req, res, requestId).catch((err) => answerFailure(res, err, requestId))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const snap = current
    snap.inFlight++
    handleUpgrade(snap, req, socket, head).catch(() => socket.destroy())
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // headersTimeout or requestTimeout: 408 while no answer has started, else just cut
      const awaiting = awaitingBody(socket)
      if (awaiting) return answerTimedOut(awaiting, socket)
      if (!canAnswer(socket)) return socket.destroy()
      return endSocketWithRefusal(socket, REQUEST_TIMED_OUT, randomUUID())
    }
    if (!socket.writable) return socket.destroy()
    const refusal = err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : MALFORMED_REQUEST
    endSocketWithRefusal(socket, refusal, randomUUID())
  })

  /** Fail closed: anything unexpected answers E1005 (E1006 when the store is down). */
  function answerFailure(res: ServerResponse, err: unknown, requestId: string): Refusal | null {
    const storeDown = err instanceof StoreUnavailableError
    if (!storeDown)
      logger.error({ err: { message: (err as Error).message, stack: (err as Error).stack } }, 'request failed')
    if (res.headersSent) {
      res.destroy()
      return null
    }
    const refusal: Refusal = storeDown ? { code: 'E1006' } : { code: 'E1005', message: 'Internal error' }
    sendRefusal(res, refusal, requestId)
    return refusal
  }

  // Every answer carries X-Request-Id in its own writeHead (no setHeader: it would take Node
  // off the fast path of writeHead with a headers object). The request line is written once
  // the answer is (no 'finish' listener per request).
  async function handle(snap: Snapshot, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const started = performance.now()
    const maxBody = snap.compiled.raw.limits.maxBodyBytes
    let bodyRead: Promise<Buffer | Refusal> | null = null
    const readBody: ReadBody = (maxBytes = maxBody) => (bodyRead ??= readBoundedBody(req, Math.min(maxBytes, maxBody)))
    try {
      const decided = snap.decide(decisionRequest(req, readBody))
      const decision = decided instanceof Promise ? await decided : decided
      const outcome: Outcome = { refusal: null, upstreamMs: null, upstreamError: null }
      try {
        await answer(snap, req, res, requestId, decision, readBody, outcome)
      } catch (err) {
        outcome.refusal = answerFailure(res, err, requestId)
      }
      logRequest(req, res, decision, requestId, started, outcome)
    } finally {
      release(snap)
    }
  }

  async function answer(
    snap: Snapshot,
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    decision: Decision,
    readBody: ReadBody,
    outcome: Outcome,
  ): Promise<void> {
    const rateHeaders = decision.rateLimit?.headers ?? null
    if (!decision.allow && decision.signIn) {
      const https = cameOverHttps(req.headers, 'encrypted' in req.socket, decision.client?.peerTrusted ?? false)
      const location = signInRedirectLocation(snap.compiled.raw.signIn!, req.headers, https, req.url ?? '/')
      return void res.writeHead(302, { location, 'cache-control': 'no-store', 'x-request-id': requestId }).end()
    }
    if (!decision.allow) return sendRefusal(res, decision.refusal, requestId, decision.challenge, rateHeaders)
    if (rateHeaders !== null && (decision.route.endpoint || decision.route.upstream === 'demo'))
      for (const name in rateHeaders) res.setHeader(name, rateHeaders[name]!)
    if (decision.route.endpoint) {
      const { handler } = snap.endpoints[decision.route.endpoint]
      const ctx = endpointContext(req, res, requestId, decision, readBody, outcome)
      try {
        await handler(ctx)
      } catch (err) {
        // An endpoint whose store call failed answers E1006 (and is logged and counted as such).
        if (!(err instanceof StoreUnavailableError) || res.headersSent) throw err
        ctx.refuse({ code: 'E1006' })
      }
      return
    }
    const { headers, pathAndQuery } = upstreamRequest(snap, req, decision, requestId)
    if (decision.route.upstream === 'demo')
      return answerAsDemo(req, res, pathAndQuery, headers, snap.compiled.raw.identityHeaders, requestId)
    const forwarded = await snap.forwarder.forward(req, res, {
      origin: decision.route.upstream,
      tls: decision.route.upstreamTls,
      pathAndQuery,
      headers,
      body: decision.body,
      requestId,
      responseHeaders: rateHeaders,
    })
    outcome.upstreamMs = forwarded.upstreamMs
    if (forwarded.refusal) {
      outcome.refusal = forwarded.refusal
      outcome.upstreamError = statusOf(forwarded.refusal) === 504 ? 'timeout' : 'unreachable'
      sendRefusal(res, forwarded.refusal, requestId)
    }
  }

  async function handleUpgrade(snap: Snapshot, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    try {
      await upgradeOn(snap, req, socket, head)
    } finally {
      release(snap) // an open tunnel no longer needs the pool
    }
  }

  async function upgradeOn(snap: Snapshot, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const requestId = randomUUID()
    const decision = await snap.decide(decisionRequest(req, null))
    const refuseUpgrade = (refusal: Refusal, challenge?: string | null) =>
      endSocketWithRefusal(socket, refusal, requestId, challenge)
    if (!decision.allow) return refuseUpgrade(decision.refusal, decision.challenge)
    // Only WebSocket is tunnelled unless the route names the protocol: a tunnel carries bytes
    // keygate never judges (h2c would carry further requests for any path).
    if (!isWebSocketUpgrade(req.headers.upgrade) && !decision.route.upgrades.has(upgradeProtocol(req)))
      return serveWithoutUpgrade(req, socket as Socket)
    if (decision.route.endpoint || decision.route.upstream === 'demo')
      return refuseUpgrade({ code: 'E1004', status: 404, message: 'No upgrade here' })
    const { headers, pathAndQuery } = upstreamRequest(snap, req, decision, requestId)
    logger.info({
      req_id: requestId,
      method: req.method,
      path: redactPath(decision.target.path),
      status: 101,
      decision: 'allow',
      scheme: decision.principal?.scheme ?? 'anonymous',
      principal: decision.principal?.username,
      route: decision.route.name,
    })
    await snap.forwarder.upgrade(
      req,
      socket,
      head,
      {
        origin: decision.route.upstream,
        tls: decision.route.upstreamTls,
        pathAndQuery,
        headers,
        body: null,
        requestId,
      },
      (r) => refuseUpgrade(r),
    )
  }

  /** RFC 9110 §7.8: a server may ignore Upgrade. The request is answered as plain HTTP/1.1, then the connection closes. */
  function serveWithoutUpgrade(req: IncomingMessage, socket: Socket): void {
    // The parser has let go of this connection: a body could not be read (nor be left unread).
    if (hasBody(req))
      return endSocketWithRefusal(
        socket,
        { code: 'E1030', message: 'Upgrade with a body is not accepted' },
        randomUUID(),
      )
    const res = new ServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket)
    res.once('finish', () => socket.destroySoon())
    server.emit('request', req, res)
  }

  function upstreamRequest(
    snap: Snapshot,
    req: IncomingMessage,
    decision: Extract<Decision, { allow: true }>,
    requestId: string,
  ) {
    const headers = buildUpstreamHeaders({
      headers: req.headers,
      identityHeaderNames: snap.compiled.identityHeaderNames,
      identity: decision.identity,
      passCredentials: decision.route.passCredentials,
      ownCookies: snap.ownCookies,
      ownAuthorization: decision.credentialScheme !== null,
      requestId,
      clientIp: decision.client.clientIp,
      peerIp: req.socket.remoteAddress ?? '',
      peerTrusted: decision.client.peerTrusted,
      proto: (req.socket as TLSSocket).encrypted ? 'https' : 'http',
    })
    if (decision.principal?.scheme === 'mtls' && snap.compiled.raw.tls?.forwardClientCert)
      headers['x-forwarded-client-cert'] = clientCertificateOf(req.socket)!.forwardedElement
    const pathAndQuery = decision.target.query
      ? `${decision.target.path}?${decision.target.query}`
      : decision.target.path
    return { headers, pathAndQuery }
  }

  function endpointContext(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    decision: Extract<Decision, { allow: true }>,
    readBody: ReadBody,
    outcome: Outcome,
  ): EndpointContext {
    return {
      req,
      res,
      requestId,
      principal: decision.principal,
      target: decision.target,
      client: decision.client,
      // keygate's own endpoints take a few fields: a body is refused long before parsing it could cost
      readBody: () => readBody(OWN_ENDPOINT_MAX_BODY_BYTES),
      send(status, body, headers) {
        const text = JSON.stringify(body)
        res.writeHead(status, {
          'content-type': JSON_CONTENT_TYPE,
          'cache-control': 'no-store',
          'x-request-id': requestId,
          ...headers,
        })
        res.end(text)
      },
      refuse(refusal, headers) {
        outcome.refusal = refusal
        sendRefusal(res, refusal, requestId, headers?.['www-authenticate'] ?? null, headers)
      },
    }
  }

  function logRequest(
    req: IncomingMessage,
    res: ServerResponse,
    decision: Decision,
    requestId: string,
    started: number,
    outcome: Outcome,
  ): void {
    const p = decision.principal
    const durationMs = performance.now() - started
    const refusal = decision.allow ? outcome.refusal : decision.refusal
    observer.request({
      decision: refusal ? 'deny' : 'allow',
      code: refusal?.code ?? null,
      scheme: p?.scheme ?? 'anonymous',
      route: decision.route?.name ?? 'none',
      status: res.statusCode,
      durationMs,
      upstreamMs: outcome.upstreamMs,
      upstreamError: outcome.upstreamError,
      rateLimit: decision.rateLimit,
    })
    if (!requestLog.enabled()) return
    requestLog.write({
      reqId: requestId,
      method: req.method ?? 'GET',
      // the normalised path where there is one: the odd spellings of a token path are redacted there
      path: redactPath(decision.target?.path ?? (req.url ?? '/').split('?')[0]!),
      status: res.statusCode,
      durationMs,
      decision: refusal ? 'deny' : 'allow',
      code: refusal?.code,
      scheme: p?.scheme ?? 'anonymous',
      principal: p?.username,
      route: decision.route?.name,
      clientIp: decision.client?.clientIp,
      traceId: traceIdOf(req.headers.traceparent),
    })
  }

  const bind = options.listen ?? initial.listen
  server.listen(bind.port, bind.host)
  await once(server, 'listening')
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : bind.port
  const host = bind.host === '0.0.0.0' || bind.host === '::' ? '127.0.0.1' : bind.host
  logger.info({ listen: `${bind.host}:${port}`, store: store.kind, upstream: initial.upstream }, 'keygate listening')

  return {
    server,
    store,
    observer,
    port,
    url: `${tlsFiles ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    async reload(given?: GatewayConfig) {
      if (!given && !options.configFile) return false
      const loaded = given ? { ok: true as const, config: given } : loadConfigFile(options.configFile!)
      if (!loaded.ok) {
        const problems = loaded.problems.map(formatProblem)
        logger.error({ problems }, 'config reload refused; the old config keeps serving')
        observer.audit({ kind: 'config.reloaded', ok: false, hash: null, problems })
        return false
      }
      if (tlsFiles && loaded.config.tls) tlsFiles.reload(loaded.config.tls)
      else if (Boolean(loaded.config.tls) !== Boolean(tlsFiles))
        logger.warn('tls is switched on or off only by a restart; the listener keeps its kind')
      try {
        const next = await build(loaded.config)
        const old = current
        current = next
        void retire(old)
        configDigest = configHash(JSON.stringify(loaded.config))
        logger.info('config reloaded')
        observer.audit({ kind: 'config.reloaded', ok: true, hash: configDigest })
        return true
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'config reload refused; the old config keeps serving')
        return false
      }
    },
    async close() {
      logger.info({ connections: sockets.size, grace_ms: initial.limits.shutdownGrace }, 'draining connections')
      const drained = await drain(initial.limits.shutdownGrace)
      if (drained.cut > 0) logger.warn(drained, 'shutdown grace over; connections still open were cut')
      else logger.info(drained, 'connections drained')
      tlsFiles?.close()
      await retire(current)
      await parts.close()
    },
  }
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/
/** The W3C trace id, for the log line; the header itself goes upstream unchanged. */
const traceIdOf = (header: string | string[] | undefined): string | undefined =>
  typeof header === 'string' ? TRACEPARENT.exec(header.trim())?.[1] : undefined

const configHash = (source: string) => createHash('sha256').update(source).digest('hex').slice(0, 16)

function loadOrThrow(file: string): GatewayConfig {
  const loaded = loadConfigFile(file)
  if (!loaded.ok) throw new Error(describeProblems(loaded.problems))
  return loaded.config
}

/** The proxied request itself, as the pipeline decides on it. */
const decisionRequest = (req: IncomingMessage, readBody: DecisionRequest['readBody']): DecisionRequest => ({
  method: req.method ?? 'GET',
  target: req.url ?? '/',
  headers: req.headers,
  rawHeaders: req.rawHeaders,
  peerIp: req.socket.remoteAddress ?? '',
  clientCertificate: clientCertificateOf(req.socket),
  readBody,
  forApp: false,
})

const upgradeProtocol = (req: IncomingMessage): string =>
  String(req.headers.upgrade ?? '')
    .trim()
    .toLowerCase()
