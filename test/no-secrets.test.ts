import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { hashPassword } from '../src/tokens/password.js'
import { rawGet, rawRequest, startTestGateway, startUpstream, TEST_SECRET, type RawResponse } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { REDIS_URL, redisPrefixes } from './support/users.js'
import { runKeygate, startKeygate } from './support/keygate-process.js'

// CONTRACT §1: logs never hold a secret, a token, a password or an Authorization header, not even
// a token inside a path. A gateway process runs a scripted session touching every kind of
// credential (passwords, ApiKey, app tokens, user tokens, Bearer, session cookie, refresh), then
// every byte it wrote (request log on stdout, stderr, the audit file) and every admin command's
// output is searched for every secret and token value used.

const PREFIX = redisPrefixes('no-secrets').base

// Distinctive values: a hit can only mean a leak.
const PASSWORD = 'pw-Kx81-never-log-me'
const WRONG_PASSWORD = 'pw-Zq27-wrong-never-log-me'
const API_KEY = 'apikey-Vb55-never-log-me-0123456789abcdef'
const JWT_SECRET = 'jwtsecret-Hn62-never-log-me-0123456789abcdef'
const SALT = 'salt-Pw90-never-log-me-0123456789abcdef'
const BOGUS_BEARER = 'bogus-Rt13-never-log-me'

