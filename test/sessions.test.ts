import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { rawGet, startTestGateway, startUpstream, type RawResponse } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { startKeygate } from './support/keygate-process.js'
import {
  ALICE_PW,
  JWT_SECRET,
  REDIS_URL,
  STORE_KINDS,
  bearer,
  login,
  makeUsers,
  redisPrefixes,
  send,
  sleep,
} from './support/users.js'

// Browser sessions (the keygate_session cookie), logout and revocation — on one gateway in both
// stores, and across two keygate processes sharing one Redis (issue 4).

const users = await makeUsers()
const prefixes = redisPrefixes('sessions')

function sessionConfig(upstream: string, store: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    upstream,
    ...store,
    trustedProxies: ['127.0.0.2/32'],
    secrets: { jwt: { secret: JWT_SECRET } },
    users,
    tokens: { session: { ttl: '1h', remember: '7d' } },
    ...extra,
  }
}

/** Set-Cookie split into its value and attributes (names lower-cased). */
function parseSetCookie(header: string | undefined) {
  assert.ok(header, 'a Set-Cookie header')
  const [pair, ...attrs] = header.split(';').map((s) => s.trim())
  const i = pair!.indexOf('=')
  const attributes = new Map(
    attrs.map((a) => {
      const j = a.indexOf('=')
      return j === -1 ? [a.toLowerCase(), ''] : [a.slice(0, j).toLowerCase(), a.slice(j + 1)]
    }),
  )
  return { name: pair!.slice(0, i), value: pair!.slice(i + 1), attributes }
}

async function sessionLogin(
  port: number,
  fields: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  localAddress?: string,
) {
  const res = await login(
    port,
    { username: 'alice', password: ALICE_PW, token_type: 'session', ...fields },
    headers,
    localAddress,
  )
  assert.equal(res.status, 200, res.body)
  return { res, cookie: parseSetCookie(res.headers['set-cookie']) }
}

const withCookie = (value: string, others = '') => ({
  Cookie: others ? `${others}; keygate_session=${value}` : `keygate_session=${value}`,
})

