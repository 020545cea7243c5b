import { after, test } from 'node:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startGateway } from '../src/server.js'
import assert from 'node:assert/strict'
import { createHmac, createPublicKey, generateKeyPairSync, verify as verifySig } from 'node:crypto'
import { captureLogs, rawGet, startTestGateway, startUpstream } from './helpers.js'
import { hashPassword } from '../src/tokens/password.js'
import { freePort, kill, startRedis, waitFor } from './support/redis-server.js'
import {
  ALICE_PW,
  BOB_PW,
  OTHER_KEY,
  PUBLIC_BASE,
  SALT,
  STORE_KINDS,
  VERIFY_KEY,
  JWT_SECRET,
  bearer,
  claims,
  decodeJwtPart,
  hs256,
  login,
  makeUsers,
  md5,
  nowSec,
  postForm,
  postJson,
  postMultipart,
  redisPrefixes,
  rs256,
  send,
  sleep,
  unsigned,
  waitForLog,
  type StoreKind,
} from './support/users.js'

// Users, /api/authorize, Bearer JWTs, refresh rotation, MediaWiki user tokens, identityFromUpstream
// and JWKS (issue 4). Every store-dependent behaviour runs against the memory store and Redis.

const users = await makeUsers()
const prefixes = redisPrefixes('users')
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const RSA_PRIVATE_PEM = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const RSA_PUBLIC_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
const UA = 'keygate-test/1.0'

function baseConfig(upstream: string, kind: StoreKind, extra: Record<string, unknown> = {}) {
  return {
    upstream,
    ...prefixes.store(kind),
    secrets: { salt: SALT, jwt: { secret: JWT_SECRET } },
    users,
    tokenApi: { publicBase: PUBLIC_BASE },
    loginLimit: { perUser: 3, perIp: 10, window: '2s' },
    routes: [
      { path: '/public/', anonymous: true },
      { path: '/admin/', require: { groups: ['sysop'] } },
    ],
    apiKeys: [
      { name: 'verifier', key: VERIFY_KEY, cidr: ['127.0.0.1/32'], allow: { paths: ['/mws/v1/user-token/verify'] } },
      { name: 'other', key: OTHER_KEY, allow: { paths: ['/mws/v1/app-token/'], actionModules: ['opensearch'] } },
    ],
    ...extra,
  }
}

async function accessToken(port: number, username = 'alice', password = ALICE_PW, type = 'access'): Promise<string> {
  const res = await login(port, { username, password, token_type: type })
  assert.equal(res.status, 200, `login as ${username}: ${res.body}`)
  return res.json.token as string
}

const verifyUserToken = (port: number, token: string, key = VERIFY_KEY, mount = '/mws/v1') =>
  rawGet(port, `${mount}/user-token/verify/${token}`, { Authorization: `ApiKey ${key}` })

