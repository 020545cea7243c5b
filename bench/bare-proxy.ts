// Case (3): the floor keygate is measured against — the fastest plain Node proxy in
// PERF-BASELINE.md (undici Pool.stream straight into the response), with nothing else on the path.
// Same pool settings as src/pipeline/forward.ts, so the ratio shows only what keygate adds.
// usage: node --import tsx bench/bare-proxy.ts <port> <upstream origin>
import { createServer, type ServerResponse } from 'node:http'
import { Pool } from 'undici'

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
const port = Number(process.argv[2])
const pool = new Pool(process.argv[3] ?? 'http://127.0.0.1:8081', { pipelining: 1, keepAliveTimeout: 4_000 })

function endToEnd(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  }
  return out
}

createServer((req, res) => {
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
      ({ statusCode, headers, opaque }) => {
        const out = opaque as ServerResponse // opaque instead of a closure per request (undici's advice)
        out.writeHead(statusCode, endToEnd(headers))
        return out
      },
    )
    .catch(() => {
      if (res.headersSent) res.destroy()
      else res.writeHead(502).end()
    })
}).listen(port, '127.0.0.1')

process.once('SIGTERM', () => process.exit(0))