for (const kind of STORE_KINDS) {
  test(`${kind}: token_type session sets keygate_session (HttpOnly, SameSite=Lax, Max-Age; no Secure on plain loopback); the cookie alone authenticates and is not forwarded`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(sessionConfig(up.url, prefixes.store(kind)))
    const { res, cookie } = await sessionLogin(gw.port)
    assert.equal(res.json.type, 'session')
    assert.equal(cookie.name, 'keygate_session')
    assert.equal(cookie.value, res.json.token, 'the cookie carries the session token')
    assert.ok(cookie.attributes.has('httponly'), 'HttpOnly')
    assert.equal(cookie.attributes.get('samesite')?.toLowerCase(), 'lax')
    assert.equal(cookie.attributes.get('path'), '/')
    assert.equal(cookie.attributes.get('max-age'), '3600', 'Max-Age = tokens.session.ttl')
    assert.ok(!cookie.attributes.has('secure'), 'no Secure for plain HTTP on loopback (a browser would drop it)')
    assert.equal(Date.parse(res.json.expires) - Date.parse(res.json.datetime), 3600_000)
    assert.ok(await gw.store.get(`jwt:${res.json.jti}`), 'the session is recorded in the store')

    const page = await rawGet(gw.port, '/wiki/Page', { Cookie: `theme=dark; keygate_session=${cookie.value}; lang=en` })
    assert.equal(page.status, 200, page.body)
    const seen = up.seen.at(-1)!
    assert.equal(seen.headers['x-auth-user'], 'alice')
    assert.equal(seen.headers['x-auth-user-id'], '3')
    assert.equal(seen.headers['x-auth-groups'], 'user,editors')
    assert.equal(seen.headers['x-auth-scheme'], 'session')
    const fwd = String(seen.headers.cookie ?? '')
    assert.ok(
      !fwd.includes('keygate_session') && !fwd.includes(cookie.value),
      `the session cookie is not forwarded: ${fwd}`,
    )
    assert.match(fwd, /(^|;\s*)theme=dark(;|$)/, `other cookies are: ${fwd}`)
    assert.match(fwd, /(^|;\s*)lang=en(;|$)/, `other cookies are: ${fwd}`)
    // only the session cookie, and again (now from the cache)
    for (let i = 0; i < 2; i++) {
      assert.equal((await rawGet(gw.port, '/wiki/Page', withCookie(cookie.value))).status, 200)
      assert.equal(up.seen.at(-1)!.headers.cookie, undefined, 'nothing left to forward')
    }

    // a forged or mangled session cookie
    const bad = await rawGet(gw.port, '/wiki/Page', withCookie(`${cookie.value.slice(0, -2)}xx`))
    assert.equal(bad.status, 401, bad.body)
    assert.equal(bad.json.code, 'E1001')
    // an access token is not a session: it cannot be the cookie
    const access = await login(gw.port, { username: 'alice', password: ALICE_PW })
    const asCookie = await rawGet(gw.port, '/wiki/Page', withCookie(access.json.token))
    assert.equal(asCookie.status, 400, asCookie.body)
    assert.equal(asCookie.json.code, 'E1020')
    // the same session twice is still that session (a second cookie of another's is in login-hardening)
    const two = await rawGet(gw.port, '/wiki/Page', {
      Cookie: `keygate_session=${cookie.value}; keygate_session=${cookie.value}`,
    })
    assert.equal(two.status, 200, two.body)
  })

  test(`${kind}: remember=true gives the longer Max-Age; Secure behind a trusted HTTPS proxy or for a non-loopback client`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(sessionConfig(up.url, prefixes.store(kind)))
    const remembered = await sessionLogin(gw.port, { remember: true })
    assert.equal(remembered.cookie.attributes.get('max-age'), String(7 * 86400), 'Max-Age = tokens.session.remember')
    assert.equal(Date.parse(remembered.res.json.expires) - Date.parse(remembered.res.json.datetime), 7 * 86400_000)
    assert.equal((await rawGet(gw.port, '/wiki/P', withCookie(remembered.cookie.value))).status, 200)
    const form = await send(gw.port, 'POST', '/api/authorize', {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        username: 'alice',
        password: ALICE_PW,
        token_type: 'session',
        remember: 'on',
      }).toString(),
    })
    assert.equal(
      parseSetCookie(form.headers['set-cookie']).attributes.get('max-age'),
      String(7 * 86400),
      'remember=on from an HTML form',
    )

    const viaHttps = await sessionLogin(
      gw.port,
      {},
      { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '127.0.0.1' },
      '127.0.0.2',
    )
    assert.ok(viaHttps.cookie.attributes.has('secure'), 'Secure when a trusted proxy says the client used HTTPS')
    const remote = await sessionLogin(gw.port, {}, { 'X-Forwarded-For': '203.0.113.9' }, '127.0.0.2')
    assert.ok(remote.cookie.attributes.has('secure'), 'Secure for a client that is not on loopback')
    const spoofed = await sessionLogin(gw.port, {}, { 'X-Forwarded-Proto': 'http', 'X-Forwarded-For': '203.0.113.9' })
    assert.ok(!spoofed.cookie.attributes.has('secure'), "an untrusted peer's X-Forwarded-For is not believed")
  })

  test(`${kind}: POST /api/logout with the cookie revokes the session and clears the cookie; DELETE /api/authorize likewise`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(sessionConfig(up.url, prefixes.store(kind)))
    const { res, cookie } = await sessionLogin(gw.port)
    const other = await sessionLogin(gw.port)
    assert.equal(
      (await rawGet(gw.port, '/wiki/P', withCookie(cookie.value))).status,
      200,
      'in use (and cached) before logout',
    )

    const out = await send(gw.port, 'POST', '/api/logout', { headers: withCookie(cookie.value) })
    assert.equal(out.status, 200, out.body)
    assert.equal(out.json.code, 'E0000')
    const cleared = parseSetCookie(out.headers['set-cookie'])
    assert.equal(cleared.name, 'keygate_session')
    assert.equal(cleared.value, '')
    assert.equal(cleared.attributes.get('max-age'), '0', 'the cookie is cleared')
    assert.equal(cleared.attributes.get('path'), '/')
    assert.equal(await gw.store.get(`jwt:${res.json.jti}`), null, 'the session record is gone')

    for (let i = 0; i < 2; i++) {
      const later = await rawGet(gw.port, '/wiki/P', withCookie(cookie.value))
      assert.equal(later.status, 401, later.body)
      assert.ok(['E1002', 'E1003'].includes(later.json.code), `revoked session: ${later.body}`)
    }
    const asBearer = await rawGet(gw.port, '/wiki/P', bearer(cookie.value))
    assert.equal(asBearer.status, 401, `nor as a Bearer token: ${asBearer.body}`)
    assert.equal(
      (await send(gw.port, 'POST', '/api/logout', { headers: withCookie(cookie.value) })).status,
      401,
      'logging out twice',
    )
    assert.equal(
      (await rawGet(gw.port, '/wiki/P', withCookie(other.cookie.value))).status,
      200,
      'the other session lives on',
    )

    // DELETE /api/authorize with the cookie does the same
    const del = await send(gw.port, 'DELETE', '/api/authorize', { headers: withCookie(other.cookie.value) })
    assert.equal(del.status, 200, del.body)
    assert.equal(parseSetCookie(del.headers['set-cookie']).attributes.get('max-age'), '0')
    const gone = await rawGet(gw.port, '/wiki/P', withCookie(other.cookie.value))
    assert.equal(gone.status, 401, gone.body)
    assert.ok(['E1002', 'E1003'].includes(gone.json.code), gone.body)

    // POST /api/logout with a Bearer token revokes that token (E1002 afterwards)
    const access = (await login(gw.port, { username: 'alice', password: ALICE_PW })).json.token as string
    const bOut = await send(gw.port, 'POST', '/api/logout', { headers: bearer(access) })
    assert.equal(bOut.status, 200, bOut.body)
    const bLater = await rawGet(gw.port, '/wiki/P', bearer(access))
    assert.equal(bLater.status, 401)
    assert.equal(bLater.json.code, 'E1002')
    assert.equal((await send(gw.port, 'POST', '/api/logout')).json.code, 'E1000', 'logout without credentials')
  })
}

