// Case (3): the floor keygate is measured against — the fastest plain Node proxy in
// PERF-BASELINE.md (undici Pool.stream straight into the response), with nothing else on the path.
// Same pool settings as src/pipeline/forward.ts, so the ratio shows only what keygate adds.
// Cases (23) and (24): the same proxy behind the listener keygate's `tls` makes (src/http/tls.ts):
// https.createServer, or http2.createSecureServer with HTTP/1.1 beside it (allowHTTP1) answering
// through the compatibility API, with keygate's cipher suites. What Node's TLS and HTTP/2 cost per
// request is then paid by the floor too, and the pair's difference is keygate's own.
// usage: node --import tsx bench/bare-proxy.ts <port> <upstream origin> [https|h2 <cert.pem> <key.pem>]
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import { Pool } from 'undici'
import { CIPHER_SUITES } from '../src/http/tls.js'

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])
const [, , port, upstream = 'http://127.0.0.1:8081', listener = 'http', certFile, keyFile] = process.argv
const pool = new Pool(upstream, { pipelining: 1, keepAliveTimeout: 4_000 })

/** The headers that go on: not hop-by-hop, and not HTTP/2's pseudo-headers (`:path`…, the request line). */
function endToEnd(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined && !HOP_BY_HOP.has(name) && name[0] !== ':') out[name] = value
  }
  return out
}

function proxy(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool
    .stream(
      {
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: endToEnd(req.headers),
        body: hasBody ? req : null,
        opaque: res,
      },
      // opaque instead of a closure per request (undici's advice)
      ({ statusCode, headers, opaque: out }) => {
        out.writeHead(statusCode, endToEnd(headers))
        return out
      },
    )
    .catch(() => {
      if (res.headersSent) res.destroy()
      else res.writeHead(502).end()
    })
}

function tlsOptions() {
  if (!certFile || !keyFile) throw new Error(`bare-proxy: ${listener} needs <cert.pem> <key.pem>`)
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), ...CIPHER_SUITES }
}

const server =
  listener === 'http'
    ? createServer(proxy)
    : listener === 'https'
      ? createHttpsServer(tlsOptions(), proxy)
      : listener === 'h2'
        ? createSecureServer({ ...tlsOptions(), allowHTTP1: true }, proxy)
        : null
if (!server) throw new Error(`bare-proxy: unknown listener "${listener}" (http, https or h2)`)
server.listen(Number(port), '127.0.0.1')

process.once('SIGTERM', () => process.exit(0))
