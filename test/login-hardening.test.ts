import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { connect } from 'node:net'
import { once } from 'node:events'
import { rawGet, rawRequest, startTestGateway, startUpstream } from './helpers.js'
import { auditChannel, type AuditEvent } from '../src/observe.js'
import {
  ALICE_PW,
  BOB_PW,
  JWT_SECRET,
  PUBLIC_BASE,
  SALT,
  STORE_KINDS,
  VERIFY_KEY,
  bearer,
  login,
  makeUsers,
  redisPrefixes,
  send,
} from './support/users.js'

// Issue 11: the login endpoint under attack — parallel guessing past the lockout, oversized and
// deeply nested bodies, unbounded store growth from anonymous input, and login CSRF.

const users = await makeUsers()
const prefixes = redisPrefixes('login-hardening')

// Every password check, of a known user or the stand-in for an unknown one, is one scrypt
// derivation. Counting node:crypto's scrypt itself observes the checks without trusting the code
// under test to report them.
const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')
const realScrypt = crypto.scrypt
let scryptCalls = 0
crypto.scrypt = ((...args: Parameters<typeof realScrypt>) => {
  scryptCalls++
  return (realScrypt as (...a: unknown[]) => void)(...args)
}) as typeof realScrypt
syncBuiltinESMExports()

async function countPasswordChecks<T>(fn: () => Promise<T>): Promise<{ result: T; checks: number }> {
  const before = scryptCalls
  const result = await fn()
  return { result, checks: scryptCalls - before }
}

function config(upstream: string, store: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    upstream,
    ...store,
    secrets: { jwt: { secret: JWT_SECRET } },
    users,
    loginLimit: { perUser: 5, perIp: 20, window: '15m' },
    ...extra,
  }
}

const tally = (codes: string[]) =>
  codes.reduce<Record<string, number>>((acc, c) => ({ ...acc, [c]: (acc[c] ?? 0) + 1 }), {})

/** 200 attempts for alice at once over the given gateways in turn, the last with the right password. */
async function parallelGuesses(ports: number[]) {
  const attempts = Array.from({ length: 200 }, (_, i) =>
    login(ports[i % ports.length]!, { username: 'alice', password: i === 199 ? ALICE_PW : `guess-${i}` }),
  )
  const answers = await Promise.all(attempts)
  return answers.map((r) => String(r.json?.code ?? r.status))
}

function assertLockoutHeld(codes: string[], checks: number) {
  const seen = tally(codes)
  assert.ok(
    checks <= 5,
    `at most perUser (5) passwords checked, saw ${checks} scrypt runs; answers ${JSON.stringify(seen)}`,
  )
  assert.equal(seen.E0000, undefined, `the right password sent last is not accepted: ${JSON.stringify(seen)}`)
  assert.equal((seen.E1026 ?? 0) + (seen.E1031 ?? 0), 200, JSON.stringify(seen))
  assert.ok((seen.E1026 ?? 0) <= 5, JSON.stringify(seen))
}

for (const kind of STORE_KINDS) {
  test(`${kind}: 200 parallel logins for one user check at most perUser passwords; the right one is refused once locked`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(config(up.url, prefixes.store(kind)))
    const { result: codes, checks } = await countPasswordChecks(() => parallelGuesses([gw.port]))
    assertLockoutHeld(codes, checks)
    const after = await countPasswordChecks(() => login(gw.port, { username: 'alice', password: ALICE_PW }))
    assert.equal(after.result.status, 429, after.result.body)
    assert.equal(after.checks, 0, 'a locked-out attempt checks no password')
  })

  test(`${kind}: logins that succeed, and attempts refused for a locked user, do not use up the address's budget`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(
      config(up.url, prefixes.store(kind), { loginLimit: { perUser: 2, perIp: 3, window: '15m' } }),
    )
    for (let i = 0; i < 5; i++)
      assert.equal((await login(gw.port, { username: 'bob', password: BOB_PW })).status, 200, `login ${i}`)
    for (let i = 0; i < 2; i++)
      assert.equal((await login(gw.port, { username: 'alice', password: 'wrong' })).json.code, 'E1026')
    for (let i = 0; i < 4; i++)
      assert.equal((await login(gw.port, { username: 'alice', password: 'wrong' })).json.code, 'E1031')
    // two failures so far from this address: one more failure is allowed, then the address is locked
    assert.equal((await login(gw.port, { username: 'bob', password: BOB_PW })).status, 200)
    assert.equal((await login(gw.port, { username: 'nobody', password: 'x' })).json.code, 'E1026')
    const locked = await login(gw.port, { username: 'bob', password: BOB_PW })
    assert.equal(locked.json.code, 'E1031', locked.body)
  })
}

