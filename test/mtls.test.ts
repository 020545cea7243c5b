import { after, mock, test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpsRequest } from 'node:https'
import { execFile } from 'node:child_process'
import { startTestGateway, startUpstream } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { issueCert, makeCa, serverCert, type KeyPair } from './support/certs.js'

// Client certificates as an identity (issue 17, item 2): scheme mtls, clients[] entries limited
// like ApiKeys, under tls.clientCert optional and required.

const dir = await makeTempDir('mtls')
const serverCa = makeCa(dir, 'server-ca')
const server = serverCert(dir, serverCa, 'server')
const clientCa = makeCa(dir, 'clients-ca')
const rogueCa = makeCa(dir, 'rogue-ca')
const BILLING = 'spiffe://cluster.local/ns/billing/sa/api'
const client = (name: string, subject: string, san: string[], days = 1, ca = clientCa) =>
  issueCert(dir, ca, name, { subject, san, usage: 'client', days })
const certs = {
  billing: client('billing', '/O=Example/CN=billing-api', [`URI:${BILLING}`]),
  dns: client('dns', '/CN=dnsbot', ['DNS:Bot.Internal.Example']),
  mail: client('mail', '/CN=mailbot', ['email:bot@example.org']),
  reports: client('reports', '/O=Example/CN=reports', []),
  offsite: client('offsite', '/CN=offsite', ['DNS:offsite.example']),
  stranger: client('stranger', '/CN=stranger', ['URI:spiffe://cluster.local/ns/other/sa/api']),
  expired: client('expired', '/CN=billing-api', [`URI:${BILLING}`], -1),
  rogue: client('rogue', '/CN=billing-api', [`URI:${BILLING}`], 1, rogueCa),
}
const upstream = await startUpstream()
const KEY = 'billing-apikey-0123456789-0123456789-abcdef'

const config = (clientCert: 'optional' | 'required', extra: Record<string, unknown> = {}) => ({
  upstream: upstream.url,
  tls: { cert: server.cert, key: server.key, clientCa: clientCa.cert, clientCert, forwardClientCert: true },
  routes: [{ path: '/public/', anonymous: true }],
  apiKeys: [{ name: 'key', key: KEY, allow: { paths: ['/k', '/x'] } }],
  clients: [
    {
      name: 'billing',
      san: BILLING,
      allow: { paths: ['/api/billing/', '/w/api.php'], actionModules: ['opensearch'] },
      user: { name: 'billing service', groups: ['bot'] },
    },
    { name: 'dns', san: 'bot.internal.example', allow: { paths: ['/dns/'] } },
    { name: 'mail', san: 'bot@example.org', allow: { paths: ['/mail/'] } },
    { name: 'reports', subject: 'CN=reports, O=Example', allow: { paths: ['/reports/'] } },
    { name: 'offsite', san: 'offsite.example', cidr: ['10.0.0.0/8'] },
  ],
  ...extra,
})

interface Answer {
  status: number
  body: any
}

function send(port: number, path: string, cert?: KeyPair, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        headers,
        ca: serverCa.certPem,
        cert: cert?.certPem,
        key: cert?.keyPem,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode!, body })
        })
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/** The upstream's view of the last request that reached it after `mark`. */
const reachedSince = (mark: number) => upstream.seen.slice(mark)

test('optional: each matching certificate is its entry, by URI, DNS (any case), e-mail SAN or subject', async () => {
  const gw = await startTestGateway(config('optional'))
  const mark = upstream.seen.length
  const cases: Array<[KeyPair, string, string]> = [
    [certs.billing, '/api/billing/invoices', 'billing service'],
    [certs.dns, '/dns/zone', 'service'],
    [certs.mail, '/mail/box', 'service'],
    [certs.reports, '/reports/q1', 'service'],
  ]
  for (const [cert, path] of cases) assert.equal((await send(gw.port, path, cert)).status, 200, path)
  const seen = reachedSince(mark)
  assert.deepEqual(
    seen.map((s) => [s.url, s.headers['x-auth-user'], s.headers['x-auth-scheme']]),
    cases.map(([, path, user]) => [path, user, 'mtls']),
  )
  const xfcc = String(seen[0]!.headers['x-forwarded-client-cert'])
  assert.match(
    xfcc,
    /^Hash=[0-9a-f]{64};Subject="CN=billing-api,O=Example";URI=spiffe:\/\/cluster\.local\/ns\/billing\/sa\/api$/,
  )
  assert.equal(seen[0]!.headers['x-auth-groups'], 'bot')
})

test("optional: a client certificate's allow lists are enforced like an ApiKey's (paths, Action API modules, CIDR)", async () => {
  const gw = await startTestGateway(config('optional'))
  const mark = upstream.seen.length
  assert.equal((await send(gw.port, '/api/other', certs.billing)).body.code, 'E1004')
  assert.equal((await send(gw.port, '/dns/zone', certs.billing)).body.code, 'E1004')
  assert.equal((await send(gw.port, '/w/api.php?action=opensearch&search=x', certs.billing)).status, 200)
  assert.equal((await send(gw.port, '/w/api.php?action=query&list=allusers', certs.billing)).body.code, 'E1004')
  assert.equal((await send(gw.port, '/anything', certs.offsite)).body.code, 'E1004', 'outside its cidr')
  assert.deepEqual(
    reachedSince(mark).map((s) => s.url),
    ['/w/api.php?action=opensearch&search=x'],
  )
})

