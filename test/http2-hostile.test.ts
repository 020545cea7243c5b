import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { once } from 'node:events'
import { startTestGateway, startUpstream } from './helpers.js'
import { makeTempDir, toolGate } from './support/processes.js'
import { makeCa, serverCert } from './support/certs.js'
import { startPhpEcho } from './support/php-echo.js'
import { spoofSpellings } from './support/spoof-headers.js'
import { ERROR, getFields, rawH2 } from './support/h2-frames.js'

// HTTP/2 as a hostile client speaks it (issue 17): identity header spellings a PHP upstream folds,
// connection-specific fields Node's client will not send, a body that stops arriving.

const dir = await makeTempDir('h2-hostile')
const ca = makeCa(dir, 'ca')
const cert = serverCert(dir, ca, 'server')
const API_KEY = 'h2-hostile-api-key-0123456789abcdef01234567'
const SERVICE_USER = 'Bot user'
const { skip: noPhp } = toolGate(['php'], 'apt-get install -y php-cli')

const gatewayConfig = (upstream: string, extra: Record<string, unknown> = {}) => ({
  upstream,
  tls: { cert: cert.cert, key: cert.key, http2: true },
  routes: [{ path: '/public/', anonymous: true }],
  // no e-mail: keygate sets no X-Auth-Email for this caller, so a client's copy would stand
  serviceUser: { name: SERVICE_USER, id: 7, groups: ['bot'] },
  apiKeys: [{ name: 'k', key: API_KEY, allow: { paths: ['/bots/'] } }],
  ...extra,
})

function session(url: string): Promise<ClientHttp2Session> {
  const s = h2connect(url, { ca: ca.certPem })
  s.on('error', () => {})
  return once(s, 'remoteSettings').then(() => s)
}

/** The answer to one stream: its status (or the reset code as an error) and its body. */
function answerOf(stream: ClientHttp2Stream): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0
    const chunks: Buffer[] = []
    stream.on('response', (h) => (status = Number(h[':status'])))
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }))
    stream.on('error', reject)
  })
}

/** What PHP read ($_SERVER's HTTP_* entries) holds no spoofed value, and keygate's own identity. */
function assertPhpSawNoSpoof(server: Record<string, string>, value: string, target: string, row: string) {
  for (const [key, v] of Object.entries(server))
    assert.ok(!String(v).includes(value), `${row} ${target}: PHP read ${key}=${v}`)
  if (target === '/bots/page') {
    assert.equal(server.HTTP_X_AUTH_USER, SERVICE_USER, row)
    assert.equal(server.HTTP_X_AUTH_SCHEME, 'apikey', row)
    assert.equal(server.HTTP_X_AUTH_EMAIL, undefined, `${row}: no e-mail is set for this user`)
  } else {
    assert.equal(server.HTTP_X_AUTH_SCHEME, 'anonymous', row)
    assert.equal(server.HTTP_X_AUTH_USER, undefined, row)
  }
}

const targets = [
  ['/public/page', []],
  ['/bots/page', [['authorization', `ApiKey ${API_KEY}`]]],
] as const

