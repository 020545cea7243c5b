import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { SignJWT } from 'jose'
import { startTestGateway, startUpstream } from './helpers.js'
import { JWT_SECRET, STORE_KINDS, makeUsers, redisPrefixes, sleep, type StoreKind } from './support/users.js'
import { BROWSER_ACCEPT, Jar, cookieAttributes, request, submitForm, type PageResponse } from './support/sign-in.js'
import { CLIENT_SECRET, startOidcProvider, type TestProvider } from './support/oidc-provider.js'
import { IDP_USERS, providerEntry, type IdpLogin } from './support/oidc-fixtures.js'
import { freePort } from './support/processes.js'

// OpenID Connect sign-in against a REAL provider (oidc-provider on loopback, with a client, users
// and groups): the code flow with PKCE, state and nonce, claims mapping, allow rules, refusals of
// bad ID tokens (re-signed with the provider's own key), provider outages, sign-out through the
// provider's end_session_endpoint, and two keygate instances sharing one Redis (issue 14).

const GW = 'http://gw.test'
const idp = await startOidcProvider({
  users: IDP_USERS,
  redirectUris: ['corp', 'admins'].map((id) => `${GW}/_keygate/oauth2/callback/${id}`),
  postLogoutRedirectUris: [`${GW}/_keygate/sign-in`],
})
const downPort = await freePort()
const users = await makeUsers()
const prefixes = redisPrefixes('oidc')

const provider = (id: string, over: Record<string, unknown> = {}) => providerEntry(idp.issuer, id, over)

function gatewayConfig(upstream: string, store: Record<string, unknown>) {
  return {
    upstream,
    ...store,
    secrets: { jwt: { secret: JWT_SECRET } },
    users,
    signIn: {
      providers: [
        provider('corp'),
        provider('admins', { allow: { groups: ['wiki-admins'], emailDomains: ['example.org'] } }),
        provider('down', { issuer: `http://127.0.0.1:${downPort}` }),
      ],
    },
  }
}

async function setup(kind: StoreKind, shared?: string) {
  const up = await startUpstream()
  const gw = await startTestGateway(gatewayConfig(up.url, prefixes.store(kind, shared)))
  return { up, gw }
}

/** The provider's side, as a browser does it: its cookies, its login form, its redirects. */
async function atProvider(start: string, login: string, password: string): Promise<string> {
  const issuer = new URL(start).origin
  const cookies = new Map<string, string>()
  const go = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: {
        ...(init.headers as Record<string, string>),
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
      },
    })
    for (const sc of res.headers.getSetCookie()) {
      const c = cookieAttributes(sc)
      cookies.set(c.name, c.value)
    }
    return res
  }
  let res = await go(start)
  for (let hops = 0; hops < 10; hops++) {
    const location = res.headers.get('location')
    if (res.status === 200 && /<form method="post" action="\/interaction\//.test(await res.clone().text())) {
      const action = /action="([^"]+)"/.exec(await res.text())![1]!
      res = await go(new URL(action, issuer).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ login, password }).toString(),
      })
      continue
    }
    assert.ok(location, `the provider answered ${res.status}: ${(await res.text()).slice(0, 300)}`)
    const next = new URL(location, issuer)
    if (next.origin !== issuer) return next.href
    res = await go(next.href)
  }
  throw new Error('too many redirects at the provider')
}

/** Clicks the provider's button on keygate's page; returns keygate's answer (a 302 to the provider, or a page). */
const chooseProvider = (port: number, jar: Jar, id: string, rd = '/wiki/Start') =>
  submitForm(port, jar, `/_keygate/sign-in?rd=${encodeURIComponent(rd)}`, { provider: id }).then((r) => jar.take(r))

/** keygate's callback URL as the provider sent the browser to it, delivered to a keygate instance. */
const deliver = (port: number, jar: Jar, callbackUrl: string) => {
  const u = new URL(callbackUrl)
  assert.equal(u.origin, GW)
  return request(port, 'GET', u.pathname + u.search, { Accept: BROWSER_ACCEPT, ...jar.header() }).then((r) =>
    jar.take(r),
  )
}

