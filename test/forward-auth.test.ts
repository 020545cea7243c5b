import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rawRequest, startTestGateway, type RawResponse } from './helpers.js'
import { eachLimited, OWN_ENDPOINT_PROBES } from './support/own-endpoints.js'

// The decision endpoint, driven by plain HTTP requests shaped exactly as each proxy sends them:
// nginx auth_request (X-Original-URI/-Method, body off), Traefik forwardAuth (GET + X-Forwarded-*),
// Caddy forward_auth (GET, the original query appended to the auth URI, X-Forwarded-Uri/-Method)
// and Envoy ext_authz over HTTP (path_prefix + the original path, original method, Content-Length: 0).

const KEY = 'forward-auth-key-0123456789abcdef0123456789'
const OFFICE_KEY = 'forward-auth-office-key-0123456789abcdef0123'
const SERVICE_USER = 'ChatBot service user'

const config = (extra: Record<string, unknown> = {}) => ({
  upstream: 'demo',
  serviceUser: { name: SERVICE_USER, id: 2, email: 'bot@example.org', groups: ['bot'] },
  apiKeys: [
    { name: 'chatbot', key: KEY, allow: { paths: ['/app/'], actionModules: ['opensearch', 'query+search'] } },
    // only from the documentation network: reachable only when a trusted proxy vouches for the client
    { name: 'office', key: OFFICE_KEY, cidr: ['203.0.113.0/24'], allow: { paths: ['/app/'] } },
  ],
  routes: [
    { path: '/public/', methods: ['GET', 'HEAD'], anonymous: true },
    { path: '/admin/', require: { groups: ['sysop'] } },
  ],
  ...extra,
})

const apiKey = { Authorization: `ApiKey ${KEY}` }

/** One request as bytes: the path is sent exactly as given. */
function send(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string>,
  opts: { localAddress?: string } = {},
): Promise<RawResponse> {
  const lines = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  return rawRequest(port, `${method} ${target} HTTP/1.1\r\n${lines}Connection: close\r\n\r\n`, opts)
}

/** How each proxy describes "METHOD URI with these client headers" to the decision endpoint. */
interface Shape {
  readonly name: string
  ask(
    port: number,
    method: string,
    uri: string,
    client: Record<string, string>,
    opts?: { localAddress?: string },
  ): Promise<RawResponse>
}

const nginx: Shape = {
  name: 'nginx auth_request',
  // the subrequest: GET to the internal location, every client header kept, X-Original-* set, body off
  ask: (port, method, uri, client, opts) =>
    send(
      port,
      'GET',
      '/_keygate/auth',
      {
        Host: `127.0.0.1:${port}`,
        ...client,
        'X-Original-URI': uri,
        'X-Original-Method': method,
        'X-Forwarded-For': '198.51.100.20',
      },
      opts,
    ),
}

const traefik: Shape = {
  name: 'Traefik forwardAuth',
  // Traefik: GET to the address, client headers copied, the request described by X-Forwarded-*
  ask: (port, method, uri, client, opts) =>
    send(
      port,
      'GET',
      '/_keygate/auth',
      {
        Host: `127.0.0.1:${port}`,
        ...client,
        'X-Forwarded-Method': method,
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'wiki.example.org',
        'X-Forwarded-Uri': uri,
        'X-Forwarded-For': '198.51.100.20',
      },
      opts,
    ),
}

const caddy: Shape = {
  name: 'Caddy forward_auth',
  // Caddy rewrites the path to the auth URI and keeps the original query string
  ask: (port, method, uri, client, opts) => {
    const q = uri.indexOf('?')
    return send(
      port,
      'GET',
      `/_keygate/auth${q === -1 ? '' : uri.slice(q)}`,
      {
        Host: 'wiki.example.org',
        ...client,
        'X-Forwarded-Method': method,
        'X-Forwarded-Uri': uri,
        'X-Forwarded-For': '198.51.100.20',
        'X-Forwarded-Proto': 'http',
        'X-Forwarded-Host': 'wiki.example.org',
      },
      opts,
    )
  },
}

