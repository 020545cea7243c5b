import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface ConnectionLimits {
  readonly headersTimeout: number
  readonly requestTimeout: number
  readonly bodyIdleTimeout: number
  readonly keepAliveTimeout: number
  readonly maxConnections: number
  readonly maxConnectionsPerClient: number
}

/**
 * Node's own bounds: headers and the whole request (body included) are timed by the server's
 * connection check, which runs often enough to cut either within about a second of its setting
 * (Node's default check runs every 30 s, so a 10 s headersTimeout could take 40 s).
 */
export function serverTimeoutOptions(limits: ConnectionLimits) {
  const shortest = Math.min(limits.headersTimeout, limits.requestTimeout || Infinity)
  return {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(shortest / 10))),
  }
}

/** What Node keeps on a server socket: the response being written on it (lib/_http_server.js). */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null }

/** Whether an answer can still go out on this socket (no response has started). */
export const canAnswer = (socket: Socket): boolean =>
  socket.writable && !(socket as ServerSocket)._httpMessage?.headersSent

/**
 * Connections, counted per socket (never per request): the total cap is Node's
 * `server.maxConnections`; the per-address cap and the set of open sockets (for draining)
 * are kept here.
 */
export function trackConnections(server: Server, limits: ConnectionLimits, exempt: (ip: string) => boolean) {
  server.maxConnections = limits.maxConnections
  const sockets = new Set<Socket>()
  const perClient = new Map<string, number>()
  function release(this: Socket) {
    sockets.delete(this)
    const ip = this.remoteAddress ?? ''
    const n = perClient.get(ip)
    if (n === undefined) return
    if (n <= 1) perClient.delete(ip)
    else perClient.set(ip, n - 1)
  }
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? ''
    if (!exempt(ip)) {
      const n = (perClient.get(ip) ?? 0) + 1
      if (n > limits.maxConnectionsPerClient) return socket.destroy()
      perClient.set(ip, n)
    }
    sockets.add(socket)
    socket.once('close', release)
  })
  return { sockets }
}
