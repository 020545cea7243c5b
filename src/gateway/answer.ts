import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { refusalFor, refuse, statusOf, type Refusal } from '../errors.js'
import { createRequestLog, redactPath, type Logger } from '../log.js'
import type { Observer } from '../observe.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Decision, DecisionRequest } from '../pipeline/index.js'
import { clientCertificateOf } from '../auth/mtls.js'
import { OWN_ENDPOINT_MAX_BODY_BYTES } from '../endpoints/body.js'
import type { EndpointContext } from '../endpoints/types.js'
import { cameOverHttps } from '../signin/cookies.js'
import { signInRedirectLocation } from '../signin/page-load.js'
import { bodyPending, hasBody, readBoundedBody, type BodyRead } from '../http/request-body.js'
import { canAnswer } from '../http/connections.js'
import {
  awaitingBody,
  createBodyIdleTimeout,
  createStreamBodyIdleTimeout,
  type AwaitingBody,
} from '../http/body-timeout.js'
import { isWebSocketUpgrade } from '../http/upgrade.js'
import { createRequestIds } from '../http/request-id.js'
import {
  BODY_TIMED_OUT,
  endSocketWithRefusal,
  HEADERS_TOO_LARGE,
  MALFORMED_REQUEST,
  REQUEST_TIMED_OUT,
  sendRefusal,
  type RefusalExtras,
} from '../http/refusal.js'
import { JSON_CONTENT_TYPE } from '../util/json-type.js'
import { andThen, type MaybePromise } from '../util/maybe-promise.js'
import { releaseSnapshot, type Snapshot } from './snapshot.js'
import { proxy, tunnel, type Allowed } from './proxy.js'

// How a gateway answers: each request (or upgrade) is decided once with the snapshot it arrived
// under, then answered with a refusal, a sign-in redirect, one of keygate's endpoints, or the
// proxy. Every answer, a refused upgrade and a request the parser refused among them, is
// logged and counted once.

const INTERNAL_ERROR = refuse('E1005', { message: 'Internal error' })

/** The request body, read once, bounded by limits.maxBodyBytes and by maxBytes when given. */
type ReadBody = (maxBytes?: number) => Promise<BodyRead>

/** What happened after the decision: filled while answering, read by the log line and the request event. */
interface Outcome {
  /** a refusal made after an allowing decision (an endpoint's, or the upstream's E1032) */
  refusal: Refusal | null
  upstreamMs: number | null
  upstreamError: 'unreachable' | 'timeout' | null
}

/** One request being answered: made once when it arrives, its outcome filled in as it is answered. */
interface Answering extends Outcome {
  readonly snap: Snapshot
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly requestId: string
  readonly started: number
  readonly readBody: ReadBody
}

export interface Answerer {
  readonly request: (snap: Snapshot, req: IncomingMessage, res: ServerResponse) => void
  readonly upgrade: (snap: Snapshot, req: IncomingMessage, socket: Duplex, head: Buffer) => void
  /** what the HTTP parser refused, or a request that timed out before it was whole */
  readonly clientError: (err: NodeJS.ErrnoException, socket: Socket) => void
}