test(
  'HTTP/2, Node client: identity header spellings PHP folds never reach PHP ($_SERVER)',
  { skip: noPhp },
  async () => {
    const php = await startPhpEcho()
    const gw = await startTestGateway(gatewayConfig(php.url))
    const s = await session(gw.url)
    // Node's client lower-cases names, and ends the whole session on one that is not a token
    // (white space): those rows go over raw frames below.
    const tokens = spoofSpellings.filter((name) => /^[-!#$%&'*+.^_`|~0-9A-Za-z]+$/.test(name))
    assert.equal(tokens.length, spoofSpellings.length - 4)
    for (const [i, name] of spoofSpellings.entries()) {
      if (!tokens.includes(name)) continue
      const value = `spoof${i}`
      for (const [target, auth] of targets) {
        const res = await answerOf(s.request({ ':path': target, ...Object.fromEntries(auth), [name]: value }))
        assert.equal(res.status, 200, `${JSON.stringify(name)} ${target}: ${res.body}`)
        assertPhpSawNoSpoof(JSON.parse(res.body).server, value, target, JSON.stringify(name))
      }
    }
    s.close()
  },
)

test(
  'HTTP/2, raw frames: the same spellings byte for byte (upper case, spaces) are reset or never reach PHP',
  { skip: noPhp },
  async () => {
    const php = await startPhpEcho()
    const gw = await startTestGateway(gatewayConfig(php.url))
    const h2 = await rawH2(gw.port, ca.certPem)
    let id = 1
    const outcomes = new Set<string>()
    for (const [i, name] of spoofSpellings.entries()) {
      const value = `spoof${i}`
      for (const [target, auth] of targets) {
        h2.request(id, getFields(target, [...auth, [name, value]]))
        const seen = await h2.answer(id)
        assert.ok(!h2.closed && h2.goaway === null, `${JSON.stringify(name)}: the connection was ended`)
        if (seen.reset !== null) {
          // nghttp2 refuses a field name with upper case or white space (RFC 9113 §8.2.1)
          assert.equal(seen.reset, ERROR.PROTOCOL_ERROR, JSON.stringify(name))
          assert.match(name, /[A-Z\s]/, `${JSON.stringify(name)} is a valid field name, yet reset`)
          outcomes.add('reset')
        } else {
          assert.equal(seen.headers[0]?.[0], 0x88, `${JSON.stringify(name)} ${target}: not :status 200`)
          assertPhpSawNoSpoof(JSON.parse(seen.data.toString()).server, value, target, JSON.stringify(name))
          outcomes.add('answered')
        }
        id += 2
      }
    }
    assert.deepEqual([...outcomes].sort(), ['answered', 'reset'], 'both kinds of row were exercised')
    h2.close()
  },
)

test('HTTP/2, raw frames: connection-specific fields are refused and never reach the upstream; the connection goes on', async () => {
  const upstream = await startUpstream()
  const gw = await startTestGateway(gatewayConfig(upstream.url))
  const h2 = await rawH2(gw.port, ca.certPem)
  const refused: Array<[string, string]> = [
    ['connection', 'keep-alive'],
    ['connection', 'close'],
    ['keep-alive', 'timeout=5'],
    ['proxy-connection', 'keep-alive'],
    ['transfer-encoding', 'chunked'],
    ['upgrade', 'h2c'],
    ['te', 'gzip'],
    ['te', 'trailers, deflate'],
  ]
  let id = 1
  for (const field of refused) {
    h2.request(id, getFields(`/public/${field[0]}`, [field]))
    const seen = await h2.answer(id)
    assert.ok(!h2.closed && h2.goaway === null, `${field.join(': ')}: the connection was ended`)
    // a malformed request (RFC 9113 §8.2.2): a stream error, or keygate's 400 if it got that far
    if (seen.reset === null) assert.match(seen.data.toString(), /"code":"E1030"/, field.join(': '))
    else assert.equal(seen.reset, ERROR.PROTOCOL_ERROR, field.join(': '))
    id += 2
  }
  assert.deepEqual(
    upstream.seen.map((r) => r.url),
    [],
    'nothing reached the upstream',
  )

  // te: trailers is the one TE an HTTP/2 request may carry; it is not passed on (hop-by-hop)
  h2.request(id, getFields('/public/te-trailers', [['te', 'trailers']]))
  const ok = await h2.answer(id)
  assert.equal(ok.reset, null)
  assert.equal(ok.headers[0]?.[0], 0x88, ':status 200')
  assert.deepEqual(
    upstream.seen.map((r) => r.url),
    ['/public/te-trailers'],
  )
  assert.equal(upstream.seen[0]!.headers.te, undefined)
  h2.close()
})

test('HTTP/2: a body that stops arriving gets 408 on its stream after limits.bodyIdleTimeout; the session and its other streams go on', async () => {
  const upstream = await startUpstream()
  const gw = await startTestGateway(gatewayConfig(upstream.url, { limits: { bodyIdleTimeout: '500ms' } }))
  const s = await session(gw.url)
  const stalled = s.request({ ':method': 'POST', ':path': '/public/upload', 'content-length': '1000' })
  stalled.write('x'.repeat(100))
  const stalledAnswer = answerOf(stalled).catch((err: Error) => err)
  // another stream on the same session is answered while the first one waits
  assert.equal((await answerOf(s.request({ ':path': '/public/other' }))).status, 200)
  const cut = await Promise.race([
    stalledAnswer,
    new Promise<Error>((resolve) => setTimeout(() => resolve(new Error('no answer within 5 s')), 5000).unref()),
  ])
  if (cut instanceof Error) throw cut
  assert.equal(cut.status, 408)
  assert.match(cut.body, /"code":"E1030"/)
  assert.equal(s.closed || s.destroyed, false, 'the session is still open')
  assert.equal((await answerOf(s.request({ ':path': '/public/after' }))).status, 200)
  assert.deepEqual(
    upstream.seen.map((r) => r.url),
    ['/public/other', '/public/after'],
    'the cut body never reached the upstream whole',
  )
  s.close()
})
