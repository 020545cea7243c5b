import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'
import { freePort, toolGate } from './support/processes.js'
import { NGINX_TEMPLATE, startNginxExample } from './support/example-proxies.js'
import {
  defineProxyMatrix,
  MATRIX_KEY,
  matrixGatewayConfig,
  viaProxy,
  type ProxyUnderTest,
} from './support/proxy-matrix.js'

// nginx (Debian's package; .ci/run installs it) in front of an app, asking keygate through
// auth_request, with the very server block shipped in examples/nginx/.

const TEMPLATE = NGINX_TEMPLATE
const gate = toolGate(['nginx'], 'apt-get install -y nginx')

/** the connections nginx opened to keygate so far */
let keygateConnections = 0

async function setup(): Promise<ProxyUnderTest> {
  const app = await startMediaWikiUpstream()
  const gw = await startTestGateway(matrixGatewayConfig())
  gw.server.on('connection', () => keygateConnections++)
  const port = await freePort()
  await startNginxExample({ port, keygatePort: gw.port, appAddr: app.url.slice('http://'.length) })
  return { port, seen: app.seen }
}

const proxy = gate.skip ? null : await setup()

test(
  'nginx: auth_request keeps its connections to keygate, for allowing and refusing answers alike',
  { skip: gate.skip },
  async () => {
    assert.ok(proxy, 'nginx is running')
    // An allowing answer has no body to skip; a refusal's body has a Content-Length (a chunked one
    // made nginx open a new connection for the next request).
    for (const [headers, status] of [
      [{ Authorization: `ApiKey ${MATRIX_KEY}` }, 200],
      [{ Authorization: 'ApiKey not-a-key' }, 401],
      [{}, 401],
    ] as const) {
      const before = keygateConnections
      for (let i = 0; i < 20; i++) {
        const res = await viaProxy(proxy.port, 'GET', '/app/page', headers)
        assert.equal(res.status, status, res.body.slice(0, 200))
      }
      // one after the other: one kept connection answers them all
      const opened = keygateConnections - before
      assert.ok(opened <= 2, `${opened} connections for 20 requests answered ${status}`)
    }
  },
)
defineProxyMatrix('nginx auth_request', proxy, gate)

test(
  'nginx: headers with underscores are dropped by the example (underscores_in_headers off)',
  { skip: gate.skip },
  async () => {
    const text = await readFile(TEMPLATE, 'utf8')
    assert.match(text, /^\s*underscores_in_headers off;/m, 'the example states the default explicitly')
    assert.doesNotMatch(text, /underscores_in_headers on/, 'never on')
    assert.match(text, /^\s*auth_request \/_keygate_auth;/m, 'auth_request to the internal location')
    assert.match(
      text,
      /proxy_pass http:\/\/keygate_auth\/_keygate\/auth;/,
      'the internal location asks forwardAuth.path',
    )
  },
)

test(
  "nginx: keygate's own token API answers through nginx (no auth_request in front of it)",
  { skip: gate.skip },
  async () => {
    assert.ok(proxy, 'nginx is running')
    const res = await viaProxy(proxy.port, 'GET', '/mws/v1/user-token/verify/0123456789abcdef')
    assert.equal(res.status, 401, `keygate itself answers (no credentials): ${res.status} ${res.body.slice(0, 200)}`)
    assert.equal(res.json?.code, 'E1000', res.body.slice(0, 200))
  },
)

test(
  'nginx: keygate without its store answers 503 E1006 through the example; keygate unreachable stays a 500; the app sees neither',
  { skip: gate.skip },
  async () => {
    const app = await startMediaWikiUpstream()
    const appAddr = app.url.slice('http://'.length)
    // Redis on a port where nothing listens: every request that needs the store is refused (fail
    // closed), a rate-limited key's among them (its count lives in the store)
    const key = 'nginx-storeless-key-0123456789abcdef0123456789'
    const gw = await startTestGateway(
      matrixGatewayConfig({
        store: { redis: `redis://127.0.0.1:${await freePort()}` },
        apiKeys: [{ name: 'limited', key, allow: { paths: ['/app/'] }, rateLimit: { rate: '2/m' } }],
      }),
    )
    const [storeless, keygateDown] = [await freePort(), await freePort()]
    await startNginxExample({ port: storeless, keygatePort: gw.port, appAddr })
    await startNginxExample({ port: keygateDown, keygatePort: await freePort(), appAddr })
    const apiKey = { Authorization: `ApiKey ${key}` }
    const refused = await viaProxy(storeless, 'GET', '/app/page', apiKey)
    assert.equal(refused.status, 503, `${refused.status} ${refused.body.slice(0, 200)}`)
    assert.deepEqual(refused.json, { status: false, code: 'E1006', message: 'Cannot reach the store' })
    const down = await viaProxy(keygateDown, 'GET', '/app/page', apiKey)
    assert.equal(down.status, 500, `${down.status} ${down.body.slice(0, 200)}`)
    assert.equal(app.seen.length, 0, 'the app saw nothing')
  },
)
