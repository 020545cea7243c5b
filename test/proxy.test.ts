import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { captureLogs, rawGet, rawRequest, startTestGateway, startUpstream } from './helpers.js'
import { eachLimited, OWN_ENDPOINT_PROBES } from './support/own-endpoints.js'
import { hostilePaths } from './support/hostile-paths.js'

const API_KEY = 'proxy-test-api-key-0123456789abcdef012345'

const baseConfig = (upstream: string, extra: Record<string, unknown> = {}) => ({
  upstream,
  routes: [
    { path: '/public/', anonymous: true },
    { path: '/admin/', require: { groups: ['sysop'] } },
    { path: '/bots/', require: { groups: ['bot'] } },
    { path: '/closed/', deny: true },
  ],
  serviceUser: { name: 'Bot user', id: 7, groups: ['bot'] },
  apiKeys: [{ name: 'k', key: API_KEY, allow: { paths: ['/bots/', '/admin/', '/public/'] } }],
  ...extra,
})

test('a 20 MB body streams both ways through the proxy, status and headers preserved', async () => {
  const big = Buffer.alloc(20 * 1024 * 1024, 'abcdefghij')
  const up = await startUpstream((req, res, body) => {
    res.writeHead(207, {
      'x-upstream': 'yes',
      'content-type': 'application/octet-stream',
      'x-body-sha': createHash('sha256').update(body).digest('hex'),
    })
    res.end(Buffer.concat([body, Buffer.from('!')]))
  })
  const gw = await startTestGateway(baseConfig(up.url))
  const res = await request(`${gw.url}/public/upload`, {
    method: 'POST',
    body: big,
    headers: { 'content-type': 'application/octet-stream' },
  })
  const back = Buffer.from(await res.body.arrayBuffer())
  assert.equal(res.statusCode, 207)
  assert.equal(res.headers['x-upstream'], 'yes')
  assert.equal(res.headers['x-body-sha'], createHash('sha256').update(big).digest('hex'))
  assert.equal(back.length, big.length + 1)
  assert.equal(up.seen[0]!.body.length, big.length)
})

test('spoofed identity headers in every spelling never reach the upstream', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  const spellings = [
    'x-auth-user',
    'X-AUTH-USER',
    'X-Auth_User',
    'x_auth_user',
    'X-Auth-User-Id',
    'X_Auth_Groups',
    'x-auth-email',
    'X-Auth-Scheme',
  ]
  for (const name of spellings) {
    const anon = await rawGet(gw.port, '/public/page', { [name]: 'admin' })
    assert.equal(anon.status, 200, name)
    const authed = await rawGet(gw.port, '/bots/page', { [name]: 'admin', Authorization: `ApiKey ${API_KEY}` })
    assert.equal(authed.status, 200, name)
  }
  assert.equal(up.seen.length, spellings.length * 2)
  for (const seen of up.seen) {
    for (let i = 0; i < seen.rawHeaders.length; i += 2) {
      const name = seen.rawHeaders[i]!.toLowerCase().replace(/_/g, '-')
      if (name.startsWith('x-auth-')) assert.notEqual(seen.rawHeaders[i + 1], 'admin', `${seen.rawHeaders[i]} leaked`)
    }
  }
  const authed = up.seen.filter((s) => s.url === '/bots/page')
  assert.ok(
    authed.every(
      (s) =>
        s.headers['x-auth-user'] === 'Bot user' &&
        s.headers['x-auth-user-id'] === '7' &&
        s.headers['x-auth-groups'] === 'bot' &&
        s.headers['x-auth-scheme'] === 'apikey',
    ),
  )
  assert.ok(
    up.seen
      .filter((s) => s.url === '/public/page')
      .every((s) => s.headers['x-auth-scheme'] === 'anonymous' && s.headers['x-auth-user'] === undefined),
  )
})

test('hostile paths are refused before routing, or normalised; the upstream sees only the normalised path', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  for (const c of hostilePaths) {
    const before = up.seen.length
    const res = await rawGet(gw.port, c.path)
    assert.equal(res.status, c.status, `${c.path} → ${res.status} ${res.body}`)
    if (c.status === 400) {
      assert.equal(res.json?.code, 'E1030', c.path)
      assert.ok(res.headers['x-request-id'], 'refusals carry a request id')
    }
    if (c.upstreamSees) assert.equal(up.seen.at(-1)?.url, c.upstreamSees, c.path)
    else assert.equal(up.seen.length, before, `${c.path} reached the upstream`)
  }
})