// ------------------------------------------------------------------ two processes, one Redis

/** `keygate serve` in its own process, on a temp YAML; stopped after the file. */
async function startCliGateway(yaml: string) {
  const file = join(await makeTempDir('sessions'), 'gateway.yaml')
  writeFileSync(file, yaml)
  return startKeygate(file)
}

/** Polls until the answer is a 401 with one of `codes`; how long that took. */
async function until401(
  get: () => Promise<RawResponse>,
  codes: string[],
  limitMs = 3000,
): Promise<{ ms: number; last: RawResponse }> {
  const started = Date.now()
  for (;;) {
    const last = await get()
    if (last.status === 401 && codes.includes(last.json?.code)) return { ms: Date.now() - started, last }
    if (Date.now() - started > limitMs) return { ms: Infinity, last }
    await sleep(10)
  }
}

test('redis: a revocation on one keygate is seen by a second keygate PROCESS on the same Redis within 1 s (Bearer and session, both directions)', async () => {
  const up = await startUpstream()
  const shared = 'two-processes'
  const storeConfig = prefixes.store('redis', shared)
  const a = await startTestGateway(sessionConfig(up.url, storeConfig))
  const b = await startCliGateway(
    [
      'listen: 127.0.0.1:0',
      `upstream: ${up.url}`,
      `store: {redis: "${REDIS_URL}", prefix: "${(storeConfig.store as { prefix: string }).prefix}"}`,
      `secrets: {jwt: {secret: "${JWT_SECRET}"}}`,
      // the same users as A: a token speaks for its user only where that user is configured
      `users: ${JSON.stringify(users)}`,
      'logLevel: info',
      '',
    ].join('\n'),
  )

  // Bearer: issued by A, used on B (then cached there), revoked on A
  const access = (await login(a.port, { username: 'alice', password: ALICE_PW })).json.token as string
  for (let i = 0; i < 3; i++) {
    const r = await rawGet(b.port, '/wiki/P', bearer(access))
    assert.equal(r.status, 200, `B accepts A's token: ${r.body}\n${b.output()}`)
  }
  assert.equal(up.seen.at(-1)!.headers['x-auth-user'], 'alice')
  const revoke = await send(a.port, 'DELETE', '/api/authorize', { headers: bearer(access) })
  assert.equal(revoke.status, 200, revoke.body)
  const bearerSeen = await until401(() => rawGet(b.port, '/wiki/P', bearer(access)), ['E1002'])
  assert.ok(
    bearerSeen.ms < 1000,
    `B refused the revoked Bearer token after ${bearerSeen.ms} ms: ${bearerSeen.last.body}`,
  )

  // session: logged in on A, used on B, logged out on A
  const { cookie } = await sessionLogin(a.port)
  for (let i = 0; i < 3; i++)
    assert.equal((await rawGet(b.port, '/wiki/P', withCookie(cookie.value))).status, 200, 'B accepts the session')
  assert.equal(up.seen.at(-1)!.headers['x-auth-scheme'], 'session')
  assert.equal((await send(a.port, 'POST', '/api/logout', { headers: withCookie(cookie.value) })).status, 200)
  const sessionSeen = await until401(() => rawGet(b.port, '/wiki/P', withCookie(cookie.value)), ['E1002', 'E1003'])
  assert.ok(
    sessionSeen.ms < 1000,
    `B refused the logged-out session after ${sessionSeen.ms} ms: ${sessionSeen.last.body}`,
  )

  // the other way round: used on A (cached), revoked on B
  const second = (await login(a.port, { username: 'alice', password: ALICE_PW })).json.token as string
  assert.equal((await rawGet(a.port, '/wiki/P', bearer(second))).status, 200)
  assert.equal((await rawGet(b.port, '/wiki/P', bearer(second))).status, 200)
  assert.equal((await send(b.port, 'DELETE', '/api/authorize', { headers: bearer(second) })).status, 200)
  const reverse = await until401(() => rawGet(a.port, '/wiki/P', bearer(second)), ['E1002'])
  assert.ok(reverse.ms < 1000, `A refused the token revoked on B after ${reverse.ms} ms: ${reverse.last.body}`)

  // login limits are shared through Redis too: failures on A count on B
  for (let i = 0; i < 5; i++) await login(a.port, { username: 'alice', password: 'wrong' })
  const lockedOnB = await login(b.port, { username: 'alice', password: ALICE_PW })
  assert.equal(lockedOnB.status, 429, `alice is locked out on B as well: ${lockedOnB.body}`)
  assert.equal(lockedOnB.json.code, 'E1031')
})

