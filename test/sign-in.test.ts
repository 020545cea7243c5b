import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestGateway, startUpstream } from './helpers.js'
import { ALICE_PW, JWT_SECRET, STORE_KINDS, login, makeUsers, redisPrefixes } from './support/users.js'
import { BROWSER_ACCEPT, Jar, cookieAttributes, hiddenField, request, submitForm } from './support/sign-in.js'
import { safeReturnAddress } from '../src/signin/return-address.js'

// The sign-in page, its password form, sign-out and the redirect of page loads (issue 14, CONTRACT §7),
// over real sockets against a real upstream, on both stores.

const users = await makeUsers()
const prefixes = redisPrefixes('sign-in')

function config(
  upstream: string,
  store: Record<string, unknown>,
  signIn: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  return {
    upstream,
    ...store,
    trustedProxies: ['127.0.0.2/32'],
    secrets: { jwt: { secret: JWT_SECRET } },
    users,
    tokens: { session: { ttl: '1h', remember: '7d' } },
    routes: [
      { path: '/public', anonymous: true },
      { path: '/api/data', signIn: false },
    ],
    signIn: { appName: 'Team Wiki', allowedRedirects: ['app.example.org', '.corp.example'], ...signIn },
    ...extra,
  }
}

async function setup(
  kind: (typeof STORE_KINDS)[number],
  signIn: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  const up = await startUpstream()
  const gw = await startTestGateway(config(up.url, prefixes.store(kind), signIn, extra))
  return { up, gw }
}

/** Signs alice in through the form; the jar then holds her session. */
async function signInAlice(port: number, jar: Jar, rd = '/wiki/Main_Page', fields: Record<string, string> = {}) {
  const res = jar.take(
    await submitForm(port, jar, `/_keygate/sign-in?rd=${encodeURIComponent(rd)}`, {
      username: 'alice',
      password: ALICE_PW,
      ...fields,
    }),
  )
  assert.equal(res.status, 302, res.body)
  return res
}

const sessionOf = (jar: Jar) => jar.cookies.get('keygate_session') ?? jar.cookies.get('__Host-keygate_session')

test('the page: server-rendered, labelled, strict CSP, no framing, no caching, a CSRF cookie; HEAD has no body', async () => {
  const { gw } = await setup('memory')
  const res = await request(gw.port, 'GET', '/_keygate/sign-in?rd=%2Fwiki%2FMain_Page', { Accept: BROWSER_ACCEPT })
  assert.equal(res.status, 200)
  assert.match(res.headers['content-type']!, /^text\/html; charset=utf-8/)
  const csp = res.headers['content-security-policy']!
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.doesNotMatch(csp, /script-src|unsafe-inline/)
  assert.equal(res.headers['x-frame-options'], 'DENY')
  assert.equal(res.headers['cache-control'], 'no-store')
  assert.equal(res.body.match(/<style>/g)?.length, 1, 'one CSS block')
  assert.doesNotMatch(res.body, /<script/i)
  assert.match(res.body, /<h1>Sign in to Team Wiki<\/h1>/)
  assert.match(res.body, /<label for="username">Username<\/label>/)
  assert.match(res.body, /<input type="text" id="username" name="username" autocomplete="username"/)
  assert.match(res.body, /<label for="password">Password<\/label>/)
  assert.equal(hiddenField(res.body, 'rd'), '/wiki/Main_Page')
  const csrf = res.setCookies.map(cookieAttributes).find((c) => c.name === 'keygate_csrf')
  assert.ok(csrf, 'a CSRF cookie')
  assert.ok(csrf.attributes.has('httponly'))
  const head = await request(gw.port, 'HEAD', '/_keygate/sign-in', { Accept: BROWSER_ACCEPT })
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
})