test('segment-aware prefixes: /admin/ does not cover /adminx, /closed/ is denied to everyone', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url, { defaultPolicy: 'anonymous' }))
  assert.equal((await rawGet(gw.port, '/adminx/page')).status, 200)
  assert.equal((await rawGet(gw.port, '/admin')).status, 401)
  assert.equal((await rawGet(gw.port, '/admin/page')).status, 401)
  const bot = await rawGet(gw.port, '/admin/page', { Authorization: `ApiKey ${API_KEY}` })
  assert.equal(bot.status, 403)
  assert.equal(bot.json.code, 'E1004')
  assert.equal((await rawGet(gw.port, '/closed/x', { Authorization: `ApiKey ${API_KEY}` })).json.code, 'E1004')
  assert.deepEqual(
    up.seen.map((s) => s.url),
    ['/adminx/page'],
  )
})

test('route methods are part of the match; unmatched requests follow defaultPolicy', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    routes: [{ path: '/read/', methods: ['GET'], anonymous: true }],
    defaultPolicy: 'deny',
  })
  assert.equal((await rawGet(gw.port, '/read/x')).status, 200)
  const post = await rawRequest(
    gw.port,
    'POST /read/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  )
  assert.equal(post.status, 403)
  assert.equal((await rawGet(gw.port, '/elsewhere')).json.code, 'E1004')
})

test('401 carries WWW-Authenticate and the contract body; two Authorization headers are refused', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  const none = await rawGet(gw.port, '/bots/x')
  assert.equal(none.status, 401)
  assert.deepEqual(none.json, { status: false, code: 'E1000', message: 'No token or session' })
  assert.match(none.headers['www-authenticate']!, /Bearer realm="keygate"/)
  const wrong = await rawGet(gw.port, '/bots/x', { Authorization: `ApiKey ${API_KEY.replace(/.$/, 'X')}` })
  assert.equal(wrong.json.code, 'E1001', 'a wrong key of the right length is refused')
  const lower = await rawGet(gw.port, '/bots/x', { Authorization: `apikey ${API_KEY}` })
  assert.equal(lower.status, 200, 'scheme words are case-insensitive')
  const two = await rawRequest(
    gw.port,
    `GET /bots/x HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${API_KEY}\r\nAuthorization: ApiKey other\r\nConnection: close\r\n\r\n`,
  )
  assert.equal(two.status, 400)
  assert.equal(two.json.code, 'E1030')
  assert.equal(up.seen.length, 1)
})

test('hop-by-hop headers and the gateway credentials stay out; X-Request-Id is the same on both sides', async () => {
  const up = await startUpstream((_req, res) => {
    res.writeHead(200, {
      connection: 'x-secret-hop',
      'x-secret-hop': 'no',
      'keep-alive': 'timeout=5',
      'x-ok': 'yes',
      'x-request-id': 'upstream-chosen',
    })
    res.end('ok')
  })
  const gw = await startTestGateway(baseConfig(up.url))
  const res = await rawRequest(
    gw.port,
    `GET /bots/x HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${API_KEY}\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\nX-Request-Id: client-chosen\r\nCookie: wiki=1; keygate_session=abc; other=2\r\nX-Keep: 1\r\n\r\n`,
  )
  assert.equal(res.status, 200)
  const seen = up.seen[0]!
  for (const h of ['x-drop-me', 'proxy-authorization', 'te', 'authorization'])
    assert.equal(seen.headers[h], undefined, h)
  assert.equal(seen.headers['x-keep'], '1')
  assert.equal(seen.headers.cookie, 'wiki=1; other=2')
  assert.equal(seen.headers['x-request-id'], res.headers['x-request-id'])
  assert.notEqual(seen.headers['x-request-id'], 'client-chosen')
  assert.equal(res.headers['x-secret-hop'], undefined)
  assert.equal(res.headers['keep-alive'], undefined)
  assert.equal(res.headers['x-ok'], 'yes')
})