export function createAnswerer(
  server: Server,
  limits: GatewayConfig['limits'],
  parts: { readonly logger: Logger; readonly observer: Observer },
): Answerer {
  const { logger, observer } = parts
  const requestLog = createRequestLog(logger)
  const nextRequestId = createRequestIds()
  const answerTimedOut = ({ res, requestId }: AwaitingBody, socket: Socket) => {
    if (res.headersSent) return socket.destroy()
    sendRefusal(res, BODY_TIMED_OUT, requestId)
  }
  const watchBody = createBodyIdleTimeout(server, limits.bodyIdleTimeout, answerTimedOut)
  const watchStreamBody = createStreamBodyIdleTimeout(limits.bodyIdleTimeout, (res, requestId) =>
    sendRefusal(res, BODY_TIMED_OUT, requestId),
  )

  /** Fail closed: anything unexpected answers E1005 (E1006 when the store is down). */
  function answerFailure(res: ServerResponse, err: unknown, requestId: string): Refusal | null {
    const known = refusalFor(err)
    if (!known) logger.error(errorFields(err), 'request failed')
    if (res.headersSent) {
      res.destroy()
      return null
    }
    const refusal = known ?? INTERNAL_ERROR
    sendRefusal(res, refusal, requestId)
    return refusal
  }

  // Every answer carries X-Request-Id in its own writeHead (no setHeader: it would take Node
  // off the fast path of writeHead with a headers object). The request line is written once
  // the answer is (no 'finish' listener per request). Nothing waits where no stage had to (an
  // anonymous route, an ApiKey, a cached token, a refusal): no promise or microtask for those.
  function handle(snap: Snapshot, req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const maxBody = snap.compiled.limits.maxBodyBytes
    let bodyRead: Promise<BodyRead> | null = null
    const a: Answering = {
      snap,
      req,
      res,
      requestId,
      started: performance.now(),
      readBody: (maxBytes = maxBody) => (bodyRead ??= readBoundedBody(req, Math.min(maxBytes, maxBody))),
      refusal: null,
      upstreamMs: null,
      upstreamError: null,
    }
    const failed = (err: unknown) => {
      releaseSnapshot(snap)
      answerFailure(res, err, requestId)
    }
    let decided: MaybePromise<Decision>
    try {
      decided = snap.decide(decisionRequest(req, a.readBody))
    } catch (err) {
      return failed(err)
    }
    if (!(decided instanceof Promise)) return respond(a, decided)
    decided.then((decision) => respond(a, decision), failed)
  }

  /** Answers a decision, then records the request and lets go of the snapshot. */
  function respond(a: Answering, decision: Decision): void {
    const done = () => {
      try {
        record(a.req, a.res.statusCode, decision, a.requestId, a.started, a)
      } catch (err) {
        // the answer is out: a failure to log or count it must not take the process down
        logger.error(errorFields(err), 'request not recorded')
      } finally {
        releaseSnapshot(a.snap)
      }
    }
    const failed = (err: unknown) => {
      a.refusal = answerFailure(a.res, err, a.requestId)
      done()
    }
    let answered: MaybePromise<void>
    try {
      answered = answer(a, decision)
    } catch (err) {
      return failed(err)
    }
    if (answered instanceof Promise) answered.then(done, failed)
    else done()
  }

  function answer(a: Answering, decision: Decision): MaybePromise<void> {
    const { snap, req, res, requestId } = a
    const rateHeaders = decision.rateLimit?.headers ?? null
    if (!decision.allow && decision.signIn) {
      const https = cameOverHttps(req.headers, 'encrypted' in req.socket, decision.client?.peerTrusted ?? false)
      const location = signInRedirectLocation(snap.compiled.signIn!, req.headers, https, req.url ?? '/')
      return void res
        .writeHead(302, { location, 'cache-control': 'no-store', 'x-request-id': requestId, 'content-length': '0' })
        .end()
    }
    if (!decision.allow)
      return sendRefusal(res, decision.refusal, requestId, { challenge: decision.challenge, headers: rateHeaders })
    if (rateHeaders !== null && (decision.route.endpoint || decision.route.upstream === 'demo'))
      for (const name in rateHeaders) res.setHeader(name, rateHeaders[name]!)
    if (decision.route.endpoint) {
      const ctx = endpointContext(a, decision)
      // An endpoint whose store call failed answers E1006 (and is logged and counted as such).
      const storeDown = (err: unknown) => {
        const refusal = refusalFor(err)
        if (!refusal || res.headersSent) throw err
        ctx.refuse(refusal)
      }
      let handled: void | Promise<void>
      try {
        handled = snap.endpoints[decision.route.endpoint].handler(ctx)
      } catch (err) {
        return storeDown(err)
      }
      return handled instanceof Promise ? handled.catch(storeDown) : undefined
    }
    return andThen(proxy(snap, req, res, decision, requestId), (forwarded) => {
      a.upstreamMs = forwarded.upstreamMs
      if (!forwarded.refusal) return
      a.refusal = forwarded.refusal
      a.upstreamError = statusOf(forwarded.refusal) === 504 ? 'timeout' : 'unreachable'
      sendRefusal(res, forwarded.refusal, requestId)
    })
  }

  async function upgradeOn(snap: Snapshot, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const requestId = nextRequestId()
    const started = performance.now()
    const decision = await snap.decide(decisionRequest(req, null))
    const outcome: Outcome = { refusal: null, upstreamMs: null, upstreamError: null }
    const refuse = (refusal: Refusal, extras?: RefusalExtras) => {
      endSocketWithRefusal(socket, refusal, requestId, extras)
      record(req, statusOf(refusal), decision, requestId, started, outcome)
    }
    if (!decision.allow)
      return refuse(decision.refusal, { challenge: decision.challenge, headers: decision.rateLimit?.headers })
    // Only WebSocket is tunnelled unless the route names the protocol: a tunnel carries bytes
    // keygate never judges (h2c would carry further requests for any path).
    if (!isWebSocketUpgrade(req.headers.upgrade) && !decision.route.upgrades.has(upgradeProtocol(req)))
      return serveWithoutUpgrade(req, socket as Socket)
    if (decision.route.endpoint || decision.route.upstream === 'demo') {
      outcome.refusal = { code: 'E1004', status: 404, message: 'No upgrade here' }
      return refuse(outcome.refusal)
    }
    outcome.refusal = await tunnel(snap, req, socket, head, decision, requestId)
    if (outcome.refusal) return refuse(outcome.refusal)
    record(req, 101, decision, requestId, started, outcome)
  }

  /** RFC 9110 §7.8: a server may ignore Upgrade. The request is answered as plain HTTP/1.1, then the connection closes. */
  function serveWithoutUpgrade(req: IncomingMessage, socket: Socket): void {
    // The parser has let go of this connection: a body could not be read (nor be left unread).
    if (hasBody(req)) return refuseConnection(socket, { code: 'E1030', message: 'Upgrade with a body is not accepted' })
    const res = new ServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket)
    res.once('finish', () => socket.destroySoon())
    server.emit('request', req, res)
  }

  /** A refusal written on a socket that carries no request keygate could read; logged and counted as one. */
  function refuseConnection(socket: Duplex, refusal: Refusal): void {
    const requestId = nextRequestId()
    endSocketWithRefusal(socket, refusal, requestId)
    record(null, statusOf(refusal), null, requestId, performance.now(), {
      refusal,
      upstreamMs: null,
      upstreamError: null,
    })
  }

  function endpointContext(a: Answering, decision: Allowed): EndpointContext {
    const { req, res, requestId } = a
    return {
      req,
      res,
      requestId,
      principal: decision.principal,
      target: decision.target,
      client: decision.client,
      // keygate's own endpoints take a few fields: a body is refused long before parsing it could cost
      readBody: () => a.readBody(OWN_ENDPOINT_MAX_BODY_BYTES),
      send(status, body, headers) {
        const text = JSON.stringify(body)
        res.writeHead(status, {
          'content-type': JSON_CONTENT_TYPE,
          'cache-control': 'no-store',
          'x-request-id': requestId,
          'content-length': String(Buffer.byteLength(text)),
          ...headers,
        })
        res.end(text)
      },
      refuse(refusal, extras) {
        a.refusal = refusal
        sendRefusal(res, refusal, requestId, extras)
      },
    }
  }

  /** The request event (metrics, audit taps) and the request line; `req` is null when the parser refused it. */
  function record(
    req: IncomingMessage | null,
    status: number,
    decision: Decision | null,
    requestId: string,
    started: number,
    outcome: Outcome,
  ): void {
    const p = decision?.principal
    const durationMs = performance.now() - started
    const refusal = decision === null || decision.allow ? outcome.refusal : decision.refusal
    observer.request({
      decision: refusal ? 'deny' : 'allow',
      code: refusal?.code ?? null,
      scheme: p?.scheme ?? 'anonymous',
      route: decision?.route?.name ?? 'none',
      status,
      durationMs,
      upstreamMs: outcome.upstreamMs,
      upstreamError: outcome.upstreamError,
      rateLimit: decision?.rateLimit ?? null,
    })
    if (!requestLog.enabled()) return
    requestLog.write({
      reqId: requestId,
      method: req?.method ?? '-',
      // the normalised path where there is one: the odd spellings of a token path are redacted there
      path: req ? redactPath(decision?.target?.path ?? (req.url ?? '/').split('?')[0]!) : '-',
      status,
      durationMs,
      decision: refusal ? 'deny' : 'allow',
      code: refusal?.code,
      scheme: p?.scheme ?? 'anonymous',
      principal: p?.username,
      route: decision?.route?.name,
      clientIp: decision?.client?.clientIp,
      traceId: req ? traceIdOf(req.headers.traceparent) : undefined,
    })
  }

  return {
    request: (snap, req, res) => {
      const requestId = nextRequestId()
      if (bodyPending(req)) (req.httpVersionMajor < 2 ? watchBody : watchStreamBody)(req, res, requestId)
      handle(snap, req, res, requestId)
    },
    upgrade: (snap, req, socket, head) => {
      socket.on('error', () => socket.destroy())
      upgradeOn(snap, req, socket, head)
        .catch(() => socket.destroy())
        .finally(() => releaseSnapshot(snap)) // an open tunnel no longer needs the pool
    },
    clientError: (err, socket) => {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        // headersTimeout or requestTimeout: 408 while no answer has started, else just cut
        const awaiting = awaitingBody(socket)
        if (awaiting) return answerTimedOut(awaiting, socket)
        if (!canAnswer(socket)) return socket.destroy()
        return refuseConnection(socket, REQUEST_TIMED_OUT)
      }
      if (!socket.writable) return socket.destroy()
      refuseConnection(socket, err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : MALFORMED_REQUEST)
    },
  }
}

/** An error for the log: its message and stack only (never the request it came with). */
const errorFields = (err: unknown) => ({ err: { message: (err as Error).message, stack: (err as Error).stack } })

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/
/** The W3C trace id, for the log line; the header itself goes upstream unchanged. */
const traceIdOf = (header: string | string[] | undefined): string | undefined =>
  typeof header === 'string' ? TRACEPARENT.exec(header.trim())?.[1] : undefined

/** The proxied request itself, as the pipeline decides on it. */
const decisionRequest = (req: IncomingMessage, readBody: DecisionRequest['readBody']): DecisionRequest => ({
  method: req.method ?? 'GET',
  target: req.url ?? '/',
  headers: req.headers,
  rawHeaders: req.rawHeaders,
  peerIp: req.socket.remoteAddress ?? '',
  clientCertificate: clientCertificateOf(req),
  readBody,
  forApp: false,
})

const upgradeProtocol = (req: IncomingMessage): string =>
  String(req.headers.upgrade ?? '')
    .trim()
    .toLowerCase()
