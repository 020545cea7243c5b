import { after } from 'node:test'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { parseDocument } from 'yaml'
import { GatewaySchema, type GatewayConfig } from '../src/config/schema.js'
import { startGateway, type Gateway, type GatewayOptions } from '../src/server.js'
import { createLogger } from '../src/log.js'

export interface SeenRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
}

/** A real upstream on loopback that records what reached it; `handler` may answer differently. */
export async function startUpstream(handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const seen: SeenRequest[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body })
      if (handler) return handler(req, res, body)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ url: req.url, method: req.method }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  after(() => {
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as { port: number }).port
  return { server, seen, port, url: `http://127.0.0.1:${port}` }
}

export const TEST_SECRET = 'test-secret-0123456789-0123456789-abcdef'

/** Collects every log line, so a test can assert that no secret was ever written. */
export function captureLogs() {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk))
      cb()
    },
  })
  return { lines, logger: createLogger('info', sink) }
}

export function parseConfig(raw: unknown): GatewayConfig {
  return GatewaySchema.parse(raw)
}

export function yamlConfig(text: string): GatewayConfig {
  return parseConfig(parseDocument(text).toJS())
}

/** A gateway on 127.0.0.1:0, closed after the test file. */
export async function startTestGateway(
  config: GatewayConfig | Record<string, unknown>,
  extra: Partial<GatewayOptions> = {},
): Promise<Gateway & { logs: string[] }> {
  const parsed =
    'limits' in config && typeof (config as GatewayConfig).limits?.maxBodyBytes === 'number'
      ? (config as GatewayConfig)
      : parseConfig(config)
  const { lines, logger } = captureLogs()
  const gw = await startGateway({ config: parsed, logger, listen: { host: '127.0.0.1', port: 0 }, ...extra })
  after(() => gw.close())
  return Object.assign(gw, { logs: lines })
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  json: any
}

/** Sends bytes as they are over a socket: fetch and URL parsers would normalise hostile paths first. */
export async function rawRequest(
  port: number,
  request: string | Buffer,
  opts: { localAddress?: string; host?: string } = {},
): Promise<RawResponse> {
  const socket = connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress })
  await once(socket, 'connect')
  socket.write(request)
  const chunks: Buffer[] = []
  socket.on('data', (c) => chunks.push(c))
  await Promise.race([once(socket, 'end'), once(socket, 'close')])
  socket.destroy()
  return parseRawResponse(Buffer.concat(chunks).toString('latin1'))
}

export function parseRawResponse(text: string): RawResponse {
  const [head = '', ...rest] = text.split('\r\n\r\n')
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
  }
  let body = rest.join('\r\n\r\n')
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body)
  let json: any
  try {
    json = JSON.parse(body)
  } catch {
    json = undefined
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body, json }
}

function dechunk(text: string): string {
  let out = ''
  let rest = text
  for (;;) {
    const i = rest.indexOf('\r\n')
    if (i === -1) break
    const size = parseInt(rest.slice(0, i), 16)
    if (!size) break
    out += rest.slice(i + 2, i + 2 + size)
    rest = rest.slice(i + 2 + size + 2)
  }
  return out
}

/** GET with Connection: close, raw target kept exactly as given. */
export const rawGet = (
  port: number,
  target: string,
  headers: Record<string, string> = {},
  opts: { localAddress?: string } = {},
) =>
  rawRequest(
    port,
    `GET ${target} HTTP/1.1\r\nHost: gw.test\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}Connection: close\r\n\r\n`,
    opts,
  )