async function providerSignIn(port: number, jar: Jar, id = 'corp', who: IdpLogin = 'carol', callbackPort = port) {
  const start = await chooseProvider(port, jar, id)
  assert.equal(start.status, 302, start.body)
  assert.ok(start.headers.location!.startsWith(`${idp.issuer}/auth?`), start.headers.location)
  const callbackUrl = await atProvider(start.headers.location!, who, IDP_USERS[who].password)
  return { callbackUrl, done: await deliver(callbackPort, jar, callbackUrl) }
}

const hasSession = (res: PageResponse) => res.setCookies.some((c) => /^keygate_session=[^;]+/.test(c))

for (const kind of STORE_KINDS) {
  test(`${kind}: sign in with the provider (PKCE S256, state, nonce): back on rd, claims mapped (dotted groups path), the upstream sees the person; a replayed callback or code signs nobody in`, async () => {
    const { up, gw } = await setup(kind)
    const jar = new Jar()
    const start = await chooseProvider(gw.port, jar, 'corp', '/wiki/Start?x=1')
    const auth = new URL(start.headers.location!)
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256')
    assert.ok(auth.searchParams.get('code_challenge'))
    assert.ok(auth.searchParams.get('state'))
    assert.ok(auth.searchParams.get('nonce'))
    assert.equal(auth.searchParams.get('redirect_uri'), `${GW}/_keygate/oauth2/callback/corp`)
    const callbackUrl = await atProvider(start.headers.location!, 'carol', IDP_USERS.carol.password)
    const done = await deliver(gw.port, jar, callbackUrl)
    assert.equal(done.status, 302, done.body)
    assert.equal(done.headers.location, '/wiki/Start?x=1')
    assert.ok(hasSession(done))
    const page = await request(gw.port, 'GET', '/wiki/Start?x=1', { Accept: BROWSER_ACCEPT, ...jar.header() })
    assert.equal(page.status, 200, page.body)
    const seen = up.seen.at(-1)!.headers
    assert.equal(seen['x-auth-user'], 'carol')
    assert.equal(seen['x-auth-email'], 'carol@example.org')
    assert.equal(seen['x-auth-scheme'], 'session')
    assert.match(String(seen['x-auth-groups']), /editors/)
    assert.match(String(seen['x-auth-groups']), /wiki-admins/)
    assert.ok(
      !gw.logs.some((l) => l.includes(new URL(callbackUrl).searchParams.get('code')!)),
      'the code is never logged',
    )

    const replay = await deliver(gw.port, new Jar(), callbackUrl)
    assert.equal(replay.status, 400)
    assert.match(replay.body, /already been used|expired/)
    assert.ok(!hasSession(replay))
    // The same code with a new flow's state (and that browser's flow cookie): the provider refuses it.
    const thief = new Jar()
    const second = await chooseProvider(gw.port, thief, 'corp')
    const state2 = new URL(second.headers.location!).searchParams.get('state')!
    const forged = new URL(callbackUrl)
    forged.searchParams.set('state', state2)
    const codeReplay = await deliver(gw.port, thief, forged.href)
    assert.equal(codeReplay.status, 400, codeReplay.body)
    assert.ok(!hasSession(codeReplay))
  })
}

test('allow.groups / allow.emailDomains: someone the provider vouches for but who is not allowed gets a 403 page (no loop, no session)', async () => {
  const { gw } = await setup('memory')
  const denied = (await providerSignIn(gw.port, new Jar(), 'admins', 'dave')).done
  assert.equal(denied.status, 403)
  assert.match(denied.headers['content-type']!, /text\/html/)
  assert.equal(denied.headers.location, undefined)
  assert.match(denied.body, /Access denied/)
  assert.ok(!hasSession(denied))
  const allowed = (await providerSignIn(gw.port, new Jar(), 'admins', 'carol')).done
  assert.equal(allowed.status, 302, allowed.body)
})

test('state: an unknown state, or the right state in another browser (no flow cookie), signs nobody in', async () => {
  const { gw } = await setup('memory')
  const jar = new Jar()
  const start = await chooseProvider(gw.port, jar, 'corp')
  const callbackUrl = await atProvider(start.headers.location!, 'carol', IDP_USERS.carol.password)
  const wrongState = new URL(callbackUrl)
  wrongState.searchParams.set('state', 'not-the-state')
  const a = await deliver(gw.port, jar, wrongState.href)
  assert.equal(a.status, 400)
  assert.ok(!hasSession(a))
  const otherBrowser = await deliver(gw.port, new Jar(), callbackUrl)
  assert.equal(otherBrowser.status, 400)
  assert.ok(!hasSession(otherBrowser))
})