for (const kind of STORE_KINDS) {
  // ------------------------------------------------------------------ /api/authorize

  test(`${kind}: /api/authorize with JSON, a urlencoded form and multipart answers the exact Suffit shape`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const before = Date.now()
    const bodies = [
      await login(gw.port, { username: 'alice', password: ALICE_PW }, { 'User-Agent': UA }),
      await postForm(
        gw.port,
        '/api/authorize',
        { username: 'alice', password: ALICE_PW, token_type: 'access' },
        { 'User-Agent': UA },
      ),
      await postMultipart(
        gw.port,
        '/api/authorize',
        { username: 'alice', password: ALICE_PW, token_type: 'access' },
        { 'User-Agent': UA },
      ),
    ]
    for (const [i, res] of bodies.entries()) {
      assert.equal(res.status, 200, `body #${i}: ${res.body}`)
      const b = res.json
      assert.deepEqual(Object.keys(b).sort(), [
        'cachekey',
        'clientid',
        'code',
        'datetime',
        'elapsed',
        'encrypted',
        'expires',
        'jti',
        'message',
        'referer',
        'status',
        'token',
        'type',
        'user',
      ])
      assert.equal(b.status, true)
      assert.equal(b.code, 'E0000')
      assert.equal(typeof b.message, 'string')
      assert.equal(b.type, 'access')
      assert.match(b.token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a compact JWS')
      const payload = decodeJwtPart(b.token, 1)
      assert.equal(b.jti, payload.jti, "jti is the token's jti")
      assert.equal(payload.sub, 'alice')
      assert.equal(payload.iss, 'keygate')
      assert.match(b.datetime, RFC3339, 'datetime is RFC 3339')
      assert.match(b.expires, RFC3339, 'expires is RFC 3339')
      const issued = Date.parse(b.datetime)
      assert.ok(issued >= before - 1000 && issued <= Date.now() + 1000, `datetime is now: ${b.datetime}`)
      assert.equal(Date.parse(b.expires) - issued, 3600_000, 'access tokens live tokens.access.ttl (1h)')
      assert.equal(Date.parse(b.expires), payload.exp * 1000)
      assert.equal(typeof b.elapsed, 'number')
      assert.ok(b.elapsed >= 0 && b.elapsed < 10, `elapsed in seconds: ${b.elapsed}`)
      assert.equal(b.clientid, md5(`${UA}127.0.0.1`), 'clientid = md5(User-Agent + client IP)')
      assert.equal(typeof b.cachekey, 'string')
      assert.equal(b.referer, '')
      assert.equal(b.encrypted, false)
      assert.deepEqual(
        {
          uid: b.user.uid,
          username: b.user.username,
          name: b.user.name,
          email: b.user.email,
          email_md5: b.user.email_md5,
          groups: b.user.groups,
          role: b.user.role,
          flags: b.user.flags,
        },
        {
          uid: 3,
          username: 'alice',
          name: 'Alice Example',
          email: 'Alice@Example.org',
          email_md5: md5('alice@example.org'),
          groups: ['user', 'editors'],
          role: '', // the user's own role text: none configured
          flags: 5,
        },
      )
    }
    // given clientid, cachekey and referer are echoed; a configured role is used
    const given = await login(
      gw.port,
      { username: 'bob', password: BOB_PW, clientid: 'my-client', cachekey: 'ck-1' },
      { Referer: 'https://app.example.org/login' },
    )
    assert.equal(given.status, 200, given.body)
    assert.equal(given.json.clientid, 'my-client')
    assert.equal(given.json.cachekey, 'ck-1')
    assert.equal(given.json.referer, 'https://app.example.org/login')
    assert.equal(given.json.user.role, 'bureaucrat')
    assert.equal(given.json.user.flags, 0)
    assert.ok(
      !gw.logs.join('').includes(ALICE_PW) && !gw.logs.join('').includes(bodies[0]!.json.token),
      'no password or token in the logs',
    )
    assert.equal(up.seen.length, 0, '/api/authorize never goes upstream')
  })

  test(`${kind}: /api/authorize refusals E1021, E1022, E1020, and E1026 alike for a wrong password and an unknown user`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const cases = [
      { fields: { password: ALICE_PW }, status: 401, code: 'E1021' },
      { fields: { username: '   ', password: ALICE_PW }, status: 401, code: 'E1021' },
      { fields: { username: 'alice' }, status: 401, code: 'E1022' },
      { fields: { username: 'alice', password: '' }, status: 401, code: 'E1022' },
      { fields: { username: 'alice', password: ALICE_PW, token_type: 'bogus' }, status: 400, code: 'E1020' },
      { fields: { username: 'alice', password: ALICE_PW, token_type: 'user' }, status: 400, code: 'E1020' },
    ]
    for (const c of cases) {
      const res = await login(gw.port, c.fields)
      assert.equal(res.status, c.status, `${JSON.stringify(c.fields)}: ${res.body}`)
      assert.equal(res.json.code, c.code, `${JSON.stringify(c.fields)}: ${res.body}`)
      assert.equal(res.json.status, false)
      assert.equal(typeof res.json.message, 'string')
      assert.ok(res.headers['x-request-id'], 'refusals carry X-Request-Id')
    }
    const wrong = await login(gw.port, { username: 'alice', password: 'not-her-password' })
    const unknown = await login(gw.port, { username: 'mallory', password: 'whatever' })
    assert.equal(wrong.status, 401, wrong.body)
    assert.equal(wrong.json.code, 'E1026')
    assert.equal(unknown.status, 401, unknown.body)
    assert.deepEqual(unknown.json, wrong.json, 'unknown user and wrong password give the same body')
    assert.equal(wrong.headers['www-authenticate'], unknown.headers['www-authenticate'])
    // a form body without a password is refused the same way as JSON
    const form = await postForm(gw.port, '/api/authorize', { username: 'alice' })
    assert.equal(form.json.code, 'E1022', form.body)
  })

  test(`${kind}: login lockout per user after 3 failures (429 E1031, Retry-After) and per IP after 10, both reset after the window`, async () => {
    const up = await startUpstream()
    // cheap-hash users for the per-IP part: unknown users cost a default-cost scrypt each, and ten
    // of those could outlast the 2 s window that the failures must fall into
    const fillers = await Promise.all(
      [0, 1, 2, 3].map(async (i) => ({
        username: `filler${i}`,
        passwordHash: await hashPassword('filler', { N: 1024, r: 8, p: 1 }),
        uid: 100 + i,
      })),
    )
    const gw = await startTestGateway(baseConfig(up.url, kind, { users: [...users, ...fillers] }))
    // per user: three failures, then even the right password is refused until the window ends
    for (let i = 0; i < 3; i++)
      assert.equal((await login(gw.port, { username: 'alice', password: `wrong-${i}` })).json.code, 'E1026')
    const locked = await login(gw.port, { username: 'alice', password: ALICE_PW })
    assert.equal(locked.status, 429, locked.body)
    assert.equal(locked.json.code, 'E1031')
    const retryAfter = Number(locked.headers['retry-after'])
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2,
      `Retry-After in whole seconds within the 2s window: ${locked.headers['retry-after']}`,
    )
    // another user from the same IP is not locked out by alice's failures
    assert.equal((await login(gw.port, { username: 'bob', password: BOB_PW })).status, 200)

    // per IP: 10 failures from 127.0.0.2 across different usernames lock that IP out, not 127.0.0.1
    const started = Date.now()
    for (let i = 0; i < 10; i++) {
      const r = await login(
        gw.port,
        { username: i === 9 ? 'nobody' : `filler${i % 4}`, password: 'wrong' },
        {},
        '127.0.0.2',
      )
      assert.equal(r.json.code, 'E1026', `failure ${i}: ${r.body}`)
    }
    assert.ok(Date.now() - started < 1500, `the ten failures fell well inside the window (${Date.now() - started} ms)`)
    const ipLocked = await login(gw.port, { username: 'bob', password: BOB_PW }, {}, '127.0.0.2')
    assert.equal(ipLocked.status, 429, ipLocked.body)
    assert.equal(ipLocked.json.code, 'E1031')
    assert.ok(
      Number(ipLocked.headers['retry-after']) >= 1,
      `Retry-After on the IP lockout: ${ipLocked.headers['retry-after']}`,
    )
    assert.equal((await login(gw.port, { username: 'bob', password: BOB_PW })).status, 200, 'another IP still logs in')

    await sleep(2200)
    const reset = await login(gw.port, { username: 'alice', password: ALICE_PW })
    assert.equal(reset.status, 200, `after the window alice logs in again: ${reset.body}`)
    const ipReset = await login(gw.port, { username: 'bob', password: BOB_PW }, {}, '127.0.0.2')
    assert.equal(ipReset.status, 200, `after the window the IP logs in again: ${ipReset.body}`)
  })

  // ------------------------------------------------------------------ Bearer

  test(`${kind}: a Bearer access token reaches a protected route with the identity headers; group routes refuse others`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const token = await accessToken(gw.port)
    const res = await rawGet(gw.port, '/wiki/Page?x=1', { ...bearer(token), 'X-Auth-User': 'spoofed' })
    assert.equal(res.status, 200, res.body)
    const seen = up.seen.at(-1)!
    assert.equal(seen.url, '/wiki/Page?x=1')
    assert.equal(seen.headers['x-auth-user'], 'alice')
    assert.equal(seen.headers['x-auth-user-id'], '3')
    assert.equal(seen.headers['x-auth-groups'], 'user,editors')
    assert.equal(seen.headers['x-auth-scheme'], 'bearer')
    assert.equal(seen.headers.authorization, undefined, 'the Bearer token is not forwarded')
    assert.equal(res.headers['x-request-id'], seen.headers['x-request-id'])

    // scheme word is case-insensitive; the second use answers from the cache, same result
    assert.equal((await rawGet(gw.port, '/wiki/Page', { Authorization: `bearer ${token}` })).status, 200)

    const admin = await rawGet(gw.port, '/admin/users', bearer(token))
    assert.equal(admin.status, 403, admin.body)
    assert.equal(admin.json.code, 'E1004')
    const bobToken = await accessToken(gw.port, 'bob', BOB_PW)
    assert.equal((await rawGet(gw.port, '/admin/users', bearer(bobToken))).status, 200, 'bob is in sysop')
    assert.equal(up.seen.filter((s) => s.url.startsWith('/admin')).length, 1, 'only bob reached /admin')

    const none = await rawGet(gw.port, '/wiki/Page')
    assert.equal(none.status, 401)
    assert.equal(none.json.code, 'E1000')
  })

  test(`${kind}: a JWT built with node:crypto alone is accepted; alg none, expired, not yet valid and wrong issuer are refused`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const good = hs256(claims())
    const ok = await rawGet(gw.port, '/wiki/Hand', bearer(good))
    assert.equal(ok.status, 200, ok.body)
    assert.equal(up.seen.at(-1)!.headers['x-auth-user'], 'alice')
    assert.equal(up.seen.at(-1)!.headers['x-auth-user-id'], '3')
    // nbf a little ahead, within the 30 s clock skew, is tolerated
    assert.equal((await rawGet(gw.port, '/wiki/Hand', bearer(hs256(claims({ nbf: nowSec() + 10 }))))).status, 200)

    const now = nowSec()
    const refused = [
      { name: 'alg none', token: unsigned(claims()) },
      { name: 'alg none, signature kept', token: hs256(claims(), JWT_SECRET, { alg: 'none', typ: 'JWT' }) },
      { name: 'HS512 header', token: hs256(claims(), JWT_SECRET, { alg: 'HS512', typ: 'JWT' }) },
      { name: 'wrong secret', token: hs256(claims(), `${JWT_SECRET}-other`) },
      { name: 'expired', token: hs256(claims({ iat: now - 7200, exp: now - 3600 })) },
      { name: 'expired beyond the skew', token: hs256(claims({ iat: now - 600, exp: now - 60 })) },
      { name: 'not yet valid', token: hs256(claims({ nbf: now + 3600 })) },
      { name: 'wrong issuer', token: hs256(claims({ iss: 'someone-else' })) },
      { name: 'no issuer', token: hs256(claims({ iss: undefined })) },
      { name: 'no exp', token: hs256(claims({ exp: undefined })) },
      { name: 'unknown type', token: hs256(claims({ type: 'admin' })) },
      {
        name: 'tampered payload',
        token: (() => {
          const [h, , s] = good.split('.')
          return `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'bob', groups: ['sysop'] }))).toString('base64url')}.${s}`
        })(),
      },
    ]
    for (const c of refused) {
      const res = await rawGet(gw.port, '/admin/x', bearer(c.token))
      assert.equal(res.status, 401, `${c.name}: ${res.body}`)
      assert.equal(res.json.code, 'E1001', `${c.name}: ${res.body}`)
    }
    assert.equal(up.seen.filter((s) => s.url.startsWith('/admin')).length, 0, 'no refused token reached the upstream')
  })

  test(`${kind}: with secrets.jwt.audience, a token for another audience (or none) is refused`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(
      baseConfig(up.url, kind, { secrets: { salt: SALT, jwt: { secret: JWT_SECRET, audience: 'wiki-api' } } }),
    )
    assert.equal(
      (await rawGet(gw.port, '/wiki/A', bearer(hs256(claims({ aud: 'wiki-api' }))))).status,
      200,
      'the right audience passes',
    )
    const issued = await accessToken(gw.port)
    assert.equal(decodeJwtPart(issued, 1).aud, 'wiki-api', 'issued tokens carry the audience')
    assert.equal((await rawGet(gw.port, '/wiki/A', bearer(issued))).status, 200)
    for (const aud of ['other-api', undefined, ['other-api']]) {
      const res = await rawGet(gw.port, '/wiki/A', bearer(hs256(claims({ aud }))))
      assert.equal(res.status, 401, `aud ${JSON.stringify(aud)}: ${res.body}`)
      assert.equal(res.json.code, 'E1001')
    }
  })

  test(`${kind}: RS256 — a hand-signed RS256 token passes; HS256 signed with the RSA public key PEM is refused; JWKS publishes the key`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(
      baseConfig(up.url, kind, { secrets: { salt: SALT, jwt: { alg: 'RS256', privateKey: RSA_PRIVATE_PEM } } }),
    )
    const handSigned = rs256(claims(), rsa.privateKey)
    assert.equal(
      (await rawGet(gw.port, '/wiki/R', bearer(handSigned))).status,
      200,
      'RS256 signed with the matching private key',
    )
    for (const [name, token] of [
      ['HS256 with the public key PEM', hs256(claims(), RSA_PUBLIC_PEM)],
      ['HS256 with the public key DER', hs256(claims(), rsa.publicKey.export({ type: 'spki', format: 'der' }))],
      ['HS256 with the configured secret of another gateway', hs256(claims())],
      ['alg none', unsigned(claims())],
      ['RS256 by another key', rs256(claims(), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)],
    ] as const) {
      const res = await rawGet(gw.port, '/wiki/R', bearer(token))
      assert.equal(res.status, 401, `${name}: ${res.body}`)
      assert.equal(res.json.code, 'E1001', `${name}: ${res.body}`)
    }

    const jwks = await rawGet(gw.port, '/.well-known/jwks.json')
    assert.equal(jwks.status, 200, jwks.body)
    assert.equal(jwks.json.keys.length, 1)
    const jwk = jwks.json.keys[0]
    assert.equal(jwk.kty, 'RSA')
    assert.equal(jwk.alg, 'RS256')
    assert.equal(jwk.use, 'sig')
    assert.ok(typeof jwk.kid === 'string' && jwk.kid.length > 0, 'the JWK has a kid')
    for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi'])
      assert.equal(jwk[priv], undefined, `no private member ${priv}`)
    const token = await accessToken(gw.port)
    const [h, p, s] = token.split('.')
    assert.equal(decodeJwtPart(token, 0).alg, 'RS256')
    assert.equal(decodeJwtPart(token, 0).kid, jwk.kid, 'the token names the published key')
    const pub = createPublicKey({ key: jwk, format: 'jwk' })
    assert.ok(
      verifySig('sha256', Buffer.from(`${h}.${p}`), pub, Buffer.from(s!, 'base64url')),
      'the issued token verifies with the published JWK',
    )
    assert.equal(pub.export({ type: 'spki', format: 'pem' }).toString(), RSA_PUBLIC_PEM)
    assert.equal((await rawGet(gw.port, '/wiki/R', bearer(token))).status, 200)
  })

  test(`${kind}: a refresh token used as Bearer is E1020; api tokens are recorded and revocable`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const refresh = await accessToken(gw.port, 'alice', ALICE_PW, 'refresh')
    const asBearer = await rawGet(gw.port, '/wiki/P', bearer(refresh))
    assert.equal(asBearer.status, 400, asBearer.body)
    assert.equal(asBearer.json.code, 'E1020')
    // a hand-made refresh-type token is refused the same way
    assert.equal((await rawGet(gw.port, '/wiki/P', bearer(hs256(claims({ type: 'refresh' }))))).json.code, 'E1020')

    const api = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'api' })
    assert.equal(api.status, 200, api.body)
    assert.equal(api.json.type, 'api')
    assert.equal(
      Date.parse(api.json.expires) - Date.parse(api.json.datetime),
      365 * 86400_000,
      'api tokens live tokens.api.ttl',
    )
    assert.ok(await gw.store.get(`jwt:${api.json.jti}`), 'the api token is recorded in the store by jti')
    assert.ok(!(await gw.store.keys('')).some((k) => k.includes(api.json.token)), 'the store holds no token')
    assert.equal((await rawGet(gw.port, '/wiki/P', bearer(api.json.token))).status, 200)
    // a hand-made api-type token without a record is not an api token of ours
    const forged = await rawGet(gw.port, '/wiki/P', bearer(hs256(claims({ type: 'api' }))))
    assert.equal(forged.status, 401, `an api token without a record: ${forged.body}`)
    assert.equal(forged.json.code, 'E1002')

    const revoke = await send(gw.port, 'DELETE', '/api/authorize', { headers: bearer(api.json.token) })
    assert.equal(revoke.status, 200, revoke.body)
    assert.equal(revoke.json.code, 'E0000')
    assert.equal(await gw.store.get(`jwt:${api.json.jti}`), null, 'the record is gone')
    const after = await rawGet(gw.port, '/wiki/P', bearer(api.json.token))
    assert.equal(after.status, 401, after.body)
    assert.equal(after.json.code, 'E1002')
  })

  test(`${kind}: DELETE /api/authorize revokes the presented access token (E1002 afterwards), other tokens live on`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const token = await accessToken(gw.port)
    const other = await accessToken(gw.port)
    assert.equal((await rawGet(gw.port, '/wiki/P', bearer(token))).status, 200, 'used once: now in the verified cache')
    const res = await send(gw.port, 'DELETE', '/api/authorize', { headers: bearer(token) })
    assert.equal(res.status, 200, res.body)
    assert.equal(res.headers['set-cookie'], undefined, 'no cookie games for a Bearer revoke')
    const afterRevoke = await rawGet(gw.port, '/wiki/P', bearer(token))
    assert.equal(afterRevoke.status, 401, afterRevoke.body)
    assert.equal(afterRevoke.json.code, 'E1002')
    const again = await send(gw.port, 'DELETE', '/api/authorize', { headers: bearer(token) })
    assert.equal(again.json.code, 'E1002', `revoking twice: ${again.body}`)
    assert.equal(
      (await rawGet(gw.port, '/wiki/P', bearer(other))).status,
      200,
      'another token of the same user still works',
    )
    const anon = await send(gw.port, 'DELETE', '/api/authorize')
    assert.equal(anon.status, 401)
    assert.equal(anon.json.code, 'E1000')
  })

  test(`${kind}: a token speaks for its user as configured now: disabled or removed users are refused, changed groups apply (reload)`, async () => {
    const up = await startUpstream()
    const file = join(mkdtempSync(join(tmpdir(), 'kg-users-')), 'gateway.json')
    const cfg = { listen: '127.0.0.1:0', ...baseConfig(up.url, kind) }
    writeFileSync(file, JSON.stringify(cfg))
    const { logger } = captureLogs()
    const gw = await startGateway({ configFile: file, logger, listen: { host: '127.0.0.1', port: 0 } })
    after(() => gw.close())
    const aliceAccess = await accessToken(gw.port)
    const bobAccess = await accessToken(gw.port, 'bob', BOB_PW)
    const bobApi = await accessToken(gw.port, 'bob', BOB_PW, 'api')
    const bobSession = await accessToken(gw.port, 'bob', BOB_PW, 'session')
    const bobRefresh = await accessToken(gw.port, 'bob', BOB_PW, 'refresh')
    const cookie = (v: string) => ({ Cookie: `keygate_session=${v}` })
    for (const h of [bearer(bobAccess), bearer(bobApi), cookie(bobSession)])
      assert.equal((await rawGet(gw.port, '/admin/x', h)).status, 200, 'bob is a sysop')
    assert.equal((await rawGet(gw.port, '/admin/x', bearer(aliceAccess))).status, 403, 'alice is not, yet')

    const [alice, bob] = cfg.users as Array<Record<string, unknown>>
    writeFileSync(
      file,
      JSON.stringify({
        ...cfg,
        users: [
          { ...alice, groups: ['user', 'sysop'] },
          { ...bob, disabled: true },
        ],
      }),
    )
    assert.equal(await gw.reload(), true)
    for (const [what, h, code] of [
      ['access token', bearer(bobAccess), 'E1001'],
      ['api token', bearer(bobApi), 'E1001'],
      ['session', cookie(bobSession), 'E1003'],
    ] as const) {
      const res = await rawGet(gw.port, '/wiki/P', h)
      assert.equal(res.status, 401, `a disabled user's ${what}: ${res.body}`)
      assert.equal(res.json.code, code, what)
    }
    const refreshed = await postJson(gw.port, '/api/refresh', { refresh_token: bobRefresh })
    assert.equal(refreshed.status, 401, `a disabled user's refresh token: ${refreshed.body}`)
    assert.equal(refreshed.json.code, 'E1001')
    const before = up.seen.length
    const admin = await rawGet(gw.port, '/admin/x', bearer(aliceAccess))
    assert.equal(admin.status, 200, `alice's groups are the configured ones now: ${admin.body}`)
    assert.equal(up.seen.length, before + 1)
    assert.equal(up.seen.at(-1)!.headers['x-auth-groups'], 'user,sysop')

    writeFileSync(file, JSON.stringify({ ...cfg, users: [bob] }))
    assert.equal(await gw.reload(), true)
    const removed = await rawGet(gw.port, '/wiki/P', bearer(aliceAccess))
    assert.equal(removed.status, 401, `a removed user's token: ${removed.body}`)
    assert.equal(removed.json.code, 'E1001')
    assert.equal((await rawGet(gw.port, '/admin/x', bearer(bobAccess))).status, 200, 'bob is enabled again')
  })

  test(`${kind}: logout with an external issuer's token is refused (E1020) and writes nothing into keygate's denylist`, async () => {
    const up = await startUpstream()
    const idp = 'https://idp.logout.test'
    const gw = await startTestGateway(
      baseConfig(up.url, kind, { issuers: [{ issuer: idp, publicKey: RSA_PUBLIC_PEM }] }),
    )
    const jti = `idp-chosen-${kind}`
    const token = rs256(
      { iss: idp, sub: 'x', preferred_username: 'carol', jti, iat: nowSec(), exp: nowSec() + 300 },
      RSA_PRIVATE_PEM,
    )
    assert.equal((await rawGet(gw.port, '/wiki/P', bearer(token))).status, 200, 'the IdP token works')
    const out = await send(gw.port, 'DELETE', '/api/authorize', { headers: bearer(token) })
    assert.equal(out.status, 400, `no "Revoked" for a token keygate cannot revoke: ${out.body}`)
    assert.equal(out.json.code, 'E1020')
    assert.equal(await gw.store.get(`revoked:jti:${jti}`), null, "keygate's jti namespace is untouched")
    assert.equal(
      (await rawGet(gw.port, '/wiki/P', bearer(token))).status,
      200,
      'and the answer is honest: it still works',
    )
  })

  // ------------------------------------------------------------------ refresh

  test(`${kind}: /api/refresh rotates: new access + refresh tokens, the old refresh token replayed is E1002`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const first = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'refresh' })
    assert.equal(first.status, 200, first.body)
    assert.equal(first.json.type, 'refresh')
    assert.equal(
      Date.parse(first.json.expires) - Date.parse(first.json.datetime),
      30 * 86400_000,
      'refresh tokens live tokens.refresh.ttl',
    )

    const r1 = await postJson(gw.port, '/api/refresh', { refresh_token: first.json.token })
    assert.equal(r1.status, 200, r1.body)
    assert.equal(r1.json.code, 'E0000')
    assert.equal(r1.json.type, 'access')
    assert.notEqual(r1.json.token, first.json.token)
    assert.equal(typeof r1.json.refresh_token, 'string')
    assert.notEqual(r1.json.refresh_token, first.json.token, 'a new refresh token')
    assert.equal(decodeJwtPart(r1.json.refresh_token, 1).type, 'refresh')
    assert.equal(r1.json.user.username, 'alice')
    assert.equal((await rawGet(gw.port, '/wiki/P', bearer(r1.json.token))).status, 200, 'the new access token works')

    const replay = await postJson(gw.port, '/api/refresh', { refresh_token: first.json.token })
    assert.equal(replay.status, 401, replay.body)
    assert.equal(replay.json.code, 'E1002')

    // the replay ended the whole family: the successor of that rotation too (test/refresh-family.test.ts)
    assert.equal((await postJson(gw.port, '/api/refresh', { refresh_token: r1.json.refresh_token })).json.code, 'E1002')

    // a new chain's refresh token is good once, through a form too
    const second = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'refresh' })
    const r2 = await postForm(gw.port, '/api/refresh', { refresh_token: second.json.token })
    assert.equal(r2.status, 200, r2.body)
    assert.equal((await postJson(gw.port, '/api/refresh', { refresh_token: second.json.token })).json.code, 'E1002')

    // an access token is not a refresh token; garbage is invalid
    const wrongType = await postJson(gw.port, '/api/refresh', { refresh_token: r2.json.token })
    assert.equal(wrongType.json.code, 'E1020', wrongType.body)
    assert.equal((await postJson(gw.port, '/api/refresh', { refresh_token: 'a.b.c' })).json.code, 'E1001')
  })

  // ------------------------------------------------------------------ user tokens

  test(`${kind}: user tokens — anonymous and Bearer generate, ApiKey verify gives the seed shape, single use, redacted in logs`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))

    // anonymous: MediaWiki names the caller by IP, id 0
    const anon = await rawGet(gw.port, '/mws/v1/user-token/generate')
    assert.equal(anon.status, 200, anon.body)
    assert.deepEqual(Object.keys(anon.json), ['value'])
    assert.match(anon.json.value, /^[0-9a-f]{32,}$/, '128+ bits of hex')
    const before = Date.now()
    const v1 = await verifyUserToken(gw.port, anon.json.value)
    assert.equal(v1.status, 200, v1.body)
    assert.deepEqual(Object.keys(v1.json).sort(), [
      'expires',
      'groups',
      'id',
      'lang_code',
      'meta',
      'real_name',
      'username',
      'wiki_id',
    ])
    assert.equal(v1.json.id, 0)
    assert.equal(v1.json.username, '127.0.0.1')
    assert.equal(typeof v1.json.real_name, 'string')
    assert.equal(typeof v1.json.wiki_id, 'string')
    assert.equal(typeof v1.json.lang_code, 'string')
    assert.ok(Array.isArray(v1.json.groups), 'groups is a list')
    assert.equal(typeof v1.json.meta, 'object')
    assert.match(v1.json.expires, RFC3339, 'expires is RFC 3339')
    const left = Date.parse(v1.json.expires) - before
    assert.ok(left > 0 && left <= 10_500, `default user token TTL is 10 s: ${left} ms left`)

    // single use
    const v2 = await verifyUserToken(gw.port, anon.json.value)
    assert.equal(v2.status, 400, v2.body)
    assert.deepEqual(v2.json, { status: false, code: 'E1001', message: 'Invalid or expired token.' })

    // as a Bearer user, with POST
    const token = await accessToken(gw.port)
    const mine = await send(gw.port, 'POST', '/mws/v1/user-token/generate', { headers: bearer(token) })
    assert.equal(mine.status, 200, mine.body)
    const v3 = await verifyUserToken(gw.port, mine.json.value)
    assert.equal(v3.status, 200, v3.body)
    assert.deepEqual(
      { ...v3.json, expires: undefined },
      {
        id: 3,
        username: 'alice',
        real_name: 'Alice Example',
        wiki_id: 'wiki',
        lang_code: 'en',
        groups: ['user', 'editors'],
        meta: v3.json.meta,
        expires: undefined,
      },
    )

    // POST verify with {token}
    const t4 = (await rawGet(gw.port, '/mws/v1/user-token/generate', bearer(token))).json.value
    const v4 = await postJson(
      gw.port,
      '/mws/v1/user-token/verify',
      { token: t4 },
      { Authorization: `ApiKey ${VERIFY_KEY}` },
    )
    assert.equal(v4.status, 200, v4.body)
    assert.equal(v4.json.username, 'alice')

    // unknown, malformed → the same 400
    for (const bad of ['0'.repeat(64), 'nothex', 'A'.repeat(64)]) {
      const r = await verifyUserToken(gw.port, bad)
      assert.equal(r.status, 400, `${bad}: ${r.body}`)
      assert.equal(r.json.code, 'E1001')
    }

    // the token never reaches the log; the path is logged redacted
    assert.ok(
      await waitForLog(gw.logs, /\/mws\/v1\/user-token\/verify\/\[redacted\]/),
      'verify path logged as /mws/v1/user-token/verify/[redacted]',
    )
    const all = gw.logs.join('\n')
    for (const t of [anon.json.value, mine.json.value, t4, token]) assert.ok(!all.includes(t), 'no token in the logs')
    assert.equal(up.seen.length, 0, 'the token API never goes upstream')
  })

  test(`${kind}: user tokens — envelope with withIssuer=true (HMAC checked independently), POST verify {envelope}, tampered sig, /w/rest.php mount, ApiKey limits`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(baseConfig(up.url, kind))
    const token = await accessToken(gw.port)

    const gen = await rawGet(gw.port, '/mws/v1/user-token/generate?withIssuer=true', bearer(token))
    assert.equal(gen.status, 200, gen.body)
    const env = JSON.parse(Buffer.from(gen.json.value, 'base64').toString('utf8'))
    assert.deepEqual(Object.keys(env).sort(), ['sig', 'token', 'verifyCallback'])
    assert.equal(env.verifyCallback, PUBLIC_BASE, 'verifyCallback = tokenApi.publicBase')
    assert.match(env.token, /^[0-9a-f]{32,}$/, 'the token inside is 128+ bits of hex')
    assert.equal(
      env.sig,
      createHmac('sha256', SALT)
        .update(env.verifyCallback + env.token)
        .digest('hex'),
      'sig = hex HMAC-SHA256(salt, verifyCallback + token)',
    )

    // tampered envelopes first: refused without using up the token
    const tamperedSig = Buffer.from(
      JSON.stringify({ ...env, sig: env.sig.replace(/^./, env.sig[0] === '0' ? '1' : '0') }),
    ).toString('base64')
    const tamperedCallback = Buffer.from(
      JSON.stringify({ ...env, verifyCallback: 'https://evil.example.org/w/rest.php' }),
    ).toString('base64')
    for (const [name, envelope] of [
      ['sig', tamperedSig],
      ['callback', tamperedCallback],
      ['not base64', '%%%'],
      ['truncated', gen.json.value.slice(0, 40)],
    ] as const) {
      const r = await postJson(
        gw.port,
        '/mws/v1/user-token/verify',
        { envelope },
        { Authorization: `ApiKey ${VERIFY_KEY}` },
      )
      assert.equal(r.status, 400, `tampered ${name}: ${r.body}`)
      assert.deepEqual(r.json, { status: false, code: 'E1001', message: 'Invalid or expired token.' })
    }
    const ok = await postJson(
      gw.port,
      '/mws/v1/user-token/verify',
      { envelope: gen.json.value },
      { Authorization: `ApiKey ${VERIFY_KEY}` },
    )
    assert.equal(ok.status, 200, ok.body)
    assert.equal(ok.json.id, 3)
    assert.equal(ok.json.username, 'alice')
    const replay = await postJson(
      gw.port,
      '/mws/v1/user-token/verify',
      { envelope: gen.json.value },
      { Authorization: `ApiKey ${VERIFY_KEY}` },
    )
    assert.equal(replay.status, 400, 'an envelope is single use too')

    // withIssuer by POST form field; the bare token out of an envelope verifies by GET
    const gen2 = await postForm(gw.port, '/mws/v1/user-token/generate', { withIssuer: 'true' }, bearer(token))
    assert.equal(gen2.status, 200, gen2.body)
    const env2 = JSON.parse(Buffer.from(gen2.json.value, 'base64').toString('utf8'))
    assert.equal((await verifyUserToken(gw.port, env2.token)).json.username, 'alice')

    // the same endpoints under the wiki's rest.php mount (the key lists /mws/v1 only: it holds across mounts)
    const w = await rawGet(gw.port, '/w/rest.php/mws/v1/user-token/generate', bearer(token))
    assert.equal(w.status, 200, w.body)
    const wv = await verifyUserToken(gw.port, w.json.value, VERIFY_KEY, '/w/rest.php/mws/v1')
    assert.equal(wv.status, 200, wv.body)
    assert.equal(wv.json.username, 'alice')
    const wEnv = await rawGet(gw.port, '/w/rest.php/mws/v1/user-token/generate?withIssuer=1', bearer(token))
    const wEnvOk = await postJson(
      gw.port,
      '/w/rest.php/mws/v1/user-token/verify',
      { envelope: wEnv.json.value },
      { Authorization: `ApiKey ${VERIFY_KEY}` },
    )
    assert.equal(wEnvOk.status, 200, wEnvOk.body)
    assert.ok(
      await waitForLog(gw.logs, /"path":"\/w\/rest\.php\/mws\/v1\/user-token\/verify\/\[redacted\]"/),
      'rest.php verify path logged redacted',
    )

    // a key that does not list verify, no credentials at all, and a user's Bearer token
    const t = (await rawGet(gw.port, '/mws/v1/user-token/generate')).json.value
    const other = await verifyUserToken(gw.port, t, OTHER_KEY)
    assert.equal(other.status, 403, other.body)
    assert.equal(other.json.code, 'E1004')
    const otherPost = await postJson(
      gw.port,
      '/mws/v1/user-token/verify',
      { token: t },
      { Authorization: `ApiKey ${OTHER_KEY}` },
    )
    assert.equal(otherPost.status, 403, otherPost.body)
    const noAuth = await rawGet(gw.port, `/mws/v1/user-token/verify/${t}`)
    assert.equal(noAuth.status, 401, noAuth.body)
    assert.equal(noAuth.json.code, 'E1000')
    const outsideCidr = await rawRequestFrom(gw.port, `/mws/v1/user-token/verify/${t}`, VERIFY_KEY, '127.0.0.2')
    assert.equal(outsideCidr.status, 403, `the verifier key is bound to 127.0.0.1/32: ${outsideCidr.body}`)
    assert.equal((await verifyUserToken(gw.port, t)).status, 200, 'refused attempts did not use the token up')
    assert.ok(!gw.logs.join('\n').includes(t) && !gw.logs.join('\n').includes(env.token), 'no token in the logs')
  })

  test(`${kind}: user tokens expire after tokens.userToken.ttl (1s); singleUse: false allows replay within the TTL`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway(
      baseConfig(up.url, kind, { tokens: { userToken: { ttl: '1s', singleUse: false } } }),
    )
    const a = (await rawGet(gw.port, '/mws/v1/user-token/generate')).json.value
    const b = (await rawGet(gw.port, '/mws/v1/user-token/generate')).json.value
    assert.equal((await verifyUserToken(gw.port, a)).status, 200)
    assert.equal((await verifyUserToken(gw.port, a)).status, 200, 'replay allowed when singleUse is false')
    await sleep(1200)
    for (const t of [a, b]) {
      const r = await verifyUserToken(gw.port, t)
      assert.equal(r.status, 400, r.body)
      assert.deepEqual(r.json, { status: false, code: 'E1001', message: 'Invalid or expired token.' })
    }
  })

  // ------------------------------------------------------------------ identityFromUpstream

  test(`${kind}: identityFromUpstream — the wiki's own cookie authenticates as scheme upstream, generates a user token; anonymous answers give 401; cached`, async () => {
    let userinfoHits = 0
    const up = await startUpstream((req, res) => {
      if (req.url!.startsWith('/w/api.php') && req.url!.includes('meta=userinfo')) {
        userinfoHits++
        const good = /(?:^|;\s*)wiki_session=good(?:;|$)/.test(String(req.headers.cookie ?? ''))
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          good
            ? '{"batchcomplete":"","query":{"userinfo":{"id":12,"name":"WikiUser","groups":["*","user","autoconfirmed"],"email":"w@example.org","realname":"Wiki User"}}}'
            : '{"query":{"userinfo":{"id":0,"name":"127.0.0.1","anon":""}}}',
        )
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ url: req.url }))
    })
    const gw = await startTestGateway(
      baseConfig(up.url, kind, {
        identityFromUpstream: {
          url: '/w/api.php?action=query&meta=userinfo&uiprop=groups|email|realname&format=json',
          cacheTtl: '30s',
        },
      }),
    )
    const pageSeen = () => up.seen.filter((s) => !s.url.includes('meta=userinfo'))

    const res = await rawGet(gw.port, '/wiki/Main_Page', { Cookie: 'wiki_session=good' })
    assert.equal(res.status, 200, res.body)
    const seen = pageSeen().at(-1)!
    assert.equal(seen.url, '/wiki/Main_Page')
    assert.equal(seen.headers['x-auth-user'], 'WikiUser')
    assert.equal(seen.headers['x-auth-user-id'], '12')
    assert.equal(seen.headers['x-auth-groups'], '*,user,autoconfirmed')
    assert.equal(seen.headers['x-auth-scheme'], 'upstream')
    assert.equal(seen.headers.cookie, 'wiki_session=good', 'the wiki cookie still goes upstream')
    const call = up.seen.find((s) => s.url.includes('meta=userinfo'))!
    assert.equal(call.headers.cookie, 'wiki_session=good', "userinfo was asked with the caller's cookie")

    const gen = await rawGet(gw.port, '/mws/v1/user-token/generate', { Cookie: 'wiki_session=good' })
    assert.equal(gen.status, 200, gen.body)
    const v = await verifyUserToken(gw.port, gen.json.value)
    assert.equal(v.status, 200, v.body)
    assert.equal(v.json.id, 12)
    assert.equal(v.json.username, 'WikiUser')
    assert.equal(v.json.real_name, 'Wiki User')
    assert.deepEqual(v.json.groups, ['*', 'user', 'autoconfirmed'])
    assert.equal((await rawGet(gw.port, '/wiki/Other', { Cookie: 'wiki_session=good' })).status, 200)
    assert.equal(
      userinfoHits,
      1,
      `one userinfo call for three requests with the same cookie (cacheTtl): ${userinfoHits}`,
    )

    const anon = await rawGet(gw.port, '/wiki/Main_Page', { Cookie: 'wiki_session=anon' })
    assert.equal(anon.status, 401, anon.body)
    assert.equal(anon.json.code, 'E1000')
    const anonAgain = await rawGet(gw.port, '/wiki/Main_Page', { Cookie: 'wiki_session=anon' })
    assert.equal(anonAgain.status, 401)
    assert.equal(userinfoHits, 2, `the anonymous answer is cached too: ${userinfoHits}`)
    // an anonymous wiki visitor still gets an (IP-named) user token, as the seed allows
    const anonGen = await rawGet(gw.port, '/mws/v1/user-token/generate', { Cookie: 'wiki_session=anon' })
    assert.equal(anonGen.status, 200, anonGen.body)
    assert.equal((await verifyUserToken(gw.port, anonGen.json.value)).json.id, 0)
    assert.equal(
      pageSeen().filter((s) => s.url === '/wiki/Main_Page').length,
      1,
      'the anonymous requests never reached the page',
    )
  })
}

