import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { rawGet, rawRequest, startTestGateway, startUpstream, TEST_SECRET } from './helpers.js'
import { hashPassword } from '../src/tokens/password.js'
import { keepAliveClient } from './support/keepalive.js'

test('a refused request without a body keeps its keep-alive connection open for the next request', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({ upstream: up.url, routes: [{ path: '/public/', anonymous: true }] })
  const client = await keepAliveClient(gw.port)
  const refusals = [
    'GET /private HTTP/1.1\r\nHost: x\r\n\r\n', // 401 E1000, decided synchronously
    'GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\n\r\n', // 400 E1030
    'POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    'GET /api/authorize HTTP/1.1\r\nHost: x\r\n\r\n', // 405 on keygate's own path
  ]
  for (const request of refusals) {
    const res = await client.request(request)
    assert.ok(res, `answered: ${request.split('\r\n')[0]}`)
    assert.ok(res.status >= 400, `${res.status}`)
    assert.notEqual(res.headers.connection, 'close', `${request.split('\r\n')[0]} keeps the connection`)
    // a length, not chunks: a proxy in front can then keep its connection without decoding a body
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)), request.split('\r\n')[0])
    assert.equal(res.headers['transfer-encoding'], undefined)
  }
  const allowed = await client.request('GET /public/page HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.equal(allowed?.status, 200, 'the same connection still serves')
  assert.equal(client.closed, false)
  client.close()
  assert.equal(up.seen.length, 1)
})

test('a refused request whose body is pending still closes its connection', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({ upstream: up.url })
  const client = await keepAliveClient(gw.port)
  const res = await client.request('POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc')
  assert.equal(res?.status, 401)
  assert.equal(res?.headers.connection, 'close')
  assert.equal(await client.next(), null, 'closed after the answer')
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Opens a raw connection, writes `first`, then `trickle` one byte every `everyMs`; reports when and how it ended. */
async function slowClient(
  port: number,
  first: string,
  opts: { trickleEveryMs?: number; localAddress?: string } = {},
): Promise<{ afterMs: number; response: string }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress })
  await once(socket, 'connect')
  const started = performance.now()
  socket.write(first)
  let response = ''
  socket.on('data', (d: Buffer) => (response += d.toString()))
  socket.on('error', () => {})
  const trickle = opts.trickleEveryMs ? setInterval(() => socket.write('a'), opts.trickleEveryMs) : null
  const giveUp = setTimeout(() => socket.destroy(), 15_000)
  await once(socket, 'close')
  clearTimeout(giveUp)
  if (trickle) clearInterval(trickle)
  return { afterMs: performance.now() - started, response }
}