test('ID tokens with a wrong issuer, audience, alg (none, HS256 with the client secret), key, or a replayed nonce are refused', async () => {
  const { gw } = await setup('memory')
  const earlier = (await providerSignIn(gw.port, new Jar())).done
  assert.equal(earlier.status, 302)
  const replayed = idp.idTokens.at(-1)!
  const { privateKey: strangerKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const cases: Array<[string, TestProvider['tamper']]> = [
    ['wrong issuer', ({ claims }) => idp.sign({ ...claims, iss: 'https://evil.example' })],
    ['wrong audience', ({ claims }) => idp.sign({ ...claims, aud: 'someone-else' })],
    ['alg none', ({ claims }) => Promise.resolve(`${b64({ alg: 'none' })}.${b64(claims)}.`)],
    [
      'HS256 keyed with the client secret',
      ({ claims }) => {
        const input = `${b64({ alg: 'HS256', kid: 'test-key' })}.${b64(claims)}`
        return Promise.resolve(`${input}.${createHmac('sha256', CLIENT_SECRET).update(input).digest('base64url')}`)
      },
    ],
    [
      'a key the provider does not publish',
      ({ claims }) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'test-key' }).sign(strangerKey),
    ],
    ['expired', ({ claims }) => idp.sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 })],
    ['a replayed ID token (an earlier nonce)', () => Promise.resolve(replayed)],
  ]
  try {
    for (const [name, tamper] of cases) {
      idp.tamper = tamper
      const done = (await providerSignIn(gw.port, new Jar())).done
      assert.equal(done.status, 400, `${name}: ${done.status} ${done.body.slice(0, 200)}`)
      assert.ok(!hasSession(done), name)
    }
  } finally {
    idp.tamper = null
  }
  assert.equal((await providerSignIn(gw.port, new Jar())).done.status, 302, 'an honest token still works')
})

