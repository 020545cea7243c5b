// Case (16)'s auth service: the floor of any remote decision behind nginx `auth_request` — a
// node:http server that answers every question 200, with nothing to decide.
// usage: node --import tsx bench/auth-floor.ts <port>
import { createServer } from 'node:http'

const allowed = { 'content-length': '0' }
const server = createServer((_req, res) => res.writeHead(200, allowed).end())
server.keepAliveTimeout = 60_000 // nginx keeps its upstream connections for the whole case
server.listen(Number(process.argv[2]), '127.0.0.1')

process.once('SIGTERM', () => process.exit(0))