test('optional: non-matching → E1004; expired and wrong-CA → E1001; none → the other schemes; nothing reaches the upstream', async () => {
  const gw = await startTestGateway(config('optional'))
  const mark = upstream.seen.length
  const stranger = await send(gw.port, '/api/billing/x', certs.stranger)
  assert.deepEqual([stranger.status, stranger.body.code], [403, 'E1004'])
  // a certificate decides even beside a valid ApiKey: it is not swapped for another credential
  const strangerWithKey = await send(gw.port, '/x', certs.stranger, { authorization: `ApiKey ${KEY}` })
  assert.equal(strangerWithKey.body.code, 'E1004')
  for (const cert of [certs.expired, certs.rogue]) {
    const r = await send(gw.port, '/api/billing/x', cert)
    assert.deepEqual([r.status, r.body.code], [401, 'E1001'])
  }
  assert.equal((await send(gw.port, '/api/billing/x')).body.code, 'E1000', 'no certificate: no credential')
  assert.equal(reachedSince(mark).length, 0)

  // without a certificate: an ApiKey works, anonymous routes work, a client's X-Forwarded-Client-Cert never passes
  const spoof = { 'x-forwarded-client-cert': `Hash=00;URI=${BILLING}` }
  assert.equal((await send(gw.port, '/k', undefined, { authorization: `ApiKey ${KEY}`, ...spoof })).status, 200)
  assert.equal((await send(gw.port, '/public/p', undefined, spoof)).status, 200)
  const seen = reachedSince(mark)
  assert.deepEqual(
    seen.map((s) => [s.url, s.headers['x-auth-scheme'], s.headers['x-forwarded-client-cert']]),
    [
      ['/k', 'apikey', undefined],
      ['/public/p', 'anonymous', undefined],
    ],
  )
})

test('required: missing, expired and wrong-CA certificates never get past the handshake; matching and non-matching are judged', async () => {
  const gw = await startTestGateway(config('required'))
  const mark = upstream.seen.length
  for (const [name, cert] of [
    ['missing', undefined],
    ['expired', certs.expired],
    ['wrong CA', certs.rogue],
  ] as const)
    await assert.rejects(send(gw.port, '/public/p', cert), /certificate|alert|socket hang up|ECONNRESET/i, name)
  assert.equal(reachedSince(mark).length, 0)
  assert.equal((await send(gw.port, '/api/billing/x', certs.billing)).status, 200)
  assert.equal((await send(gw.port, '/api/billing/x', certs.stranger)).body.code, 'E1004')
  assert.equal(
    (await send(gw.port, '/public/p', certs.stranger)).status,
    200,
    'an anonymous route takes anyone with a valid certificate',
  )
})

test('curl --cert: the README line works', async () => {
  const gw = await startTestGateway(config('required'))
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'curl',
      [
        '-sS',
        '--cacert',
        serverCa.cert,
        '--cert',
        certs.billing.cert,
        '--key',
        certs.billing.key,
        `${gw.url}/api/billing/curl`,
      ],
      (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
    ),
  )
  assert.equal(JSON.parse(out).url, '/api/billing/curl')
  assert.equal(upstream.seen.at(-1)!.headers['x-auth-user'], 'billing service')
})

test('config: clients need tls.clientCa; names are shared with api keys; a subject must parse', async () => {
  const { GatewaySchema } = await import('../src/config/schema.js')
  const bad = GatewaySchema.safeParse({ clients: [{ name: 'x', san: 'a', subject: 'CN=a' }] })
  assert.equal(bad.success, false)
  const badSubject = GatewaySchema.safeParse({ clients: [{ name: 'x', subject: 'billing' }] })
  assert.equal(badSubject.success, false)
  const { parseConfigText } = await import('../src/config/load.js')
  const loaded = parseConfigText(`apiKeys: [{name: x, key: ${KEY}}]\nclients: [{name: x, san: a}]\n`, 'gateway.yaml')
  const problems = loaded.ok ? [] : loaded.problems.map((p) => p.path)
  assert.ok(problems.includes('tls.clientCa'), problems.join())
  assert.ok(problems.includes('clients.0.name'), problems.join())
})

test('over HTTP/2 too: the connection certificate is the caller, read once for the connection', async () => {
  const { connect } = await import('node:http2')
  const { TLSSocket } = await import('node:tls')
  const h2gw = await startTestGateway({ ...config('optional'), tls: { ...config('optional').tls, http2: true } })
  // An HTTP/2 request's req.socket is a new proxy for each stream: a cache keyed on it read (and
  // parsed) the certificate again for every request, where HTTP/1.1 reads it once per connection.
  const reads = mock.method(TLSSocket.prototype, 'getPeerX509Certificate')
  after(() => reads.mock.restore())
  const session = connect(h2gw.url, { ca: serverCa.certPem, cert: certs.billing.certPem, key: certs.billing.keyPem })
  const ask = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': path })
      stream.on('response', (h) => resolve(Number(h[':status'])))
      stream.on('error', reject)
      stream.resume()
    })
  const mark = upstream.seen.length
  assert.equal(await ask('/api/billing/h2'), 200)
  assert.equal(await ask('/api/other'), 403)
  assert.equal(await ask('/api/billing/again'), 200)
  session.close()
  assert.equal(reads.mock.callCount(), 1)
  assert.deepEqual(
    reachedSince(mark).map((s) => [s.url, s.headers['x-auth-user'], s.headers['x-auth-scheme']]),
    [
      ['/api/billing/h2', 'billing service', 'mtls'],
      ['/api/billing/again', 'billing service', 'mtls'],
    ],
  )
})