for (const kind of STORE_KINDS) {
  test(`${kind}: the password form signs in (302 to rd), the cookie is HttpOnly/SameSite=Lax/Path=/, and the upstream sees the person`, async () => {
    const { up, gw } = await setup(kind)
    const jar = new Jar()
    const res = await signInAlice(gw.port, jar, '/wiki/Main_Page?action=history')
    assert.equal(res.headers.location, '/wiki/Main_Page?action=history')
    const cookie = res.setCookies.map(cookieAttributes).find((c) => c.name === 'keygate_session')!
    assert.ok(cookie, res.setCookies.join('\n'))
    assert.ok(cookie.attributes.has('httponly'))
    assert.equal(cookie.attributes.get('samesite'), 'Lax')
    assert.equal(cookie.attributes.get('path'), '/')
    assert.ok(!cookie.attributes.has('secure'), 'plain http: no Secure (auto)')
    const page = await request(gw.port, 'GET', '/wiki/Main_Page', { Accept: BROWSER_ACCEPT, ...jar.header() })
    assert.equal(page.status, 200, page.body)
    const seen = up.seen.at(-1)!
    assert.equal(seen.headers['x-auth-user'], 'alice')
    assert.equal(seen.headers['x-auth-scheme'], 'session')
    assert.doesNotMatch(String(seen.headers.cookie ?? ''), /keygate_session/, 'the session cookie stays with keygate')
  })

  test(`${kind}: a wrong password and an unknown user get the same page and status; loginLimit locks out (429 page)`, async () => {
    const { gw } = await setup(kind, {}, { loginLimit: { perUser: 3, perIp: 100, window: '1m' } })
    const wrong = await submitForm(gw.port, new Jar(), '/_keygate/sign-in', { username: 'alice', password: 'nope' })
    const unknown = await submitForm(gw.port, new Jar(), '/_keygate/sign-in', { username: 'zed', password: 'nope' })
    assert.equal(wrong.status, 401)
    assert.equal(unknown.status, 401)
    const normalise = (body: string) => body.replace(/value="[^"]*"/g, 'value=""')
    assert.equal(normalise(wrong.body), normalise(unknown.body))
    assert.match(wrong.body, /<p class="error" id="form-error" role="alert">Incorrect username or password.<\/p>/)
    assert.match(wrong.body, /aria-describedby="form-error"/)
    await submitForm(gw.port, new Jar(), '/_keygate/sign-in', { username: 'alice', password: 'nope' })
    await submitForm(gw.port, new Jar(), '/_keygate/sign-in', { username: 'alice', password: 'nope' })
    const locked = await submitForm(gw.port, new Jar(), '/_keygate/sign-in', { username: 'alice', password: ALICE_PW })
    assert.equal(locked.status, 429, 'the right password during the lockout is refused too')
    assert.ok(Number(locked.headers['retry-after']) > 0)
    assert.match(locked.body, /Too many sign-in attempts/)
    assert.equal(locked.setCookies.filter((c) => c.includes('keygate_session=')).length, 0)
  })

  test(`${kind}: CSRF — no cookie, a forged token, another browser's token, a foreign Origin, cross-site fetch metadata are refused; Origin: null with a good token is not`, async () => {
    const { gw } = await setup(kind)
    const jar = new Jar()
    const page = jar.take(await request(gw.port, 'GET', '/_keygate/sign-in', { Accept: BROWSER_ACCEPT }))
    const token = hiddenField(page.body, 'csrf')
    const other = new Jar()
    const otherToken = hiddenField(other.take(await request(gw.port, 'GET', '/_keygate/sign-in')).body, 'csrf')
    const post = (fields: Record<string, string>, headers: Record<string, string>) =>
      request(
        gw.port,
        'POST',
        '/_keygate/sign-in',
        { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        new URLSearchParams({ username: 'alice', password: ALICE_PW, rd: '/', ...fields }).toString(),
      )
    const cases: Array<[string, Record<string, string>, Record<string, string>]> = [
      ['no cookie', { csrf: token }, {}],
      ['no token', {}, jar.header()],
      ['forged token', { csrf: 'A'.repeat(43) }, jar.header()],
      ["another browser's token", { csrf: otherToken }, jar.header()],
      ['foreign Origin', { csrf: token }, { ...jar.header(), Origin: 'https://evil.example' }],
      ['Sec-Fetch-Site: cross-site', { csrf: token }, { ...jar.header(), 'Sec-Fetch-Site': 'cross-site' }],
    ]
    for (const [name, fields, headers] of cases) {
      const res = await post(fields, headers)
      assert.equal(res.status, 403, `${name}: ${res.body.slice(0, 200)}`)
      assert.equal(res.setCookies.filter((c) => c.includes('session=')).length, 0, name)
    }
    const ok = await post({ csrf: token }, { ...jar.header(), Origin: 'null' })
    assert.equal(ok.status, 302, 'Chromium under no-referrer sends Origin: null: the token decides')
  })

  test(`${kind}: session fixation — a session cookie brought to the sign-in is never the one after it, and is ended`, async () => {
    const { gw } = await setup(kind)
    const planted = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'session' })
    const plantedValue = cookieAttributes(planted.headers['set-cookie']!).value
    const jar = new Jar()
    jar.cookies.set('keygate_session', plantedValue)
    await signInAlice(gw.port, jar)
    assert.notEqual(sessionOf(jar), plantedValue)
    const old = await request(gw.port, 'GET', '/api/data', { Cookie: `keygate_session=${plantedValue}` })
    assert.equal(old.status, 401, 'the planted session is over')
    const fresh = await request(gw.port, 'GET', '/api/data', jar.header())
    assert.equal(fresh.status, 200)
  })

  test(`${kind}: sign-out — GET shows a confirm button and changes nothing; POST without a good token is refused; POST ends the session`, async () => {
    const { gw } = await setup(kind)
    const jar = new Jar()
    await signInAlice(gw.port, jar)
    const confirm = await request(gw.port, 'GET', '/_keygate/sign-out', { Accept: BROWSER_ACCEPT, ...jar.header() })
    assert.equal(confirm.status, 200)
    assert.match(confirm.body, /signed in as <strong>alice<\/strong>/)
    assert.match(confirm.body, /<button type="submit">Sign out<\/button>/)
    assert.equal(confirm.headers['x-frame-options'], 'DENY')
    assert.equal((await request(gw.port, 'GET', '/api/data', jar.header())).status, 200)
    const forged = await request(
      gw.port,
      'POST',
      '/_keygate/sign-out',
      { 'Content-Type': 'application/x-www-form-urlencoded', ...jar.header() },
      'csrf=x&rd=%2F',
    )
    assert.equal(forged.status, 403)
    assert.equal((await request(gw.port, 'GET', '/api/data', jar.header())).status, 200, 'still signed in')
    const session = sessionOf(jar)!
    const out = jar.take(await submitForm(gw.port, jar, '/_keygate/sign-out', {}))
    assert.equal(out.status, 302)
    assert.match(out.headers.location!, /^\/_keygate\/sign-in\?rd=/)
    assert.ok(
      out.setCookies.some((c) => /^keygate_session=;.*Max-Age=0/.test(c)),
      out.setCookies.join('\n'),
    )
    const after = await request(gw.port, 'GET', '/api/data', { Cookie: `keygate_session=${session}` })
    assert.equal(after.status, 401, 'the session is ended, not just forgotten by the browser')
  })
}

