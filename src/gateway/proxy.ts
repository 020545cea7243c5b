import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { Refusal } from '../errors.js'
import type { Decision } from '../pipeline/index.js'
import { buildUpstreamHeaders } from '../pipeline/identity.js'
import type { ForwardResult } from '../pipeline/forward.js'
import { clientCertificateOf } from '../auth/mtls.js'
import { answerAsDemo } from '../upstream/demo.js'
import type { Snapshot } from './snapshot.js'

// The proxy adapter: a decision that lets a request through becomes the request its upstream
// gets. Nothing is decided here; everything comes from the decision and the snapshot.

export type Allowed = Extract<Decision, { allow: true }>

/** The headers the upstream gets: the client's, without what keygate owns, with the identity. */
function upstreamHeaders(snap: Snapshot, req: IncomingMessage, decision: Allowed, requestId: string) {
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
  if (decision.principal?.scheme === 'mtls' && snap.compiled.tls?.forwardClientCert)
    headers['x-forwarded-client-cert'] = clientCertificateOf(req)!.forwardedElement
  return headers
}

const ANSWERED_HERE: ForwardResult = { refusal: null, upstreamMs: null }

/** Sends an allowed request to its upstream (or the built-in demo) and streams the answer back. */
export function proxy(
  snap: Snapshot,
  req: IncomingMessage,
  res: ServerResponse,
  decision: Allowed,
  requestId: string,
): ForwardResult | Promise<ForwardResult> {
  const headers = upstreamHeaders(snap, req, decision, requestId)
  if (decision.route.upstream === 'demo') {
    answerAsDemo(req, res, decision.upstreamPath, headers, snap.compiled.identityHeaders, requestId)
    return ANSWERED_HERE
  }
  return snap.forwarder.forward(req, res, {
    origin: decision.route.upstream,
    tls: decision.route.upstreamTls,
    pathAndQuery: decision.upstreamPath,
    headers,
    body: decision.body,
    requestId,
    responseHeaders: decision.rateLimit?.headers ?? null,
  })
}

/** Opens the tunnel of an allowed upgrade; the upstream's failure before it opened is returned. */
export async function tunnel(
  snap: Snapshot,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  decision: Allowed,
  requestId: string,
): Promise<Refusal | null> {
  let failed: Refusal | null = null
  await snap.forwarder.upgrade(
    req,
    socket,
    head,
    {
      origin: decision.route.upstream,
      tls: decision.route.upstreamTls,
      pathAndQuery: decision.upstreamPath,
      headers: upstreamHeaders(snap, req, decision, requestId),
      body: null,
      requestId,
    },
    (refusal) => {
      failed = refusal
    },
  )
  return failed
}