// A session's record slides (tokens.session.ttl is the idle timeout; remember=true sets the JWT's
// exp to tokens.session.remember). Every instance must give the same answer for a session: the
// verified-token cache is a shortcut, never a different answer (CONTRACT §5).
for (const kind of STORE_KINDS)
  test(`${kind}: an idle remembered session is refused alike by every instance; an active one is kept alive for all of them`, async () => {
    const up = await startUpstream()
    const config = sessionConfig(up.url, prefixes.store(kind), { tokens: { session: { ttl: '1s', remember: '7d' } } })
    const a = await startTestGateway(config)
    // a second instance: its own connection to the same Redis prefix, or (memory) the same store object
    const c = await startTestGateway(config, kind === 'memory' ? { store: a.store } : {})

    // active: used on A every 250 ms for 1.6 s (longer than the 1 s idle timeout) → still valid on C
    const active = await sessionLogin(a.port, { remember: true })
    for (let i = 0; i < 7; i++) {
      assert.equal(
        (await rawGet(a.port, '/wiki/P', withCookie(active.cookie.value))).status,
        200,
        'A accepts the active session',
      )
      await sleep(250)
    }
    const onC = await rawGet(c.port, '/wiki/P', withCookie(active.cookie.value))
    assert.equal(onC.status, 200, `an actively used session is valid on every instance: ${onC.body}`)

    // idle: used once on A, then idle past the timeout → refused on A as on C
    const idle = await sessionLogin(a.port, { remember: true })
    assert.equal((await rawGet(a.port, '/wiki/P', withCookie(idle.cookie.value))).status, 200)
    await sleep(1300)
    const idleOnC = await rawGet(c.port, '/wiki/P', withCookie(idle.cookie.value))
    const idleOnA = await rawGet(a.port, '/wiki/P', withCookie(idle.cookie.value))
    assert.equal(idleOnC.status, 401, `C: ${idleOnC.body}`)
    assert.equal(
      idleOnA.status,
      idleOnC.status,
      `A answers as C does for an idle-expired session: A ${idleOnA.status} ${idleOnA.body}, C ${idleOnC.status}`,
    )
  })
