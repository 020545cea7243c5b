// The fallback upstream when nginx is missing: the fixed JSON body, keep-alive, nothing else.
// usage: node --import tsx bench/node-upstream.ts <port> <body>
import { createServer } from 'node:http'

const port = Number(process.argv[2])
const body = Buffer.from(process.argv[3] ?? '{}')
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) }

const server = createServer((req, res) => {
  req.resume() // drain a request body so the connection stays reusable
  res.writeHead(200, headers).end(body)
})
server.keepAliveTimeout = 60_000 // wrk holds its connections for the whole case
server.listen(port, '127.0.0.1')

process.once('SIGTERM', () => process.exit(0))