test('a provider that cannot be reached: a clear error page, no redirect loop; the sign-in page itself still works', async () => {
  const { gw } = await setup('memory')
  const jar = new Jar()
  const down = await chooseProvider(gw.port, jar, 'down')
  assert.equal(down.status, 502)
  assert.match(down.headers['content-type']!, /text\/html/)
  assert.equal(down.headers.location, undefined)
  assert.match(down.body, /cannot be reached right now/)
  assert.match(down.body, /href="\/_keygate\/sign-in\?rd=/)
  const page = await request(gw.port, 'GET', '/_keygate/sign-in', { Accept: BROWSER_ACCEPT })
  assert.equal(page.status, 200)
  assert.match(page.body, /Sign in with Provider down/)
})

test("sign-out after a provider sign-in ends keygate's session and continues to the provider's end_session_endpoint", async () => {
  const { gw } = await setup('memory')
  const jar = new Jar()
  assert.equal((await providerSignIn(gw.port, jar)).done.status, 302)
  const session = jar.cookies.get('keygate_session')!
  const out = jar.take(await submitForm(gw.port, jar, '/_keygate/sign-out', {}))
  assert.equal(out.status, 302)
  const end = new URL(out.headers.location!)
  assert.equal(end.origin, idp.issuer)
  assert.equal(end.pathname, '/session/end')
  assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${GW}/_keygate/sign-in`)
  assert.ok(end.searchParams.get('id_token_hint'))
  const after = await request(gw.port, 'GET', '/wiki/Start', { Cookie: `keygate_session=${session}` })
  assert.equal(after.status, 401)
  // At the provider: its confirm form, then back to keygate's sign-in page.
  const confirm = await fetch(end, { redirect: 'manual' })
  const html = await confirm.text()
  assert.equal(confirm.status, 200, html)
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1]
  const action = /action="([^"]+)"/.exec(html)?.[1]
  assert.ok(xsrf && action, html)
  const cookie = confirm.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ')
  const back = await fetch(new URL(action, idp.issuer), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
  })
  assert.equal(back.status, 303, await back.text())
  assert.equal(back.headers.get('location'), `${GW}/_keygate/sign-in`)
})

test('two instances on one Redis: start on A, callback and use on B; sign-out on B ends the session on A within 1 s', async () => {
  const shared = `pair${Date.now()}`
  const a = await setup('redis', shared)
  const b = await setup('redis', shared)
  const jar = new Jar()
  const { done } = await providerSignIn(a.gw.port, jar, 'corp', 'carol', b.gw.port)
  assert.equal(done.status, 302, done.body)
  const session = jar.cookies.get('keygate_session')!
  for (const gw of [b.gw, a.gw]) {
    const res = await request(gw.port, 'GET', '/wiki/Start', { Cookie: `keygate_session=${session}` })
    assert.equal(res.status, 200)
  }
  assert.equal(a.up.seen.at(-1)!.headers['x-auth-user'], 'carol')
  const out = jar.take(await submitForm(b.gw.port, jar, '/_keygate/sign-out', {}))
  assert.equal(out.status, 302)
  const started = Date.now()
  let status = 200
  while (Date.now() - started < 1000) {
    status = (await request(a.gw.port, 'GET', '/wiki/Start', { Cookie: `keygate_session=${session}` })).status
    if (status === 401) break
    await sleep(50)
  }
  assert.equal(status, 401, 'A refuses the session within 1 s')
})

test("a provider's person is who the provider vouched for: the local user of the same name lends neither groups nor uid", async () => {
  const { up, gw } = await setup('memory')
  const jar = new Jar()
  assert.equal((await providerSignIn(gw.port, jar, 'corp', 'bobby')).done.status, 302)
  const res = await request(gw.port, 'GET', '/wiki/Start', jar.header())
  assert.equal(res.status, 200)
  const seen = up.seen.at(-1)!.headers
  assert.equal(seen['x-auth-user'], 'bob')
  assert.equal(seen['x-auth-user-id'], '0')
  assert.doesNotMatch(String(seen['x-auth-groups']), /sysop/, "the local bob's sysop group is not the provider's bob's")
  assert.match(String(seen['x-auth-groups']), /readers/)
})

test('a provider whose ID token carries only sub: the mapped claims (username, e-mail, dotted groups) come from userinfo', async () => {
  const lean = await startOidcProvider({
    users: {
      carol: {
        password: 'carol-idp-pw',
        claims: { preferred_username: 'carol-at-lean', email: 'carol@lean.example', org: { teams: ['lean-editors'] } },
      },
    },
    redirectUris: [`${GW}/_keygate/oauth2/callback/lean`],
    postLogoutRedirectUris: [`${GW}/_keygate/sign-in`],
    claimsInIdToken: false,
  })
  const up = await startUpstream()
  const gw = await startTestGateway({
    ...gatewayConfig(up.url, prefixes.store('memory')),
    signIn: { providers: [provider('lean', { issuer: lean.issuer })] },
  })
  const jar = new Jar()
  const start = await chooseProvider(gw.port, jar, 'lean')
  assert.ok(start.headers.location?.startsWith(`${lean.issuer}/auth?`), start.headers.location)
  const done = await deliver(gw.port, jar, await atProvider(start.headers.location!, 'carol', 'carol-idp-pw'))
  assert.equal(done.status, 302, done.body)
  assert.ok(hasSession(done))
  const idToken = JSON.parse(Buffer.from(lean.idTokens.at(-1)!.split('.')[1]!, 'base64url').toString())
  assert.equal(idToken.sub, 'carol')
  for (const claim of ['preferred_username', 'email', 'org'])
    assert.equal(idToken[claim], undefined, `the ID token has no ${claim}: it must come from userinfo`)
  const page = await request(gw.port, 'GET', '/wiki/Start', { Accept: BROWSER_ACCEPT, ...jar.header() })
  assert.equal(page.status, 200, page.body)
  const seen = up.seen.at(-1)!.headers
  assert.equal(seen['x-auth-user'], 'carol-at-lean')
  assert.equal(seen['x-auth-email'], 'carol@lean.example')
  assert.equal(seen['x-auth-groups'], 'lean-editors')
})