test('X-Forwarded-For is ignored from an untrusted peer and walked right to left from a trusted one', async () => {
  const up = await startUpstream()
  const untrusted = await startTestGateway(baseConfig(up.url))
  await rawGet(untrusted.port, '/public/x', { 'X-Forwarded-For': '203.0.113.9', 'X-Real-IP': '203.0.113.9' })
  assert.equal(up.seen.at(-1)!.headers['x-forwarded-for'], '127.0.0.1')
  assert.equal(up.seen.at(-1)!.headers['x-real-ip'], '127.0.0.1')
  const trusted = await startTestGateway(baseConfig(up.url, { trustedProxies: ['127.0.0.0/8', '10.0.0.0/8'] }))
  await rawGet(trusted.port, '/public/x', { 'X-Forwarded-For': '198.51.100.1, 203.0.113.9, 10.1.2.3' })
  assert.equal(up.seen.at(-1)!.headers['x-real-ip'], '203.0.113.9')
  assert.equal(up.seen.at(-1)!.headers['x-forwarded-for'], '198.51.100.1, 203.0.113.9, 10.1.2.3, 127.0.0.1')
  await rawGet(trusted.port, '/public/x', { 'X-Forwarded-For': 'garbage, ::ffff:10.9.9.9' })
  assert.equal(
    up.seen.at(-1)!.headers['x-real-ip'],
    '10.9.9.9',
    'a malformed hop ends the walk at the last trusted one',
  )
})

test('a client that hangs up ends the upstream request, before the answer started and during its body', async () => {
  const closed: string[] = []
  const up = await startUpstream((req, res) => {
    res.on('close', () => closed.push(req.url!))
    // /started/ sends its headers and a first chunk, then holds the body; /waiting/ never answers
    if (req.url!.startsWith('/started/')) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first chunk')
    }
  })
  const gw = await startTestGateway({ upstream: up.url, defaultPolicy: 'anonymous', routes: [] })
  for (const path of ['/started/x', '/waiting/x']) {
    const socket = connect({ port: gw.port, host: '127.0.0.1' })
    await once(socket, 'connect')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
    if (path.startsWith('/started/')) await once(socket, 'data')
    else while (up.seen.length < 2) await sleep(20)
    socket.destroy()
    // (a bound, not a speed: an upstream request nobody ends would otherwise wait for upstreamTimeout)
    for (let waited = 0; !closed.includes(path) && waited < 5000; waited += 20) await sleep(20)
  }
  assert.deepEqual(closed, ['/started/x', '/waiting/x'])
})

test('an unreachable upstream is 502 E1032, a slow one 504 E1032', async () => {
  const slow = await startUpstream((_req, res) => {
    setTimeout(() => res.end('late'), 1500)
  })
  const gw = await startTestGateway({
    upstream: 'http://127.0.0.1:1',
    routes: [{ path: '/slow/', anonymous: true, upstream: slow.url }],
    defaultPolicy: 'anonymous',
    limits: { upstreamTimeout: '300ms' },
  })
  const down = await rawGet(gw.port, '/x')
  assert.equal(down.status, 502)
  assert.equal(down.json.code, 'E1032')
  const late = await rawGet(gw.port, '/slow/x')
  assert.equal(late.status, 504)
  assert.equal(late.json.code, 'E1032')
})

test('oversized request headers get 431, not a crash', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url, { limits: { maxHeaderBytes: '4KB' } }))
  const res = await rawGet(gw.port, '/public/x', { 'X-Big': 'a'.repeat(8000) })
  assert.equal(res.status, 431)
  assert.equal(up.seen.length, 0)
  assert.equal((await rawGet(gw.port, '/public/x')).status, 200)
})

test('the request log has method, path, status, decision and never the key', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  await rawGet(gw.port, '/bots/x?secret=1', { Authorization: `ApiKey ${API_KEY}` })
  await rawGet(gw.port, '/bots/x', { Authorization: 'ApiKey wrong-key' })
  await new Promise((r) => setTimeout(r, 20))
  const lines = gw.logs.map((l) => JSON.parse(l)).filter((l) => l.req_id)
  assert.equal(lines.length, 2)
  assert.deepEqual(
    [lines[0].method, lines[0].path, lines[0].status, lines[0].decision, lines[0].scheme, lines[0].principal],
    ['GET', '/bots/x', 200, 'allow', 'apikey', 'Bot user'],
  )
  assert.deepEqual([lines[1].status, lines[1].decision, lines[1].code], [401, 'deny', 'E1001'])
  assert.ok(!gw.logs.join('').includes(API_KEY))
  assert.ok(!gw.logs.join('').includes('wrong-key'))
})

