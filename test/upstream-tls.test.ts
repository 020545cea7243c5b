import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rawGet, startTestGateway } from './helpers.js'
import { freePort, makeTempDir, toolGate } from './support/processes.js'
import { startNginx } from './support/example-proxies.js'
import { issueCert, makeCa } from './support/certs.js'

// TLS to the upstream (issue 17, item 3): a private CA, a client certificate for mutual TLS and
// the SNI name, globally and per route, against real nginx with ssl_verify_client on.

const gate = toolGate(['nginx'], 'apt-get install -y nginx')

async function startMutualTlsNginx() {
  const dir = await makeTempDir('upstream-tls')
  const upstreamCa = makeCa(dir, 'upstream-ca')
  const site = issueCert(dir, upstreamCa, 'wiki', {
    subject: '/CN=wiki.internal',
    san: ['DNS:wiki.internal'],
    usage: 'server',
  })
  const clientCa = makeCa(dir, 'keygate-ca')
  const keygate = issueCert(dir, clientCa, 'keygate', { subject: '/O=Example/CN=keygate', usage: 'client' })
  const otherCa = makeCa(dir, 'other-ca')
  const port = await freePort()
  await startNginx(
    dir,
    [
      'server {',
      `  listen 127.0.0.1:${port} ssl;`,
      '  server_name wiki.internal;',
      `  ssl_certificate ${site.cert};`,
      `  ssl_certificate_key ${site.key};`,
      `  ssl_client_certificate ${clientCa.cert};`,
      '  ssl_verify_client on;',
      '  default_type text/plain;',
      '  location / { return 200 "sni=$ssl_server_name dn=$ssl_client_s_dn uri=$request_uri user=$http_x_auth_user"; }',
      '}',
    ],
    port,
  )
  return { url: `https://127.0.0.1:${port}`, upstreamCa, keygate, otherCa }
}

const nginx = gate.skip ? null : await startMutualTlsNginx()

test(
  'upstreamTls: private CA, client certificate and SNI name against nginx with ssl_verify_client on; per route too',
  { skip: gate.skip },
  async () => {
    const { url, upstreamCa, keygate, otherCa } = nginx!
    const mutual = { ca: upstreamCa.cert, cert: keygate.cert, key: keygate.key, servername: 'wiki.internal' }
    const gw = await startTestGateway({
      upstream: url,
      defaultPolicy: 'anonymous',
      upstreamTls: mutual,
      routes: [
        // no client certificate: nginx refuses the request (400), keygate passes its answer on
        { path: '/no-cert/', anonymous: true, upstreamTls: { ca: upstreamCa.cert, servername: 'wiki.internal' } },
        // a CA that did not sign nginx's certificate: the handshake fails, E1032
        { path: '/wrong-ca/', anonymous: true, upstreamTls: { ...mutual, ca: otherCa.cert } },
        // the right CA, but a name the certificate is not for: E1032
        { path: '/wrong-name/', anonymous: true, upstreamTls: { ...mutual, servername: 'other.internal' } },
      ],
    })
    const ok = await rawGet(gw.port, '/wiki/%7eMain?x=1')
    assert.equal(ok.status, 200, ok.body)
    assert.equal(ok.body, 'sni=wiki.internal dn=CN=keygate,O=Example uri=/wiki/~Main?x=1 user=')

    const noCert = await rawGet(gw.port, '/no-cert/x')
    assert.equal(noCert.status, 400)
    assert.match(noCert.body, /No required SSL certificate was sent/)
    for (const path of ['/wrong-ca/x', '/wrong-name/x']) {
      const r = await rawGet(gw.port, path)
      assert.deepEqual([r.status, r.json?.code], [502, 'E1032'], path)
    }
  },
)