const envoy: Shape = {
  name: 'Envoy ext_authz (HTTP)',
  // Envoy: the original method, path_prefix + the original path and query, allowed headers only, no body
  ask: (port, method, uri, client, opts) =>
    send(
      port,
      method,
      `/_keygate/auth${uri}`,
      {
        Host: 'wiki.example.org',
        ...client,
        'Content-Length': '0',
        'X-Forwarded-Proto': 'https',
        'X-Envoy-Expected-Rq-Timeout-Ms': '1000',
      },
      opts,
    ),
}

const shapes = [nginx, traefik, caddy, envoy]

const identityOf = (res: RawResponse) => ({
  user: res.headers['x-auth-user'],
  id: res.headers['x-auth-user-id'],
  email: res.headers['x-auth-email'],
  groups: res.headers['x-auth-groups'],
  scheme: res.headers['x-auth-scheme'],
})

for (const shape of shapes) {
  test(`${shape.name}: allowed → 200 with the identity on the response; anonymous route → scheme anonymous only`, async () => {
    const gw = await startTestGateway(config())
    const ok = await shape.ask(gw.port, 'GET', '/app/page?x=1', apiKey)
    assert.equal(ok.status, 200, ok.body)
    assert.deepEqual(identityOf(ok), {
      user: SERVICE_USER,
      id: '2',
      email: 'bot@example.org',
      groups: 'bot',
      scheme: 'apikey',
    })
    assert.ok(ok.headers['x-request-id'], 'every answer carries a request id')
    assert.equal(ok.headers['content-length'], '0', 'no body: nginx keeps its connection only then')
    assert.equal(ok.body, '')

    const anon = await shape.ask(gw.port, 'GET', '/public/page', {})
    assert.equal(anon.status, 200, anon.body)
    assert.deepEqual(identityOf(anon), {
      user: undefined,
      id: undefined,
      email: undefined,
      groups: undefined,
      scheme: 'anonymous',
    })

    // a client's own identity headers are not echoed back as if keygate had set them
    const spoof = await shape.ask(gw.port, 'GET', '/public/page', { 'X-Auth-User': 'admin', 'X-Auth-Groups': 'sysop' })
    assert.equal(spoof.status, 200, spoof.body)
    assert.equal(spoof.headers['x-auth-user'], undefined, 'client X-Auth-User echoed on the decision')
    assert.equal(spoof.headers['x-auth-groups'], undefined, 'client X-Auth-Groups echoed on the decision')
  })

  test(`${shape.name}: no credentials → 401 with WWW-Authenticate; bad key → 401; refused → 403`, async () => {
    const gw = await startTestGateway(config())
    const none = await shape.ask(gw.port, 'GET', '/app/page', {})
    assert.equal(none.status, 401, none.body)
    assert.equal(none.json?.code, 'E1000', none.body)
    assert.match(none.headers['www-authenticate'] ?? '', /ApiKey realm="keygate"/, 'a 401 names the schemes it accepts')
    assert.equal(none.headers['x-auth-user'], undefined, 'a refusal carries no identity')

    const bad = await shape.ask(gw.port, 'GET', '/app/page', {
      Authorization: 'ApiKey not-a-key-0123456789abcdef0123456789',
    })
    assert.equal(bad.status, 401, bad.body)
    assert.equal(bad.json?.code, 'E1001', bad.body)
    assert.ok(bad.headers['www-authenticate'], `a 401 always challenges: ${JSON.stringify(bad.headers)}`)

    const admin = await shape.ask(gw.port, 'GET', '/admin/users', apiKey)
    assert.equal(admin.status, 403, admin.body)
    assert.equal(admin.json?.code, 'E1004', admin.body)
    assert.equal(admin.headers['x-auth-user'], undefined, 'a refusal carries no identity')

    const unlisted = await shape.ask(gw.port, 'GET', '/other/page', apiKey)
    assert.equal(unlisted.status, 403, unlisted.body)

    // the route's methods come from the original request, not from the auth request's own method
    const postPublic = await shape.ask(gw.port, 'POST', '/public/page', {})
    assert.equal(postPublic.status, 401, `POST on a GET-only anonymous route needs credentials: ${postPublic.body}`)
  })

  test(`${shape.name}: Action API modules are judged from the original query`, async () => {
    const gw = await startTestGateway(config())
    const search = await shape.ask(gw.port, 'GET', '/w/api.php?action=opensearch&search=Main', apiKey)
    assert.equal(search.status, 200, search.body)
    assert.equal(search.headers['x-auth-scheme'], 'apikey')
    const query = await shape.ask(gw.port, 'GET', '/w/api.php?action=query&list=search&srsearch=x', apiKey)
    assert.equal(query.status, 200, query.body)
    const edit = await shape.ask(gw.port, 'GET', '/w/api.php?action=edit&title=X&text=Y', apiKey)
    assert.equal(edit.status, 403, edit.body)
    assert.equal(edit.json?.code, 'E1004', edit.body)
    const users = await shape.ask(gw.port, 'GET', '/w/api.php?action=query&list=search%7Callusers', apiKey)
    assert.equal(users.status, 403, users.body)
    // 400 (ambiguous) is answered as 403: nginx turns anything but 401/403 into a 500
    const twice = await shape.ask(gw.port, 'GET', '/w/api.php?action=opensearch&action=edit', apiKey)
    assert.equal(twice.status, 403, twice.body)
    assert.equal(twice.json?.code, 'E1030', twice.body)
  })

  test(`${shape.name}: a POST to the Action API by a module-limited key is refused, the body being invisible`, async () => {
    const gw = await startTestGateway(config())
    for (const uri of ['/w/api.php', '/w/api.php?action=opensearch&search=Main']) {
      const res = await shape.ask(gw.port, 'POST', uri, {
        ...apiKey,
        'Content-Type': 'application/x-www-form-urlencoded',
      })
      assert.equal(res.status, 403, `${uri}: ${res.body}`)
      assert.equal(res.json?.code, 'E1004', res.body)
      assert.match(res.json?.message ?? '', /cannot see a POST body/i, `the message says why: ${res.body}`)
    }
    // a POST elsewhere is judged like any request
    const other = await shape.ask(gw.port, 'POST', '/app/form', apiKey)
    assert.equal(other.status, 200, other.body)
  })

  test(`${shape.name}: forwardAuth.actionPostBodies: queryOnly judges a POST by its query`, async () => {
    const gw = await startTestGateway(config({ forwardAuth: { actionPostBodies: 'queryOnly' } }))
    const search = await shape.ask(gw.port, 'POST', '/w/api.php?action=opensearch&search=Main', apiKey)
    assert.equal(search.status, 200, search.body)
    const edit = await shape.ask(gw.port, 'POST', '/w/api.php?action=edit', apiKey)
    assert.equal(edit.status, 403, edit.body)
    const bare = await shape.ask(gw.port, 'POST', '/w/api.php', apiKey)
    assert.equal(bare.status, 403, `no action in the query is help, not allowed: ${bare.body}`)
  })
}

