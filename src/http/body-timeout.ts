import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { constants, type Http2ServerRequest } from 'node:http2'
import type { Socket } from 'node:net'

/** The answer a socket owes while its request body is still arriving. */
export interface AwaitingBody {
  readonly res: ServerResponse
  readonly requestId: string
}

const kAwaitingBody = Symbol('keygate.awaitingBody')
type WatchedSocket = Socket & { [kAwaitingBody]?: AwaitingBody | undefined }

/** The response waiting on this socket's request body, if one is still being received. */
export const awaitingBody = (socket: Socket): AwaitingBody | undefined => (socket as WatchedSocket)[kAwaitingBody]

function bodyReceived(this: IncomingMessage): void {
  const socket = this.socket as WatchedSocket
  const awaiting = socket[kAwaitingBody]
  socket[kAwaitingBody] = undefined
  // An answer that already ended has handed the socket to Node's keep-alive timeout: keep it.
  if (awaiting && !awaiting.res.writableEnded) socket.setTimeout(0)
}

/**
 * A body idle bound on the socket's own inactivity timer, armed only while a request body is
 * arriving (no timer per request, no closure). When it fires, `timedOut` answers (408 where no
 * answer has started); any other socket timeout (Node's keep-alive timeout) ends the socket as
 * Node would.
 */
export function createBodyIdleTimeout(
  server: Server,
  idleMs: number,
  timedOut: (awaiting: AwaitingBody, socket: Socket) => void,
) {
  server.on('timeout', (socket: Socket) => {
    const awaiting = awaitingBody(socket)
    if (awaiting) timedOut(awaiting, socket)
    else socket.destroy()
  })
  return function watchBody(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const socket = req.socket as WatchedSocket
    socket[kAwaitingBody] = { res, requestId }
    socket.setTimeout(idleMs)
    req.once('end', bodyReceived)
  }
}

/**
 * The same bound for an HTTP/2 request, on its stream's own inactivity timer: the session and its
 * other streams are left alone. The stream is answered 408 where no answer has started (and then
 * closed, RFC 9113 §8.1: the client may stop sending), else reset with CANCEL.
 */
export function createStreamBodyIdleTimeout(idleMs: number, refuse: (res: ServerResponse, requestId: string) => void) {
  return function watchStreamBody(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const stream = (req as unknown as Http2ServerRequest).stream
    stream.setTimeout(idleMs, () => {
      if (req.complete) return // the body arrived; only the answer is slow, which is not this bound's
      if (res.headersSent) return stream.close(constants.NGHTTP2_CANCEL)
      res.once('finish', () => stream.close(constants.NGHTTP2_NO_ERROR))
      refuse(res, requestId)
    })
    req.once('end', () => stream.setTimeout(0))
  }
}