test('page loads without credentials go to the sign-in page with rd; API clients keep 401 JSON (table of request shapes)', async () => {
  const { gw } = await setup('memory')
  const revoked = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'session' })
  const revokedValue = cookieAttributes(revoked.headers['set-cookie']!).value
  const out = await request(gw.port, 'POST', '/api/logout', {
    Cookie: `keygate_session=${revokedValue}`,
    'Content-Length': '0',
  })
  assert.equal(out.status, 200)
  const redirected: Array<[string, string, Record<string, string>]> = [
    ['a browser navigation', 'GET', { Accept: BROWSER_ACCEPT, 'Sec-Fetch-Mode': 'navigate' }],
    ['plain text/html', 'GET', { Accept: 'text/html' }],
    ['HEAD', 'HEAD', { Accept: BROWSER_ACCEPT }],
    ['a revoked session cookie', 'GET', { Accept: BROWSER_ACCEPT, Cookie: `keygate_session=${revokedValue}` }],
    ['a garbage session cookie', 'GET', { Accept: BROWSER_ACCEPT, Cookie: 'keygate_session=garbage' }],
  ]
  for (const [name, method, headers] of redirected) {
    const res = await request(gw.port, method, '/wiki/Page?x=1', headers)
    assert.equal(res.status, 302, name)
    assert.equal(
      res.headers.location,
      `/_keygate/sign-in?rd=${encodeURIComponent('http://gw.test/wiki/Page?x=1')}`,
      name,
    )
  }
  const kept: Array<[string, string, string, Record<string, string>]> = [
    ['no Accept', 'GET', '/wiki/Page', {}],
    ['Accept: application/json', 'GET', '/wiki/Page', { Accept: 'application/json' }],
    ['Accept: */*', 'GET', '/wiki/Page', { Accept: '*/*' }],
    ['JSON preferred to HTML', 'GET', '/wiki/Page', { Accept: 'application/json, text/html;q=0.5' }],
    ['text/html;q=0', 'GET', '/wiki/Page', { Accept: 'text/html;q=0, */*' }],
    ['POST', 'POST', '/wiki/Page', { Accept: BROWSER_ACCEPT, 'Content-Length': '0' }],
    ['DELETE', 'DELETE', '/wiki/Page', { Accept: BROWSER_ACCEPT }],
    ['Authorization: Basic', 'GET', '/wiki/Page', { Accept: BROWSER_ACCEPT, Authorization: 'Basic YTpi' }],
    ['a bad Bearer', 'GET', '/wiki/Page', { Accept: BROWSER_ACCEPT, Authorization: 'Bearer nope' }],
    ['X-Requested-With', 'GET', '/wiki/Page', { Accept: BROWSER_ACCEPT, 'X-Requested-With': 'XMLHttpRequest' }],
    ["a script's fetch", 'GET', '/wiki/Page', { Accept: BROWSER_ACCEPT, 'Sec-Fetch-Mode': 'cors' }],
    ['route signIn: false', 'GET', '/api/data', { Accept: BROWSER_ACCEPT }],
  ]
  for (const [name, method, path, headers] of kept) {
    const res = await request(gw.port, method, path, headers)
    assert.equal(res.status, 401, `${name}: ${res.status} ${res.headers.location ?? ''}`)
    assert.match(res.headers['content-type']!, /application\/json/, name)
    assert.equal(JSON.parse(res.body).status, false, name)
  }
})