function request(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
  type = 'application/json',
): Promise<RawResponse> {
  const lines = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  const bodyHeaders =
    body === undefined ? '' : `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
  return rawRequest(
    port,
    `${method} ${path} HTTP/1.1\r\nHost: gw.test\r\n${lines}${bodyHeaders}Connection: close\r\n\r\n${body ?? ''}`,
  )
}

const openEnvelope = (value: string): { token: string; sig: string } =>
  JSON.parse(Buffer.from(value, 'base64').toString('utf8'))

test('a scripted session with every kind of credential leaves no secret or token in any log, audit line or admin output', async (t) => {
  const dir = await makeTempDir('nosecrets')
  const auditFile = join(dir, 'audit.log')
  const config = join(dir, 'gateway.yaml')
  writeFileSync(
    config,
    `listen: 127.0.0.1:0
upstream: demo
logLevel: debug
audit: {file: ${auditFile}}
store: {redis: ${REDIS_URL}, prefix: "${PREFIX}"}
secrets:
  salt: ${SALT}
  jwt: {secret: ${JWT_SECRET}}
users:
  - {username: dana, passwordHash: "${await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 })}", uid: 21, name: Dana, email: d@example.org, groups: [user]}
apiKeys:
  - name: chatbot
    key: ${API_KEY}
    allow: {paths: [/mws/v1/app-token, /mws/v1/user-token/verify, /bot/]}
`,
  )
  const { child, port, output } = await startKeygate(config)

  const secrets: string[] = [PASSWORD, WRONG_PASSWORD, API_KEY, JWT_SECRET, SALT, BOGUS_BEARER]
  /** a JWT, and its signature alone (a log that printed part of a token is a leak too) */
  const addJwt = (token: unknown) => {
    assert.equal(typeof token, 'string', 'a token was issued')
    secrets.push(String(token), String(token).split('.')[2]!)
  }
  const ok = (r: RawResponse, what: string) => {
    assert.equal(r.status, 200, `${what}: ${r.status} ${r.body}`)
    return r
  }
  const ApiKey = { Authorization: `ApiKey ${API_KEY}` }

  // passwords: a wrong one, then JSON, form and multipart logins of each token type
  assert.equal(
    (await request(port, 'POST', '/api/authorize', {}, JSON.stringify({ username: 'dana', password: WRONG_PASSWORD })))
      .status,
    401,
  )
  const access = ok(
    await request(port, 'POST', '/api/authorize', {}, JSON.stringify({ username: 'dana', password: PASSWORD })),
    'access login',
  )
  addJwt(access.json.token)
  const session = ok(
    await request(
      port,
      'POST',
      '/api/authorize',
      {},
      `username=dana&password=${encodeURIComponent(PASSWORD)}&token_type=session`,
      'application/x-www-form-urlencoded',
    ),
    'session login',
  )
  addJwt(session.json.token)
  const boundary = 'kgboundary'
  const multipart =
    [
      ['username', 'dana'],
      ['password', PASSWORD],
      ['token_type', 'refresh'],
    ]
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('') + `--${boundary}--\r\n`
  const refresh = ok(
    await request(port, 'POST', '/api/authorize', {}, multipart, `multipart/form-data; boundary=${boundary}`),
    'refresh login',
  )
  addJwt(refresh.json.token)
  const refreshed = ok(
    await request(port, 'POST', '/api/refresh', {}, JSON.stringify({ refresh_token: refresh.json.token })),
    'refresh',
  )
  addJwt(refreshed.json.token)
  addJwt(refreshed.json.refresh_token)

  // Bearer, session cookie, a bogus token, a token in a query string
  const bearer = { Authorization: `Bearer ${access.json.token}` }
  ok(await rawGet(port, '/wiki/Page', bearer), 'Bearer')
  ok(await rawGet(port, '/wiki/Page', { Cookie: `keygate_session=${session.json.token}` }), 'session cookie')
  assert.equal((await rawGet(port, '/wiki/Page', { Authorization: `Bearer ${BOGUS_BEARER}` })).status, 401)
  ok(await rawGet(port, `/wiki/Page?access_token=${access.json.token}`, bearer), 'token in the query')

  // ApiKey: allowed, refused, and generating an app token
  ok(await rawGet(port, '/bot/ask', ApiKey), 'ApiKey')
  assert.equal((await rawGet(port, '/wiki/Page', ApiKey)).status, 403)
  const app = ok(await request(port, 'POST', '/mws/v1/app-token/generate', ApiKey, '{}'), 'app token')
  const appInner = openEnvelope(String(app.json.value))
  secrets.push(String(app.json.value), appInner.token, appInner.sig)
  ok(await rawGet(port, '/wiki/Page', { Authorization: `AppToken ${appInner.token}` }), 'AppToken')
  ok(await rawGet(port, '/wiki/Page', { Authorization: `AppToken ${app.json.value}` }), 'AppToken envelope')
  ok(await rawGet(port, `/mws/v1/app-token/verify/${appInner.token}`, ApiKey), 'app token verify in the path')

  // user tokens: bare and in an envelope, verified in the path, in a body and as an envelope
  const user1 = ok(await rawGet(port, '/mws/v1/user-token/generate', bearer), 'user token')
  secrets.push(String(user1.json.value))
  ok(await rawGet(port, `/mws/v1/user-token/verify/${user1.json.value}`, ApiKey), 'user token verify in the path')
  const user2 = ok(await rawGet(port, '/mws/v1/user-token/generate', bearer), 'user token 2')
  secrets.push(String(user2.json.value))
  ok(
    await request(port, 'POST', '/mws/v1/user-token/verify', ApiKey, JSON.stringify({ token: user2.json.value })),
    'user token verify in a body',
  )
  const user3 = ok(
    await rawGet(port, '/w/rest.php/mws/v1/user-token/generate?withIssuer=true', bearer),
    'user token envelope',
  )
  const user3Inner = openEnvelope(String(user3.json.value))
  secrets.push(String(user3.json.value), user3Inner.token, user3Inner.sig)
  ok(
    await request(port, 'POST', '/mws/v1/user-token/verify', ApiKey, JSON.stringify({ envelope: user3.json.value })),
    'user token envelope verify',
  )
  // a used single-use token in the path: refused, and still not logged
  assert.equal((await rawGet(port, `/mws/v1/user-token/verify/${user1.json.value}`, ApiKey)).status, 400)

  // revoking: the app token in the path, the Bearer token by logout, and the admin commands
  ok(await request(port, 'DELETE', `/mws/v1/app-token/${appInner.token}`, ApiKey), 'app token revoke')
  ok(await request(port, 'POST', '/api/logout', bearer, '{}'), 'logout')
  const adminOut: string[] = []
  for (const args of [
    ['tokens', 'list'],
    ['tokens', 'list', '--json'],
    ['sessions', 'list', '--json'],
    ['apptokens', 'list', '--json'],
    ['sessions', 'revoke', '--user', 'dana'],
  ]) {
    const r = await runKeygate([...args, '--config', config])
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.out}${r.err}`)
    adminOut.push(r.out + r.err)
  }

  // stop the gateway: its last lines are written
  child.kill('SIGTERM')
  await once(child, 'exit')
  const logs = output()
  const audit = existsSync(auditFile) ? readFileSync(auditFile, 'utf8') : ''
  await t.test('the gateway wrote its audit trail, so the search below covers it', () => {
    assert.match(audit, /"kind":"token\.issued"/, 'the gateway audited the logins')
    assert.match(audit, /"kind":"login\.failed"/, 'the failed login was audited')
  })
  assert.match(audit, /"source":"admin-cli","kind":"token\.revoked"/, 'the admin command audited its revocation')
  assert.match(
    logs,
    /"path":"\/mws\/v1\/user-token\/verify\/\[redacted\]"/,
    'the token in the verify path was logged redacted',
  )
  const requestLines = logs.split('\n').filter((l) => l.includes('"req_id"')).length
  assert.equal(requestLines, 24, 'one request line per request (so the search covers every request)')

  const everything = { logs, audit, admin: adminOut.join('\n') }
  for (const secret of secrets) {
    assert.ok(secret.length >= 16, `a secret too short to search for: ${secret.length}`)
    for (const [where, text] of Object.entries(everything)) {
      const at = text.indexOf(secret)
      assert.equal(
        at,
        -1,
        `${where} holds a secret (${secret.slice(0, 6)}…): ${text.slice(Math.max(0, at - 200), at + 50)}`,
      )
    }
  }
  // No Authorization or Cookie header value at all, whatever its scheme.
  for (const [where, text] of Object.entries(everything)) {
    assert.doesNotMatch(
      text,
      /ApiKey [A-Za-z0-9]|Bearer [A-Za-z0-9]|AppToken [A-Za-z0-9]|keygate_session=[A-Za-z0-9]/,
      `${where} holds a credential header`,
    )
  }
})