test('two instances sharing one Redis: 200 parallel logins spread over both check at most perUser passwords', async () => {
  const up = await startUpstream()
  const shared = prefixes.store('redis', `shared-${Date.now()}`)
  const a = await startTestGateway(config(up.url, shared))
  const b = await startTestGateway(config(up.url, shared))
  const { result: codes, checks } = await countPasswordChecks(() => parallelGuesses([a.port, b.port]))
  assertLockoutHeld(codes, checks)
  assert.equal((await login(b.port, { username: 'alice', password: ALICE_PW })).status, 429)
  assert.equal((await login(a.port, { username: 'alice', password: ALICE_PW })).status, 429)
})

// ------------------------------------------------------------------ bodies of keygate's own endpoints

test('a deeply nested 1 MB JSON body to /api/refresh, /api/authorize and user-token/generate is refused at once (400 E1030); health stays quick', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(config(up.url, {}))
  const nested = '['.repeat(500_000) + ']'.repeat(500_000)
  const targets = ['/api/refresh', '/api/authorize', '/mws/v1/user-token/generate']
  const timed = async <T>(fn: () => Promise<T>) => {
    const started = performance.now()
    const result = await fn()
    return { result, ms: performance.now() - started }
  }
  // three at once, one per endpoint, twice over; the health probe runs meanwhile
  const hostile = Promise.all(
    [...targets, ...targets].map((path) =>
      timed(() => send(gw.port, 'POST', path, { headers: { 'Content-Type': 'application/json' }, body: nested })),
    ),
  )
  const health = await timed(() => rawGet(gw.port, '/_keygate/health'))
  const answers = await hostile
  for (const [i, { result, ms }] of answers.entries()) {
    assert.equal(result.status, 400, `${targets[i % 3]}: ${result.body}`)
    assert.equal(result.json.code, 'E1030', `${targets[i % 3]}: ${result.body}`)
    assert.ok(ms < 500, `${targets[i % 3]} answered in ${Math.round(ms)} ms`)
  }
  assert.equal(health.result.status, 200)
  assert.ok(health.ms < 250, `health answered in ${Math.round(health.ms)} ms while the bodies arrived`)
  // sent without a length (chunked), the bound holds as the bytes arrive
  const half = nested.length / 2
  const chunk = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n`
  const chunked = await rawRequest(
    gw.port,
    'POST /api/refresh HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n' +
      'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      chunk(nested.slice(0, half)) +
      chunk(nested.slice(half)) +
      '0\r\n\r\n',
  )
  assert.equal(chunked.json?.code, 'E1030', chunked.body)
  // an ordinary login body is well inside the bound
  assert.equal((await login(gw.port, { username: 'bob', password: BOB_PW })).status, 200)
})

// ------------------------------------------------------------------ store growth from anonymous input

for (const kind of STORE_KINDS) {
  test(`${kind}: an over-long username is refused before it reaches the store or the audit trail; counters are keyed by a hash`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(config(up.url, prefixes.store(kind)))
    const audited: AuditEvent[] = []
    const onAudit = (e: unknown) => audited.push(e as AuditEvent)
    auditChannel.subscribe(onAudit)
    try {
      const long = 'x'.repeat(4000)
      for (let i = 0; i < 5; i++) {
        const r = await login(gw.port, { username: `${long}${i}`, password: 'guess' })
        assert.equal(r.status, 400, r.body)
        assert.equal(r.json.code, 'E1030')
      }
      assert.deepEqual(await gw.store.keys('login:'), [], 'nothing counted for a name no user can have')
      // 256 bytes is still a username: counted, under a fixed-size key
      const longest = 'é'.repeat(128)
      assert.equal((await login(gw.port, { username: longest, password: 'guess' })).json.code, 'E1026')
      const keys = await gw.store.keys('login:user:')
      assert.equal(keys.length, 1, String(keys))
      assert.match(keys[0]!, /^login:user:[0-9a-f]{64}$/)
      assert.equal((await login(gw.port, { username: `${longest}x`, password: 'guess' })).json.code, 'E1030')
    } finally {
      auditChannel.unsubscribe(onAudit)
    }
    const sizes = audited.map((e) => JSON.stringify(e).length)
    assert.ok(
      sizes.every((n) => n < 1024),
      `audit events stay small: ${sizes.join(', ')}`,
    )
  })

  test(`${kind}: anonymous user tokens are not indexed by address; a user's tokens still are`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(
      config(up.url, prefixes.store(kind), {
        secrets: { salt: SALT, jwt: { secret: JWT_SECRET } },
        tokenApi: { publicBase: PUBLIC_BASE },
        apiKeys: [{ name: 'verifier', key: VERIFY_KEY, allow: { paths: ['/mws/v1/user-token/verify'] } }],
      }),
    )
    const tokens: string[] = []
    for (let i = 0; i < 30; i++) {
      const r = await send(gw.port, i % 2 ? 'POST' : 'GET', '/mws/v1/user-token/generate')
      assert.equal(r.status, 200, r.body)
      tokens.push(r.json.value as string)
    }
    assert.deepEqual(await gw.store.keys('tokidx:'), [], 'no index grows with anonymous requests')
    const verified = await rawGet(gw.port, `/mws/v1/user-token/verify/${tokens[7]}`, {
      Authorization: `ApiKey ${VERIFY_KEY}`,
    })
    assert.equal(verified.status, 200, `an anonymous token still verifies: ${verified.body}`)
    assert.equal(verified.json.id, 0)

    const access = (await login(gw.port, { username: 'alice', password: ALICE_PW })).json.token as string
    const mine = await send(gw.port, 'POST', '/mws/v1/user-token/generate', { headers: bearer(access) })
    assert.equal(mine.status, 200, mine.body)
    assert.ok(
      (await gw.store.keys('tokidx:user:')).some((k) => k.endsWith(':alice')),
      "a signed-in user's token is indexed under the user",
    )
  })
}