test('no signIn config, or redirect: never: page loads keep the 401', async () => {
  const up = await startUpstream()
  const none = await startTestGateway({ upstream: up.url, secrets: { jwt: { secret: JWT_SECRET } }, users })
  const never = await startTestGateway(config(up.url, {}, { redirect: 'never' }))
  for (const gw of [none, never]) {
    const res = await request(gw.port, 'GET', '/wiki/Page', { Accept: BROWSER_ACCEPT })
    assert.equal(res.status, 401)
  }
  assert.equal((await request(none.port, 'GET', '/_keygate/sign-in', { Accept: BROWSER_ACCEPT })).status, 401)
})

test('cookies per §7: __Host- prefix and Secure behind a trusted https proxy (no Domain); a domain cookie keeps its name; both authenticate', async () => {
  for (const [cookie, expectName, expectDomain] of [
    [{}, '__Host-keygate_session', undefined],
    [{ domain: 'example.org' }, 'keygate_session', 'example.org'],
  ] as const) {
    // the proxy (loopback here) is trusted: its X-Forwarded-Proto says the browser used https
    const { up, gw } = await setup('memory', { cookie }, { trustedProxies: ['127.0.0.1/32'] })
    const jar = new Jar()
    const https = { 'X-Forwarded-Proto': 'https' }
    const page = jar.take(await request(gw.port, 'GET', '/_keygate/sign-in', { Accept: BROWSER_ACCEPT, ...https }))
    assert.ok(jar.cookies.has('__Host-keygate_csrf'), page.setCookies.join('\n'))
    const res = jar.take(
      await request(
        gw.port,
        'POST',
        '/_keygate/sign-in',
        { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'https://gw.test', ...https, ...jar.header() },
        new URLSearchParams({
          csrf: hiddenField(page.body, 'csrf'),
          rd: '/x',
          username: 'alice',
          password: ALICE_PW,
        }).toString(),
      ),
    )
    assert.equal(res.status, 302, res.body)
    const session = res.setCookies.map(cookieAttributes).find((c) => c.name === expectName)
    assert.ok(session, res.setCookies.join('\n'))
    assert.ok(session.attributes.has('secure'))
    assert.ok(session.attributes.has('httponly'))
    assert.equal(session.attributes.get('samesite'), 'Lax')
    assert.equal(session.attributes.get('path'), '/')
    assert.equal(session.attributes.get('domain'), expectDomain)
    const use = await request(gw.port, 'GET', '/wiki/X', {
      Cookie: `wiki_session=w1; ${expectName}=${session.value}; __Host-keygate_csrf=${jar.cookies.get('__Host-keygate_csrf')}; lang=en`,
    })
    assert.equal(use.status, 200)
    assert.equal(up.seen.at(-1)!.headers['x-auth-user'], 'alice')
    assert.equal(up.seen.at(-1)!.headers.cookie, 'wiki_session=w1; lang=en', "keygate's cookies stay with keygate")
  }
})

