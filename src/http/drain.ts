import net from 'node:net'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** How often idle connections are looked for while draining (each answer that ends leaves one). */
const IDLE_SWEEP_MS = 100

export interface DrainReport {
  /** connections open when the drain began */
  readonly open: number
  /** connections still open at the grace (slow answers, WebSocket tunnels), ended then */
  readonly cut: number
  readonly ms: number
}

/** What Node keeps on a server socket: the response being written on it (lib/_http_server.js). */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null }

function closeAfterAnswer(_req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false
}

/**
 * Drains like nginx: stop accepting; every answer not yet started goes out with
 * `Connection: close` (also for requests that still arrive on open connections); idle keep-alive
 * connections are closed between requests; whatever still runs at the grace (slow answers,
 * WebSocket tunnels, which Node's own close never ends) is ended then.
 * `sockets` are all the server's open connections, upgraded ones included.
 */
export function createDrain(server: Server, sockets: ReadonlySet<Socket>) {
  return (graceMs: number): Promise<DrainReport> => {
    // Added only now: a second 'request' listener on every request of the server's life would
    // take each emit off events' one-listener path.
    server.prependListener('request', closeAfterAnswer)
    const started = performance.now()
    const open = sockets.size
    for (const socket of sockets) {
      const res = (socket as ServerSocket)._httpMessage
      if (res && !res.headersSent) res.shouldKeepAlive = false
    }
    // net.Server's close, not http.Server's: that one also destroys every idle connection at
    // once, failing requests already on their way over them.
    net.Server.prototype.close.call(server)
    return new Promise((resolve) => {
      const finish = (cut: number) => {
        clearInterval(sweep)
        clearTimeout(grace)
        resolve({ open, cut, ms: Math.round(performance.now() - started) })
      }
      // Requests already in the kernel's buffers are read before the first sweep (a later turn
      // of the event loop), so they are answered rather than cut.
      const sweep = setInterval(() => {
        server.closeIdleConnections()
        if (sockets.size === 0) finish(0)
      }, IDLE_SWEEP_MS)
      const grace = setTimeout(() => {
        const cut = sockets.size
        for (const socket of sockets) socket.destroy()
        finish(cut)
      }, graceMs)
      grace.unref()
    })
  }
}