// Hostile original URIs, as nginx's $request_uri passes them (raw, undecoded).
const hostile = [
  '/public/%2e%2e/admin/users',
  '/public/%2E%2E/admin/users',
  '/public/../admin/users',
  '/public/./../admin/users',
  '/public/..%2fadmin/users',
  '/public%2f..%2fadmin/users',
  '/public/%5c..%5cadmin/users',
  '/public/..\\admin/users',
  '/public/%252e%252e/admin/users',
  '/public/%25%32%45%25%32%45/admin/users',
  '/public/x%00.html',
  '/public/%zz',
  '/public/;/../admin/users',
  '/public/%c0%ae%c0%ae/admin/users',
  'public/page',
  '//evil.example/admin/users',
]

for (const shape of [nginx, traefik, caddy]) {
  test(`${shape.name}: hostile original URIs are refused with 403 (never 400, never allowed)`, async () => {
    const gw = await startTestGateway(config())
    for (const uri of hostile) {
      for (const headers of [{}, apiKey]) {
        const res = await shape.ask(gw.port, 'GET', uri, headers)
        // a same-origin '//evil…' normalises to /evil.example/…: needs credentials, so 401/403 — never 200
        if (uri.startsWith('//')) {
          assert.ok(res.status === 401 || res.status === 403, `${uri}: ${res.status} ${res.body}`)
          continue
        }
        assert.equal(
          res.status,
          403,
          `${uri} (${Object.keys(headers).length ? 'ApiKey' : 'anonymous'}): ${res.status} ${res.body}`,
        )
        assert.equal(res.json?.code, 'E1030', `${uri}: ${res.body}`)
        assert.equal(res.headers['x-auth-user'], undefined, `${uri}: no identity on a refusal`)
      }
    }
  })
}