test('hostile return addresses all become / (table); honest ones are kept', () => {
  const policy = { ownOrigin: 'https://wiki.example.org', allowedHosts: ['app.example.org', '.corp.example'] }
  const hostile = [
    '//evil.example',
    '//evil.example/path',
    '/\\evil.example',
    '\\\\evil.example',
    '/\t/evil.example',
    ' //evil.example',
    'https:evil.example',
    'https:/evil.example',
    'http://a@evil.example',
    'https://wiki.example.org@evil.example',
    'https://wiki.example.org:443@evil.example/',
    'https://user:pass@wiki.example.org/',
    'https://evil.example',
    'https://wiki.example.org.evil.example/',
    'https://evilwiki.example.org/',
    'https://wiki.example.org:8443/',
    'http://wiki.example.org/',
    'ftp://wiki.example.org/',
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'java\tscript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    '/wiki%0d%0aSet-Cookie:x=1',
    '/wiki%250d%250aLocation:evil',
    '/wiki\r\nLocation: https://evil.example',
    '/wiki%00',
    'https://app.example.org:444/',
    'http://app.example.org/',
    'https://notcorp.example/',
    'https://corp.example.evil.example/',
    'https://xn--wiki-exmple-org.example/',
    'wiki.example.org/page',
    'evil.example',
    '',
    '/'.padEnd(3000, 'a'),
    'https://evil.example#@wiki.example.org',
    'https://evil.example\\@wiki.example.org',
    'https://wiki.example.org\u2028@evil.example',
    '\u0000/evil',
  ]
  assert.ok(hostile.length >= 25)
  for (const rd of hostile) assert.equal(safeReturnAddress(rd, policy), '/', JSON.stringify(rd))
  const honest: Array<[string, string]> = [
    ['/wiki/Main_Page?action=history#top', '/wiki/Main_Page?action=history#top'],
    ['/wiki/100%25_sure', '/wiki/100%25_sure'],
    ['https://wiki.example.org/wiki/X', 'https://wiki.example.org/wiki/X'],
    ['https://app.example.org/dash', 'https://app.example.org/dash'],
    ['https://team.corp.example/board?a=1', 'https://team.corp.example/board?a=1'],
    ['/a/../b', '/b'],
  ]
  for (const [rd, kept] of honest) assert.equal(safeReturnAddress(rd, policy), kept, rd)
})

test('forward-auth: Traefik/Caddy get the 302 to sign-in with the original URL; nginx gets 401 + X-Keygate-Sign-In; API clients neither', async () => {
  const { gw } = await setup('memory', {}, { trustedProxies: ['127.0.0.1/32'] })
  const forwarded = {
    'X-Forwarded-Method': 'GET',
    'X-Forwarded-Uri': '/wiki/Page?a=1&b=2',
    'X-Forwarded-Host': 'app.example.org',
    'X-Forwarded-Proto': 'https',
  }
  const traefik = await request(gw.port, 'GET', '/_keygate/auth', { Accept: BROWSER_ACCEPT, ...forwarded })
  assert.equal(traefik.status, 302)
  assert.equal(
    traefik.headers.location,
    `/_keygate/sign-in?rd=${encodeURIComponent('https://app.example.org/wiki/Page?a=1&b=2')}`,
  )
  const traefikApi = await request(gw.port, 'GET', '/_keygate/auth', { Accept: 'application/json', ...forwarded })
  assert.equal(traefikApi.status, 401)
  const nginx = { 'X-Original-URI': '/wiki/Page?a=1&b=2', 'X-Original-Method': 'GET' }
  const page = await request(gw.port, 'GET', '/_keygate/auth', { Accept: BROWSER_ACCEPT, ...nginx })
  assert.equal(page.status, 401)
  assert.equal(page.headers['x-keygate-sign-in'], '/_keygate/sign-in')
  assert.match(page.headers['www-authenticate']!, /Bearer/)
  const api = await request(gw.port, 'GET', '/_keygate/auth', { Accept: 'application/json', ...nginx })
  assert.equal(api.status, 401)
  assert.equal(api.headers['x-keygate-sign-in'], undefined)
  // nginx's error_page writes the original URL in raw: rd takes the rest of the query, & and all.
  const raw = await request(gw.port, 'GET', '/_keygate/sign-in?rd=http://gw.test/wiki/Page?a=1&b=2', {
    Accept: BROWSER_ACCEPT,
  })
  assert.equal(hiddenField(raw.body, 'rd'), 'http://gw.test/wiki/Page?a=1&b=2')
})