test("request lines follow the logger: none below info, and a child logger's bindings on each", async () => {
  const up = await startUpstream()
  const quiet = captureLogs()
  quiet.logger.level = 'warn'
  const gwQuiet = await startTestGateway(baseConfig(up.url), { logger: quiet.logger })
  assert.equal((await rawGet(gwQuiet.port, '/public/x')).status, 200)
  const child = captureLogs()
  const gwChild = await startTestGateway(baseConfig(up.url), { logger: child.logger.child({ instance: 'b' }) })
  assert.equal((await rawGet(gwChild.port, '/public/x')).status, 200)
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(up.seen.length, 2, 'both requests were proxied')
  assert.equal(quiet.lines.filter((l) => l.includes('"req_id"')).length, 0, 'no request line at warn')
  const line = child.lines.map((l) => JSON.parse(l)).find((l) => l.req_id)
  assert.deepEqual([line?.level, line?.instance, line?.path, line?.status], [30, 'b', '/public/x', 200])
})

test('traceparent and tracestate go upstream unchanged; the trace id is on the log line', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  await rawGet(gw.port, '/public/x', { traceparent, tracestate: 'congo=t61rcWkgMzE' })
  assert.equal(up.seen[0]!.headers.traceparent, traceparent)
  assert.equal(up.seen[0]!.headers.tracestate, 'congo=t61rcWkgMzE')
  await new Promise((r) => setTimeout(r, 20))
  const line = gw.logs.map((l) => JSON.parse(l)).find((l) => l.req_id)
  assert.equal(line.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736')
})

const hostileFraming: Array<{ name: string; raw: string }> = [
  {
    name: 'Content-Length and Transfer-Encoding',
    raw: 'POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: x\r\n\r\n',
  },
  {
    name: 'two different Content-Lengths',
    raw: 'POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
  },
  { name: 'obs-fold header', raw: 'GET /public/x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n' },
  { name: 'space before the colon', raw: 'GET /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n' },
  {
    name: 'bad chunk size',
    raw: 'POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
  },
  { name: 'bare LF line ends', raw: 'GET /public/x HTTP/1.1\nHost: x\n\n' },
  { name: 'NUL in a header value', raw: 'GET /public/x HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n' },
]

test('hostile framing is refused with 4xx by the parser and never reaches the upstream', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  for (const c of hostileFraming) {
    const res = await rawRequest(gw.port, c.raw)
    assert.ok(res.status >= 400 && res.status < 500, `${c.name}: ${res.status}`)
  }
  assert.equal(up.seen.filter((s) => s.url.startsWith('/admin')).length, 0, 'no smuggled request reached the upstream')
  assert.ok(
    up.seen.every((s) => s.url === '/public/x'),
    'only the legitimate path was ever seen',
  )
  assert.equal((await rawGet(gw.port, '/public/x')).status, 200, 'the gateway still serves')
})

test('headers that let an app re-route or re-method a judged request never reach the upstream', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  const sneaky = {
    'X-Original-URL': '/admin/x',
    X_Rewrite_URL: '/admin/x',
    'X-HTTP-Method-Override': 'DELETE',
    'x-method-override': 'PUT',
    'X-Forwarded-Prefix': '/admin',
    'X-Original-URI': '/admin/x',
    'X-Forwarded-Uri': '/admin/x',
  }
  assert.equal((await rawGet(gw.port, '/public/x', sneaky)).status, 200)
  const names = up.seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, '-'))
  for (const n of Object.keys(sneaky))
    assert.ok(!names.includes(n.toLowerCase().replace(/_/g, '-')), `${n} reached the upstream`)
})

test("paths under keygate's own endpoints are the upstream's, judged by its routes: never anonymous", async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url))
  const under = OWN_ENDPOINT_PROBES.filter((p) => !p.exact && !p.target.startsWith('/_keygate/auth/'))
  const wrong = (
    await eachLimited(under, 16, async ({ method, target }) => {
      const res = await rawRequest(
        gw.port,
        `${method} ${target} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      )
      // 405: a token segment under verify or app-token, which keygate owns (for other methods)
      const refused = (res.status === 401 && res.json?.code === 'E1000') || res.status === 405
      return refused ? null : `${method} ${target} → ${res.status} ${res.body}`
    })
  ).filter((w) => w !== null)
  assert.deepEqual(wrong, [], 'every one needs credentials (defaultPolicy authenticated) or is refused by keygate')
  assert.deepEqual(
    up.seen.map((s) => `${s.method} ${s.url}`),
    [],
    'the upstream got none of them',
  )
  // with credentials they are the upstream's paths like any other
  const keyed = await rawGet(gw.port, '/_keygate/health/x', { Authorization: `ApiKey ${API_KEY}` })
  assert.equal(keyed.status, 403, `the key's allow.paths do not list it: ${keyed.body}`)
})