test('Envoy ext_authz: a hostile original path after the prefix is refused, never allowed', async () => {
  const gw = await startTestGateway(config())
  for (const uri of hostile.filter((u) => u.startsWith('/') && !u.startsWith('//'))) {
    const res = await envoy.ask(gw.port, 'GET', uri, {})
    // Envoy hands the authz answer to the client as it is, so the 400 that the endpoint's own path
    // normalisation gives here is honest; what matters is that nothing passes and no identity is set.
    assert.ok(res.status === 400 || res.status === 403, `${uri}: ${res.status} ${res.body}`)
    assert.equal(res.headers['x-auth-user'], undefined, `${uri}: no identity on a refusal`)
    assert.equal(res.json?.code, 'E1030', `${uri}: ${res.body}`)
  }
})

test('X-Forwarded-For is believed only from trustedProxies', async () => {
  const fromOffice = { Authorization: `ApiKey ${OFFICE_KEY}`, 'X-Forwarded-For': '203.0.113.7' }
  const untrusting = await startTestGateway(config())
  for (const shape of [nginx, traefik, caddy, envoy]) {
    const res = await shape.ask(untrusting.port, 'GET', '/app/page', fromOffice)
    assert.equal(res.status, 403, `${shape.name}: a forged X-Forwarded-For from an untrusted peer: ${res.body}`)
  }

  const trusting = await startTestGateway(config({ trustedProxies: ['127.0.0.1/32'] }))
  const viaProxy = (xff: string, localAddress = '127.0.0.1') =>
    send(
      trusting.port,
      'GET',
      '/_keygate/auth',
      {
        Host: 'x',
        Authorization: `ApiKey ${OFFICE_KEY}`,
        'X-Original-URI': '/app/page',
        'X-Original-Method': 'GET',
        'X-Forwarded-For': xff,
      },
      { localAddress },
    )
  const ok = await viaProxy('203.0.113.7')
  assert.equal(ok.status, 200, `the trusted proxy vouches for 203.0.113.7: ${ok.body}`)
  assert.equal(ok.headers['x-auth-user'], SERVICE_USER)
  // the proxy appended the real client to a forged list: the right-most untrusted address counts
  const forged = await viaProxy('203.0.113.7, 198.51.100.9')
  assert.equal(forged.status, 403, forged.body)
  // a peer outside trustedProxies is not believed even by the trusting gateway
  const other = await viaProxy('203.0.113.7', '127.0.0.2')
  assert.equal(other.status, 403, `127.0.0.2 is not a trusted proxy: ${other.body}`)
  // X-Real-IP from a trusted proxy stands in when X-Forwarded-For is absent
  const realIp = await send(trusting.port, 'GET', '/_keygate/auth', {
    Host: 'x',
    Authorization: `ApiKey ${OFFICE_KEY}`,
    'X-Original-URI': '/app/page',
    'X-Real-IP': '203.0.113.8',
  })
  assert.equal(realIp.status, 200, realIp.body)
})

test('the decision endpoint answers any method, is matched without its query, and only at its own path', async () => {
  const gw = await startTestGateway(config())
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
    const res = await send(gw.port, method, '/_keygate/auth?rd=https%3A%2F%2Fwiki.example.org', {
      Host: 'x',
      ...apiKey,
      'X-Original-URI': '/app/page',
      'X-Original-Method': 'GET',
      'Content-Length': '0',
    })
    assert.equal(res.status, 200, `${method}: ${res.body}`)
    assert.equal(res.headers['x-auth-user'], SERVICE_USER, method)
  }
  const custom = await startTestGateway(config({ forwardAuth: { path: '/auth/check' } }))
  const moved = await send(custom.port, 'GET', '/auth/check', { Host: 'x', ...apiKey, 'X-Original-URI': '/app/page' })
  assert.equal(moved.status, 200, moved.body)
  const old = await send(custom.port, 'GET', '/_keygate/auth', { Host: 'x', ...apiKey, 'X-Original-URI': '/admin/x' })
  assert.equal(old.status, 403, `the old path is just a path now: ${old.body}`)
  // a longer path that only starts with the same letters is not the endpoint
  const near = await send(gw.port, 'GET', '/_keygate/authx', { Host: 'x', 'X-Original-URI': '/public/page' })
  assert.equal(near.status, 401, near.body)
})