test('a token in a path is redacted from the request log whatever its spelling, and so is anything token-shaped', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    secrets: { salt: TEST_SECRET, jwt: { alg: 'HS256', secret: TEST_SECRET } },
    apiKeys: [{ name: 'svc', key: API_KEY }],
    routes: [{ path: '/public/', anonymous: true }],
  })
  const hex = randomBytes(32).toString('hex')
  const b64url = randomBytes(32).toString('base64url')
  const jwt = `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'x', n: hex.slice(0, 8) })).toString('base64url')}.${randomBytes(32).toString('base64url')}`
  const key = { Authorization: `ApiKey ${API_KEY}` }
  const rows: Array<[string, string, Record<string, string>]> = [
    ['GET', `/mws/v1/app-token/verify//${hex}`, key],
    ['GET', `/mws/v1/app-token/verify//${hex}`, {}],
    ['GET', `/mws/v1/app%2Dtoken/verify/${hex}`, key],
    ['GET', `/mws/v1/app%2dtoken/verify/${hex}`, {}],
    ['GET', `/mws/v1/%61pp-token/verify/${hex}`, {}],
    ['GET', `/w/rest.php/mws/v1/user-token/verify///${hex}`, {}],
    ['DELETE', `/mws/v1/app-token//${hex}`, key],
    ['GET', `/mws/v1/app-token/verify/${hex}/%2e%2e/x`, {}],
    ['GET', `/mws/v1/app%2Dtoken/verify/${hex};x`, {}],
    ['GET', `/public/${hex}`, {}],
    ['GET', `/public/x/${b64url}/y`, {}],
    ['GET', `/public/${jwt}`, {}],
    ['GET', `/anything/${jwt}`, {}],
  ]
  for (const [method, target, headers] of rows) {
    const lines = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')
    const res = await rawRequest(
      gw.port,
      `${method} ${target} HTTP/1.1\r\nHost: gw.test\r\n${lines}Connection: close\r\n\r\n`,
    )
    assert.ok(res.status > 0, `${method} ${target} was answered`)
  }
  const logged = gw.logs.filter((l) => l.includes('"req_id"'))
  assert.equal(logged.length, rows.length, 'one request line per request')
  const all = gw.logs.join('\n')
  for (const secret of [hex, b64url, jwt, jwt.split('.')[2]!, API_KEY])
    assert.ok(!all.includes(secret), `${secret.slice(0, 12)}… is not in the log:\n${all}`)
  assert.equal(logged.filter((l) => l.includes('[redacted]')).length, rows.length, 'every line says where it was')
  // ordinary long page titles stay readable
  const titles = ['/public/List_of_2019_films_in_the_United_States', '/public/ISO_3166-1_alpha-2_country_codes']
  for (const t of titles) await rawGet(gw.port, t)
  const withTitles = gw.logs.join('\n')
  for (const t of titles) assert.ok(withTitles.includes(`"path":"${t}"`), `${t} is logged as it is`)
})
