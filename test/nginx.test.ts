import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'
import { freePort, makeTempDir, renderTemplate, startProcess, toolGate, waitForPort } from './support/processes.js'
import { defineProxyMatrix, matrixGatewayConfig, viaProxy, type ProxyUnderTest } from './support/proxy-matrix.js'

// nginx (Debian's package; .ci/run installs it) in front of an app, asking keygate through
// auth_request, with the very server block shipped in examples/nginx/.

const TEMPLATE = new URL('../examples/nginx/keygate.conf.template', import.meta.url)
const gate = toolGate(['nginx'], 'apt-get install -y nginx')

async function setup(): Promise<ProxyUnderTest> {
  const app = await startMediaWikiUpstream()
  const gw = await startTestGateway(matrixGatewayConfig())
  const dir = await makeTempDir('nginx')
  const nginxPort = await freePort()
  const server = renderTemplate(await readFile(TEMPLATE, 'utf8'), {
    NGINX_LISTEN: `127.0.0.1:${nginxPort}`,
    KEYGATE_ADDR: `127.0.0.1:${gw.port}`,
    APP_ADDR: app.url.slice('http://'.length),
  })
  await writeFile(join(dir, 'keygate.conf'), server)
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, d))
  // The test's own main config: everything nginx writes stays in the temp dir; one process, so
  // no worker switches to another user (the tests may run as root).
  await writeFile(
    join(dir, 'nginx.conf'),
    [
      'master_process off;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 128; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${join(dir, 'body')};`,
      `  proxy_temp_path ${join(dir, 'proxy')};`,
      `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
      `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
      `  scgi_temp_path ${join(dir, 'scgi')};`,
      `  include ${join(dir, 'keygate.conf')};`,
      '}',
      '',
    ].join('\n'),
  )
  const check = spawnSync('nginx', ['-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    encoding: 'utf8',
  })
  assert.equal(check.status, 0, `nginx -t refused the example: ${check.stderr}`)
  const proc = startProcess('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'])
  await waitForPort(nginxPort, proc)
  return { port: nginxPort, seen: app.seen }
}

const proxy = gate.skip ? null : await setup()
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