// ------------------------------------------------------------------ login CSRF and cookie tossing

const sessionLogin = (port: number, headers: Record<string, string> = {}, username = 'alice', password = ALICE_PW) =>
  login(port, { username, password, token_type: 'session' }, headers)

for (const kind of STORE_KINDS) {
  test(`${kind}: a cross-site session login sets no cookie; same-origin browsers and API clients still sign in`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(config(up.url, prefixes.store(kind)))
    for (const headers of <Record<string, string>[]>[
      { Origin: 'https://evil.example' },
      { Origin: 'null' },
      { Origin: 'https://gw.test.evil.example' },
      { 'Sec-Fetch-Site': 'cross-site' },
      { 'Sec-Fetch-Site': 'same-site', Origin: 'https://gw.test' },
    ]) {
      const r = await sessionLogin(gw.port, headers)
      assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`)
      assert.equal(r.json.code, 'E1004')
      assert.equal(r.headers['set-cookie'], undefined, `no cookie for ${JSON.stringify(headers)}`)
    }
    for (const headers of <Record<string, string>[]>[
      {},
      { Origin: 'http://gw.test' },
      { Origin: 'https://gw.test', 'Sec-Fetch-Site': 'same-origin' },
      { 'Sec-Fetch-Site': 'none' },
    ]) {
      const r = await sessionLogin(gw.port, headers)
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.body}`)
      assert.match(r.headers['set-cookie'] ?? '', /keygate_session=/)
    }
    // a token for an API client is not a cookie: Origin does not matter there
    const access = await login(gw.port, { username: 'alice', password: ALICE_PW }, { Origin: 'https://evil.example' })
    assert.equal(access.status, 200, access.body)
  })

  test(`${kind}: a Secure session cookie is __Host-; a keygate_session planted beside it by a sibling subdomain neither breaks nor replaces it`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(config(up.url, prefixes.store(kind), { trustedProxies: ['127.0.0.2/32'] }))
    // over HTTPS, per the trusted proxy at 127.0.0.2
    const viaHttps = { 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https' }
    const remote = await login(
      gw.port,
      { username: 'alice', password: ALICE_PW, token_type: 'session' },
      viaHttps,
      '127.0.0.2',
    )
    assert.equal(remote.status, 200, remote.body)
    const setCookie = remote.headers['set-cookie'] ?? ''
    assert.match(setCookie, /^__Host-keygate_session=[^;]+; Path=\/; .*Secure/, setCookie)
    assert.doesNotMatch(setCookie, /Domain=/i)
    const victim = /^__Host-keygate_session=([^;]+)/.exec(setCookie)![1]!
    const attacker = (await sessionLogin(gw.port, {}, 'bob', BOB_PW)).headers['set-cookie']!.split(';')[0]!.split(
      '=',
    )[1]!

    const as = async (cookie: string) => {
      const r = await rawGet(gw.port, '/wiki/P', { Cookie: cookie })
      return { status: r.status, user: up.seen.at(-1)?.headers['x-auth-user'], body: r.body }
    }
    // the planted plain cookie is ignored when the __Host- one is there, whatever the order
    for (const cookie of [
      `keygate_session=${attacker}; __Host-keygate_session=${victim}`,
      `__Host-keygate_session=${victim}; keygate_session=${attacker}`,
      `keygate_session=junk; __Host-keygate_session=${victim}`,
    ]) {
      const r = await as(cookie)
      assert.equal(r.status, 200, `${cookie}: ${r.body}`)
      assert.equal(r.user, 'alice', cookie)
    }
    // plain cookies only (plain-HTTP deployments): a junk one beside a valid one does not break it,
    // two valid sessions of different people are refused, not guessed between
    const plainVictim = (await sessionLogin(gw.port)).headers['set-cookie']!.split(';')[0]!.split('=')[1]!
    const withJunk = await as(`keygate_session=junk.planted.value; keygate_session=${plainVictim}`)
    assert.equal(withJunk.status, 200, withJunk.body)
    assert.equal(withJunk.user, 'alice')
    const twoPeople = await as(`keygate_session=${attacker}; keygate_session=${plainVictim}`)
    assert.equal(twoPeople.status, 400, twoPeople.body)
    const flood = await as(Array.from({ length: 5 }, () => `keygate_session=${plainVictim}`).join('; '))
    assert.equal(flood.status, 400, 'more session cookies than a browser sends are refused')
    // logout clears both names
    const socket = connect({ port: gw.port, host: '127.0.0.1', localAddress: '127.0.0.2' })
    await once(socket, 'connect')
    socket.write(
      `POST /api/logout HTTP/1.1\r\nHost: gw.test\r\nCookie: __Host-keygate_session=${victim}\r\n` +
        'X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    )
    let head = ''
    for await (const chunk of socket) head += String(chunk)
    assert.match(head, /^HTTP\/1.1 200 /)
    const cleared = [...head.matchAll(/^set-cookie: (.*)$/gim)].map((m) => m[1]!.trim())
    assert.equal(cleared.length, 2, String(cleared))
    assert.match(cleared[0]!, /^__Host-keygate_session=; Path=\/; Max-Age=0;.*Secure/)
    assert.match(cleared[1]!, /^keygate_session=; Path=\/; Max-Age=0;.*Secure/)
  })
}
