import type { IncomingMessage, Server, ServerResponse } from 'node:http'
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