test('HS256 gateway: JWKS is an empty key set (nothing to publish for a shared secret)', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url, 'memory'))
  const jwks = await rawGet(gw.port, '/.well-known/jwks.json')
  assert.equal(jwks.status, 200, jwks.body)
  assert.deepEqual(jwks.json, { keys: [] })
})

test('withIssuer without a salt is refused (nothing to sign the envelope with)', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(baseConfig(up.url, 'memory', { secrets: { jwt: { secret: JWT_SECRET } } }))
  const res = await rawGet(gw.port, '/mws/v1/user-token/generate?withIssuer=true')
  assert.ok(res.status >= 400, `refused: ${res.status} ${res.body}`)
  assert.equal(res.json.status, false)
  assert.equal((await rawGet(gw.port, '/mws/v1/user-token/generate')).status, 200, 'a bare token needs no salt')
})

function rawRequestFrom(port: number, path: string, key: string, localAddress: string) {
  return rawGet(port, path, { Authorization: `ApiKey ${key}` }, { localAddress })
}

/**
 * The app and its wiki in one upstream: meta=userinfo answers WikiUser for a `good` session or
 * UserID cookie, an anonymous visitor otherwise; `asked` is the cookies each call carried.
 */
async function startWiki() {
  const asked: string[] = []
  const up = await startUpstream((req, res) => {
    if (req.url!.includes('meta=userinfo')) {
      asked.push(String(req.headers.cookie ?? ''))
      res.writeHead(200, { 'content-type': 'application/json' })
      const good = /(?:^|;\s*)(?:wikidb_session|wikidbUserID)=good(?:;|$)/.test(String(req.headers.cookie ?? ''))
      return res.end(
        good
          ? '{"query":{"userinfo":{"id":12,"name":"WikiUser","groups":["user"]}}}'
          : '{"query":{"userinfo":{"id":0,"name":"127.0.0.1","anon":""}}}',
      )
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{}')
  })
  return { ...up, asked }
}

const identityFromUpstream = (extra: Record<string, unknown> = {}) => ({
  identityFromUpstream: {
    url: '/w/api.php?action=query&meta=userinfo&format=json',
    callLimit: { perIp: 3, window: '1m' },
    ...extra,
  },
})

test('identityFromUpstream asks the wiki only for its session cookies (configurable names), sends only those, and bounds the calls per client address', async () => {
  const up = await startWiki()
  const asked = up.asked
  const gw = await startTestGateway(baseConfig(up.url, 'memory', identityFromUpstream()))
  const page = (cookie: string, localAddress?: string) =>
    rawGet(gw.port, '/wiki/Main_Page', { Cookie: cookie }, { localAddress })

  // cookies that are not the wiki's (nor keygate's own session cookie) never cause a call
  for (const cookie of ['theme=dark', 'tracking=1; lang=en', `${'x'.repeat(30)}=1`, 'keygate_session=abc', 'session=1'])
    assert.equal((await page(cookie)).status, 401, cookie)
  assert.deepEqual(asked, [], 'the wiki was never asked')

  // a wiki session cookie among others: asked with the wiki's cookies only, and cached for them only
  const ok = await page('theme=dark; wikidb_session=good; tracking=1')
  assert.equal(ok.status, 200, ok.body)
  assert.deepEqual(asked, ['wikidb_session=good'], 'only the wiki cookie went to the wiki')
  assert.equal((await page('wikidb_session=good; other=2')).status, 200, 'other cookies change nothing')
  assert.equal((await page('tracking=9; wikidb_session=good')).status, 200)
  assert.equal(asked.length, 1, 'one call: the cache key is the wiki cookies')
  // MediaWiki's "keep me logged in" cookies count too
  assert.equal((await page('wikidbUserID=good; wikidbToken=t')).status, 200)
  assert.deepEqual(asked.at(-1), 'wikidbUserID=good; wikidbToken=t')

  // made-up session cookies to miss the cache: at most perIp (3) calls per window from one address
  const before = asked.length
  for (let i = 0; i < 10; i++) assert.equal((await page(`wikidb_session=made-up-${i}`)).status, 401)
  assert.equal(asked.length - before, 1, `3 calls per address and window (2 were used above): ${asked.length - before}`)
  // another address has its own bound; an answer already cached needs no call
  assert.equal((await page('wikidb_session=good', '127.0.0.1')).status, 200, 'cached answer')
  for (let i = 0; i < 5; i++) await page(`wikidb_session=other-${i}`, '127.0.0.2')
  assert.equal(asked.length - before, 4, `127.0.0.2 had its own 3 calls: ${asked.length - before}`)

  // the names are configurable
  const asked2 = asked.length
  const custom = await startTestGateway(baseConfig(up.url, 'memory', identityFromUpstream({ cookies: ['mysess'] })))
  assert.equal((await rawGet(custom.port, '/wiki/x', { Cookie: 'wikidb_session=good' })).status, 401)
  assert.equal(asked.length, asked2, 'wikidb_session is not a configured name there')
  await rawGet(custom.port, '/wiki/x', { Cookie: 'mysess=1' })
  assert.deepEqual(asked.slice(asked2), ['mysess=1'])
})

for (const kind of STORE_KINDS) {
  const instances = kind === 'redis' ? 2 : 1
  const who = kind === 'redis' ? 'two gateways on one Redis share' : 'one gateway holds'
  test(`${kind}: identityFromUpstream's callLimit is counted in the store: ${who} perIp (3) wiki calls; beyond, no identity and no call`, async () => {
    const wiki = await startWiki()
    // on Redis, both gateways on one prefix: one fleet sharing one store
    const config = baseConfig(wiki.url, kind, { ...prefixes.store(kind, 'call-limit'), ...identityFromUpstream() })
    const gateways = await Promise.all(Array.from({ length: instances }, () => startTestGateway(config)))
    const page = (i: number, path: string, cookie: string) =>
      rawGet(gateways[i % instances]!.port, path, { Cookie: cookie })

    assert.equal((await page(0, '/wiki/Main_Page', 'wikidb_session=good')).status, 200, 'a wiki user: one call')
    // made-up cookies to miss the cache, spread over the gateways, all from 127.0.0.1
    const statuses: number[] = []
    for (let i = 1; i <= 8; i++) statuses.push((await page(i, '/wiki/Main_Page', `wikidb_session=made-up-${i}`)).status)
    assert.deepEqual(
      statuses,
      statuses.map(() => 401),
    )
    assert.deepEqual(
      wiki.asked,
      ['wikidb_session=good', 'wikidb_session=made-up-1', 'wikidb_session=made-up-2'],
      'three calls in all, whichever gateway was asked',
    )

    // over the bound, uncached cookies get no identity on any gateway: an anonymous route passes
    // the request on without one, and the wiki is not asked
    const before = wiki.seen.length
    for (let i = 0; i < instances; i++) assert.equal((await page(i, '/public/x', 'wikidbUserID=good')).status, 200)
    const reached = wiki.seen.slice(before)
    assert.deepEqual(
      reached.map((s) => s.url),
      gateways.map(() => '/public/x'),
      'no userinfo call',
    )
    assert.ok(reached.every((s) => s.headers['x-auth-user'] === undefined))
    assert.equal((await page(0, '/wiki/Main_Page', 'wikidb_session=good')).status, 200, 'a cached answer needs no call')
    assert.equal(wiki.asked.length, 3)

    if (kind === 'memory') {
      // the memory store counts in its one gateway: another has its own bound
      const other = await startTestGateway(config)
      for (let i = 0; i < 5; i++) await rawGet(other.port, '/wiki/x', { Cookie: `wikidb_session=other-${i}` })
      assert.equal(wiki.asked.length, 6)
    }
  })
}

test("redis down: identityFromUpstream does not call the wiki (no identity, the route's policy judges, never a 5xx); cached answers still serve; Redis back: calls resume", async () => {
  const port = await freePort()
  let redis = await startRedis(port)
  after(() => kill(redis))
  const wiki = await startWiki()
  const gw = await startTestGateway(
    baseConfig(wiki.url, 'redis', {
      store: { redis: `redis://127.0.0.1:${port}`, prefix: 'call-limit-outage:' },
      ...identityFromUpstream(),
    }),
  )
  assert.equal((await rawGet(gw.port, '/wiki/x', { Cookie: 'wikidb_session=good' })).status, 200)
  assert.equal(wiki.asked.length, 1)

  await kill(redis)
  const protectedPage = await rawGet(gw.port, '/wiki/x', { Cookie: 'wikidbUserID=good' })
  assert.equal(protectedPage.status, 401, protectedPage.body)
  assert.equal(protectedPage.json.code, 'E1000')
  const before = wiki.seen.length
  assert.equal((await rawGet(gw.port, '/public/x', { Cookie: 'wikidbUserID=good' })).status, 200)
  const reached = wiki.seen.slice(before)
  assert.deepEqual(
    reached.map((s) => s.url),
    ['/public/x'],
  )
  assert.equal(reached[0]!.headers['x-auth-user'], undefined, 'no identity')
  assert.equal((await rawGet(gw.port, '/wiki/x', { Cookie: 'wikidb_session=good' })).status, 200, 'cached: no call')
  assert.deepEqual(wiki.asked, ['wikidb_session=good'], 'the wiki was not asked while the store was down')

  redis = await startRedis(port)
  await waitFor(
    async () => (await rawGet(gw.port, '/wiki/x', { Cookie: 'wikidbUserID=good' })).status === 200,
    5000,
    'the wiki is asked again once Redis is back',
  )
  assert.deepEqual(wiki.asked, ['wikidb_session=good', 'wikidbUserID=good'])
})