test('slow headers, an idle body and a trickling body are each cut within 2 s of their bound, with 408', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    secrets: { jwt: { secret: TEST_SECRET } },
    users: [
      { username: 'alice', uid: 7, groups: ['user'], passwordHash: await hashPassword('pw', { N: 1024, r: 8, p: 1 }) },
    ],
    limits: { headersTimeout: '1s', bodyIdleTimeout: '1s', requestTimeout: '2s' },
  })
  const body = JSON.stringify({ username: 'alice', password: 'pw' })
  const login = await rawRequest(
    gw.port,
    `POST /api/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  )
  assert.equal(login.status, 200, login.body)
  const bearer = `Authorization: Bearer ${login.json.token}\r\n`
  const [headers, idleEndpoint, idleProxied, trickleProxied] = await Promise.all([
    slowClient(gw.port, 'GET /x HTTP/1.1\r\nHost: x\r\n'),
    slowClient(
      gw.port,
      'POST /api/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"us',
    ),
    slowClient(gw.port, `POST /wiki/edit HTTP/1.1\r\nHost: x\r\n${bearer}Content-Length: 100\r\n\r\nabc`),
    // a byte every 300 ms keeps the idle bound from firing: the whole-request bound ends it
    slowClient(gw.port, `POST /wiki/edit HTTP/1.1\r\nHost: x\r\n${bearer}Content-Length: 100\r\n\r\n`, {
      trickleEveryMs: 300,
    }),
  ])
  const within = (r: { afterMs: number; response: string }, boundMs: number, what: string) => {
    assert.ok(
      r.afterMs >= boundMs - 100 && r.afterMs <= boundMs + 2000,
      `${what}: cut after ${Math.round(r.afterMs)} ms`,
    )
    assert.match(r.response, /^HTTP\/1.1 408 /, `${what}: ${r.response.slice(0, 60)}`)
    assert.match(r.response, /"code":"E1030"/)
  }
  within(headers, 1000, 'slow headers')
  within(idleEndpoint, 1000, 'idle body read by keygate')
  within(idleProxied, 1000, 'idle proxied Bearer body')
  within(trickleProxied, 2000, 'trickling proxied Bearer body')
  assert.ok(
    up.seen.every((r) => r.url !== '/wiki/edit' || r.body.length < 100),
    'no cut body reached the upstream whole',
  )
})

test('connections are capped in total and per client address; trusted proxies are not capped per address', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    defaultPolicy: 'anonymous',
    trustedProxies: ['127.0.0.3/32'],
    limits: { maxConnections: 12, maxConnectionsPerClient: 3 },
  })
  const open = async (localAddress: string) => {
    const socket = connect({ port: gw.port, host: '127.0.0.1', localAddress })
    socket.on('error', () => {})
    await once(socket, 'connect')
    return socket
  }
  const held = await Promise.all(['127.0.0.1', '127.0.0.1', '127.0.0.1'].map(open))
  const fourth = await open('127.0.0.1')
  const [closedFast] = await Promise.race([once(fourth, 'close').then(() => [true]), sleep(1000).then(() => [false])])
  assert.equal(closedFast, true, 'a fourth connection from one address is closed at once')
  const other = await rawGet(gw.port, '/x', {}, { localAddress: '127.0.0.2' })
  assert.equal(other.status, 200, 'another address is served')
  const proxied = await Promise.all(Array.from({ length: 5 }, () => open('127.0.0.3')))
  const viaProxy = await rawGet(gw.port, '/x', {}, { localAddress: '127.0.0.3' })
  assert.equal(viaProxy.status, 200, 'a trusted proxy is not held to the per-address cap')
  // 3 + 5 held, then 4 more reach maxConnections (12); the next is dropped
  const more = await Promise.all(['127.0.0.4', '127.0.0.4', '127.0.0.5', '127.0.0.5'].map(open))
  const over = await open('127.0.0.6')
  const [overClosed] = await Promise.race([once(over, 'close').then(() => [true]), sleep(1000).then(() => [false])])
  assert.equal(overClosed, true, 'past maxConnections a connection is closed at once')
  for (const s of [...held, ...proxied, ...more]) s.destroy()
})

test('/_keygate/health stays answerable while 5,000 slow connections are open', async () => {
  // one client address here, so its cap is raised (binding 5,000 sockets to chosen addresses is slow)
  const gw = await startTestGateway({ upstream: 'demo', limits: { maxConnectionsPerClient: 6000 } })
  const sockets: Socket[] = []
  const started = performance.now()
  try {
    for (let batch = 0; batch < 10; batch++) {
      const opened = Array.from({ length: 500 }, (_, i) => {
        const s = connect({ port: gw.port, host: '127.0.0.1' })
        s.on('error', () => {})
        // half send slow headers, half a body that stops
        const request =
          i % 2
            ? 'GET /x HTTP/1.1\r\nHost: x\r\n'
            : 'POST /api/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{'
        s.once('connect', () => s.write(request))
        sockets.push(s)
        return once(s, 'connect')
      })
      await Promise.all(opened)
    }
    const openMs = performance.now() - started
    const t0 = performance.now()
    const health = await rawGet(gw.port, '/_keygate/health')
    const healthMs = performance.now() - t0
    assert.equal(health.status, 200)
    assert.ok(healthMs < 1000, `health answered in ${Math.round(healthMs)} ms`)
    assert.equal(
      sockets.filter((s) => s.destroyed).length,
      0,
      `all 5,000 still open (opened in ${Math.round(openMs)} ms)`,
    )
  } finally {
    for (const s of sockets) s.destroy()
  }
})

test('only WebSocket upgrades are tunnelled: h2c is answered as plain HTTP/1.1 and HTTP2-Settings never goes upstream', async () => {
  const tunnels: Array<{ url: string; headers: Record<string, unknown> }> = []
  const up = await startUpstream()
  up.server.on('upgrade', (req, socket) => {
    tunnels.push({ url: req.url!, headers: req.headers })
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
    socket.on('data', (d: Buffer) => tunnels.push({ url: `bytes:${String(d).split('\r\n')[0]}`, headers: {} }))
  })
  const gw = await startTestGateway({
    upstream: up.url,
    routes: [
      { path: '/public/', anonymous: true },
      { path: '/tunnel/', anonymous: true, upgrades: ['h2c'] },
    ],
  })
  const h2c = (path: string) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`
  // after the upgrade request, a request for a protected path rides on the same bytes
  const smuggled = 'GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n'
  const res = await rawRequest(gw.port, h2c('/public/page') + smuggled)
  assert.equal(res.status, 200, res.body)
  assert.equal(res.headers.connection, 'close')
  assert.equal(tunnels.length, 0, 'nothing was tunnelled')
  assert.deepEqual(
    up.seen.map((r) => r.url),
    ['/public/page'],
  )
  assert.equal(up.seen[0]!.headers.upgrade, undefined)
  assert.equal(up.seen[0]!.headers['http2-settings'], undefined)

  // HTTP2-Settings on a plain request (not listed in Connection) stays out too
  await rawGet(gw.port, '/public/two', { 'HTTP2-Settings': 'AAMAAABkAARAAAAAAAIAAAAA' })
  assert.equal(up.seen[1]!.headers['http2-settings'], undefined)

  // a refused h2c upgrade is refused, not tunnelled
  const refused = await rawRequest(gw.port, h2c('/private') + smuggled)
  assert.equal(refused.status, 401)

  // a route that opts in tunnels h2c, still without HTTP2-Settings
  const socket = connect(gw.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(h2c('/tunnel/x'))
  const [first] = await once(socket, 'data')
  assert.match(String(first), /^HTTP\/1.1 101/)
  socket.destroy()
  assert.equal(tunnels.length, 1)
  assert.equal(tunnels[0]!.url, '/tunnel/x')
  assert.equal(tunnels[0]!.headers['http2-settings'], undefined)
  assert.equal(up.seen.length, 2, 'no smuggled request reached the upstream')
})
