import type { IncomingMessage, ServerResponse } from 'node:http'
import type { GatewayConfig } from '../config/schema.js'

/**
 * The built-in `upstream: demo`: answers with what it received, so a newcomer can watch
 * the gateway work with curl alone.
 */
export function answerAsDemo(
  req: IncomingMessage,
  res: ServerResponse,
  pathAndQuery: string,
  headers: Record<string, string | string[]>,
  names: GatewayConfig['identityHeaders'],
  requestId: string,
): void {
  req.resume()
  const identity: Record<string, string | string[]> = {}
  for (const name of [names.user, names.userId, names.email, names.groups, names.scheme]) {
    const v = headers[name]
    if (v !== undefined) identity[name] = v
  }
  const body = `${JSON.stringify({ upstream: 'demo', method: req.method, path: pathAndQuery, identity }, null, 2)}\n`
  res.writeHead(200, {
    'content-type': 'application/json',
    'x-request-id': requestId,
    'content-length': String(Buffer.byteLength(body)),
  })
  res.end(body)
}
