import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'
import { freePort, makeTempDir, startProcess, toolGate, waitForPort } from './support/processes.js'
import { defineProxyMatrix, matrixGatewayConfig, viaProxy, type ProxyUnderTest } from './support/proxy-matrix.js'

// Caddy (Debian's package; .ci/run installs it) in front of an app, asking keygate through
// forward_auth, with the very Caddyfile shipped in examples/caddy/ (ports from the environment).

const CADDYFILE = fileURLToPath(new URL('../examples/caddy/Caddyfile', import.meta.url))
const gate = toolGate(['caddy'], 'apt-get install -y caddy')

async function setup(): Promise<ProxyUnderTest> {
  const app = await startMediaWikiUpstream()
  const gw = await startTestGateway(matrixGatewayConfig())
  const dir = await makeTempDir('caddy')
  const port = await freePort()
  // Caddy keeps data and autosaved config under HOME / XDG dirs: all of them in the temp dir.
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    CADDY_PORT: String(port),
    CADDY_BIND: '127.0.0.1',
    KEYGATE_ADDR: `127.0.0.1:${gw.port}`,
    APP_ADDR: app.url.slice('http://'.length),
  }
  const check = spawnSync('caddy', ['validate', '--config', CADDYFILE, '--adapter', 'caddyfile'], {
    env,
    encoding: 'utf8',
  })
  assert.equal(check.status, 0, `caddy validate refused the example: ${check.stderr.slice(-2000)}`)
  const proc = startProcess('caddy', ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], { env, cwd: dir })
  await waitForPort(port, proc)
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
    assert.ok(at(/^\s*forward_auth /m) < at(/^\s*reverse_proxy /m), 'ask before proxying')
    assert.match(text, /uri \/_keygate\/auth\b/, 'forward_auth asks forwardAuth.path')
    assert.match(
      text,
      /copy_headers X-Auth-User X-Auth-User-Id X-Auth-Email X-Auth-Groups X-Auth-Scheme/,
      'every identity header is copied',
    )
  },
)
