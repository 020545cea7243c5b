import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'
import { freePort, toolGate } from './support/processes.js'
import { CADDYFILE, startCaddyExample } from './support/example-proxies.js'
import { defineProxyMatrix, matrixGatewayConfig, viaProxy, type ProxyUnderTest } from './support/proxy-matrix.js'

// Caddy (Debian's package; .ci/run installs it) in front of an app, asking keygate through
// forward_auth, with the very Caddyfile shipped in examples/caddy/ (ports from the environment).

const gate = toolGate(['caddy'], 'apt-get install -y caddy')

async function setup(): Promise<ProxyUnderTest> {
  const app = await startMediaWikiUpstream()
  const gw = await startTestGateway(matrixGatewayConfig())
  const port = await freePort()
  await startCaddyExample({ port, keygatePort: gw.port, appAddr: app.url.slice('http://'.length) })
  return { port, seen: app.seen }
}

const proxy = gate.skip ? null : await setup()
defineProxyMatrix('Caddy forward_auth', proxy, gate)

test("Caddy: a refusal carries keygate's own answer (JSON error body, request id)", { skip: gate.skip }, async () => {
  assert.ok(proxy, 'caddy is running')
  const none = await viaProxy(proxy.port, 'GET', '/app/page')
  assert.equal(none.status, 401, none.body)
  assert.equal(none.json?.code, 'E1000', none.body)
  assert.ok(none.headers['x-request-id'], "keygate's request id reaches the client")
  const admin = await viaProxy(proxy.port, 'GET', '/public/%2e%2e/admin/users')
  assert.equal(admin.status, 403, admin.body)
  assert.equal(admin.json?.code, 'E1030', admin.body)
})

test(
  'Caddy: the example keeps the directives in order and strips client identity headers first',
  { skip: gate.skip },
  async () => {
    const text = await readFile(CADDYFILE, 'utf8')
    const at = (re: RegExp) => text.search(re)
    assert.ok(at(/^\s*route \{/m) !== -1, 'a route block fixes the order')
    assert.ok(at(/^\s*request_header -X-Auth-\*/m) < at(/^\s*forward_auth /m), 'strip before asking')
    assert.ok(at(/^\s*forward_auth /m) < at(/^\s*reverse_proxy \{\$APP_ADDR/m), 'ask before proxying to the app')
    assert.match(text, /uri \/_keygate\/auth\b/, 'forward_auth asks forwardAuth.path')
    assert.match(
      text,
      /copy_headers X-Auth-User X-Auth-User-Id X-Auth-Email X-Auth-Groups X-Auth-Scheme/,
      'every identity header is copied',
    )
  },
)