// A client can add headers the proxy does not overwrite. Traefik and Caddy describe the request only
// with X-Forwarded-Uri/-Method and pass every other client header on; nginx sets X-Original-* and
// passes X-Forwarded-* through. The decision must rest on the calling proxy's pair, never on a mix.
const smuggled: Array<{ name: string; shape: Shape; method: string; uri: string; client: Record<string, string> }> = [
  {
    name: 'Traefik: client X-Original-URI over X-Forwarded-Uri',
    shape: traefik,
    method: 'GET',
    uri: '/admin/users',
    client: { ...apiKey, 'X-Original-URI': '/app/page' },
  },
  {
    name: 'Caddy: client X-Original-URI over X-Forwarded-Uri',
    shape: caddy,
    method: 'GET',
    uri: '/admin/users',
    client: { ...apiKey, 'X-Original-URI': '/app/page' },
  },
  {
    name: 'Traefik: client X-Original-Method: GET on a POST',
    shape: traefik,
    method: 'POST',
    uri: '/w/api.php?action=opensearch',
    client: { ...apiKey, 'X-Original-Method': 'GET' },
  },
  {
    name: 'Envoy: client X-Original-Method: GET on a POST',
    shape: envoy,
    method: 'POST',
    uri: '/w/api.php?action=opensearch',
    client: { ...apiKey, 'X-Original-Method': 'GET' },
  },
  {
    name: 'Traefik: client X-Original-URI and X-Original-Method matching the URI, GET on a POST',
    shape: traefik,
    method: 'POST',
    uri: '/w/api.php?action=opensearch',
    client: { ...apiKey, 'X-Original-URI': '/w/api.php?action=opensearch', 'X-Original-Method': 'GET' },
  },
]

test('nginx: client X-Forwarded-Uri/-Method beside X-Original-* change nothing', async () => {
  const gw = await startTestGateway(config())
  const post = await nginx.ask(gw.port, 'POST', '/w/api.php?action=opensearch', {
    ...apiKey,
    'X-Forwarded-Method': 'GET',
    'X-Forwarded-Uri': '/w/api.php?action=opensearch',
  })
  assert.equal(post.status, 403, post.body)
  const admin = await nginx.ask(gw.port, 'GET', '/admin/users', { ...apiKey, 'X-Forwarded-Uri': '/app/page' })
  assert.equal(admin.status, 403, admin.body)
})

for (const c of smuggled) {
  test(`a client-added header cannot change what is decided (${c.name})`, async () => {
    const gw = await startTestGateway(config())
    const res = await c.shape.ask(gw.port, c.method, c.uri, c.client)
    assert.equal(res.status, 403, `${c.name}: ${res.status} ${res.body}`)
  })
}

test("a decision is about the app's path: keygate's own endpoint paths (and all under them) are never anonymous", async () => {
  const gw = await startTestGateway(config())
  for (const shape of shapes) {
    const wrong = (
      await eachLimited(OWN_ENDPOINT_PROBES, 16, async ({ method, target }) => {
        const res = await shape.ask(gw.port, method, target, {})
        const ok = res.status === 401 && res.json?.code === 'E1000' && res.headers['x-auth-scheme'] === undefined
        return ok ? null : `${method} ${target} → ${res.status} ${res.headers['x-auth-scheme'] ?? ''} ${res.body}`
      })
    ).filter((w) => w !== null)
    assert.deepEqual(wrong, [], `${shape.name}: every one needs credentials`)
  }
  // the reproduction as reported: nginx describing GET /api/logout/secret
  const logout = await nginx.ask(gw.port, 'GET', '/api/logout/secret', {})
  assert.equal(logout.status, 401, logout.body)
  // the app's own routes still decide there: an anonymous route covering the same path passes
  const open = await startTestGateway(config({ routes: [{ path: '/_keygate/', anonymous: true }] }))
  const health = await nginx.ask(open.port, 'GET', '/_keygate/health/x', {})
  assert.equal(health.status, 200, health.body)
})
