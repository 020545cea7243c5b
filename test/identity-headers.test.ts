import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { rawGet, startTestGateway, startUpstream, TEST_SECRET } from './helpers.js'
import { hashPassword } from '../src/tokens/password.js'
import { login, nowSec, rs256 } from './support/users.js'
import { toolGate } from './support/processes.js'
import { startPhpEcho } from './support/php-echo.js'
import { spoofSpellings } from './support/spoof-headers.js'

// What a PHP application behind keygate reads as the caller's identity: real `php -S`, real
// $_SERVER (PHP folds '-', '_', '.' and more into '_'), hostile header spellings and hostile values.

const { skip } = toolGate(['php'], 'apt-get install -y php-cli')
const API_KEY = 'identity-test-api-key-0123456789abcdef0123'
const SERVICE_USER = 'Bot user'

const php = skip ? null : await startPhpEcho()

const gatewayConfig = (extra: Record<string, unknown> = {}) => ({
  upstream: php!.url,
  routes: [{ path: '/public/', anonymous: true }],
  // no e-mail: keygate sets no X-Auth-Email for this caller, so a client's copy would stand
  serviceUser: { name: SERVICE_USER, id: 7, groups: ['bot'] },
  apiKeys: [{ name: 'k', key: API_KEY, allow: { paths: ['/bots/'] } }],
  ...extra,
})

/** $_SERVER's HTTP_* entries as the PHP upstream read them. */
async function phpSees(port: number, target: string, headers: Record<string, string>) {
  const res = await rawGet(port, target, headers)
  return { status: res.status, server: (res.json?.server ?? {}) as Record<string, string>, body: res.body }
}

test('identity header spellings with dots, underscores and spaces never reach PHP ($_SERVER)', { skip }, async () => {
  const gw = await startTestGateway(gatewayConfig())
  for (const [i, name] of spoofSpellings.entries()) {
    const value = `spoof${i}`
    for (const [target, auth] of [
      ['/public/page', {}],
      ['/bots/page', { Authorization: `ApiKey ${API_KEY}` }],
    ] as const) {
      const seen = await phpSees(gw.port, target, { ...auth, [name]: value })
      if (seen.status === 400) continue // refused by keygate's HTTP parser: nothing reached PHP
      assert.equal(seen.status, 200, `${JSON.stringify(name)} ${target}: ${seen.body}`)
      for (const [key, v] of Object.entries(seen.server)) {
        assert.ok(!String(v).includes(value), `${JSON.stringify(name)} ${target}: PHP read ${key}=${v}`)
      }
      if (target === '/bots/page') {
        assert.equal(seen.server.HTTP_X_AUTH_USER, SERVICE_USER, name)
        assert.equal(seen.server.HTTP_X_AUTH_SCHEME, 'apikey', name)
        assert.equal(
          seen.server.HTTP_X_AUTH_EMAIL,
          undefined,
          `${JSON.stringify(name)}: no e-mail is set for this user`,
        )
      } else {
        assert.equal(seen.server.HTTP_X_AUTH_SCHEME, 'anonymous', name)
        assert.equal(seen.server.HTTP_X_AUTH_USER, undefined, name)
      }
    }
  }
})

test(
  'dotted header names are dropped; forwarding headers keygate sets cannot be imitated with _ or .',
  { skip },
  async () => {
    const gw = await startTestGateway(gatewayConfig())
    const seen = await phpSees(gw.port, '/public/page', {
      'X-Custom.Thing': 'dotted',
      'X-Custom-Other': 'kept',
      X_Real_IP: '203.0.113.66',
      'X-Real.IP': '203.0.113.67',
      X_Forwarded_For: '203.0.113.68',
    })
    assert.equal(seen.status, 200, seen.body)
    assert.equal(seen.server.HTTP_X_CUSTOM_THING, undefined)
    assert.equal(seen.server.HTTP_X_CUSTOM_OTHER, 'kept')
    assert.equal(seen.server.HTTP_X_REAL_IP, '127.0.0.1')
    assert.equal(seen.server.HTTP_X_FORWARDED_FOR, '127.0.0.1')
  },
)

// ---- hostile values, from every source of identity keygate has ----

const CHEAP_SCRYPT = { N: 1024, r: 8, p: 1 }
const PASSWORD = 'identity-test-password-0123'

/** Reads a plain identity header back: the documented encoding is plain percent-encoding (UTF-8). */
const decoded = (v: string | undefined) => (v === undefined ? undefined : decodeURIComponent(v))
const decodedGroups = (v: string | undefined) => (v ? v.split(',').map((g) => decodeURIComponent(g)) : [])

/** Nothing PHP read carries a control character, and no header was made up from a value. */
function assertNoInjection(server: Record<string, string>, row: string) {
  for (const [k, v] of Object.entries(server)) {
    assert.ok(!/\p{Cc}/u.test(String(v)), `${row}: ${k} carries a control character: ${JSON.stringify(v)}`)
    assert.ok(!/INJECTED/.test(k), `${row}: a value became the header ${k}`)
  }
}

const usersFileRows: Array<{
  username: string
  name?: string
  email?: string
  groups: string[]
  header: Record<string, string | undefined>
}> = [
  {
    username: 'comma',
    groups: ['user,sysop', 'editors'],
    header: { HTTP_X_AUTH_USER: 'comma', HTTP_X_AUTH_GROUPS: 'user%2Csysop,editors' },
  },
  {
    username: 'Zoë, 100%',
    email: 'zoë@exämple.org',
    groups: ['Zoë'],
    header: {
      HTTP_X_AUTH_USER: 'Zo%C3%AB, 100%25',
      HTTP_X_AUTH_EMAIL: 'zo%C3%AB@ex%C3%A4mple.org',
      HTTP_X_AUTH_GROUPS: 'Zo%C3%AB',
    },
  },
  {
    username: 'crlf\r\nX-Injected: yes',
    email: 'a@example.org\r\nX-Injected: yes',
    groups: ['g\r\nX-Injected: yes', 'tab\there'],
    header: {
      HTTP_X_AUTH_USER: 'crlf%0D%0AX-Injected: yes',
      HTTP_X_AUTH_EMAIL: 'a@example.org%0D%0AX-Injected: yes',
      HTTP_X_AUTH_GROUPS: 'g%0D%0AX-Injected: yes,tab%09here',
    },
  },
  {
    // (login trims the name it is given, so a spaced name is shown through groups)
    username: 'spaced',
    groups: [' user', 'ops '],
    header: { HTTP_X_AUTH_USER: 'spaced', HTTP_X_AUTH_GROUPS: '%20user,ops%20' },
  },
  { username: 'nul\u0000x\u007f', groups: [], header: { HTTP_X_AUTH_USER: 'nul%00x%7F', HTTP_X_AUTH_GROUPS: '' } },
]

test('users file: hostile names, groups and e-mails reach PHP in the one reversible encoding', { skip }, async () => {
  const users = await Promise.all(
    usersFileRows.map(async (r, i) => ({
      username: r.username,
      passwordHash: await hashPassword(PASSWORD, CHEAP_SCRYPT),
      uid: 100 + i,
      ...(r.email ? { email: r.email } : {}),
      groups: r.groups,
    })),
  )
  const gw = await startTestGateway(
    gatewayConfig({
      users,
      secrets: { jwt: { secret: TEST_SECRET } },
      routes: [{ path: '/admin/', require: { groups: ['sysop'] } }],
    }),
  )
  for (const [i, row] of usersFileRows.entries()) {
    const name = JSON.stringify(row.username)
    const token = await login(gw.port, { username: row.username, password: PASSWORD, token_type: 'access' })
    assert.equal(token.status, 200, `${name}: ${token.body}`)
    const seen = await phpSees(gw.port, '/wiki/Page', { Authorization: `Bearer ${token.json.token}` })
    assert.equal(seen.status, 200, `${name}: ${seen.body}`)
    for (const [k, v] of Object.entries(row.header)) assert.equal(seen.server[k], v, `${name}: ${k}`)
    assert.equal(seen.server.HTTP_X_AUTH_USER_ID, String(100 + i))
    assert.equal(decoded(seen.server.HTTP_X_AUTH_USER), row.username, `${name}: reads back`)
    assert.deepEqual(decodedGroups(seen.server.HTTP_X_AUTH_GROUPS), row.groups, `${name}: groups read back`)
    assertNoInjection(seen.server, name)
  }
  // "user,sysop" is one group, not sysop: keygate and the upstream agree
  const comma = await login(gw.port, { username: 'comma', password: PASSWORD, token_type: 'access' })
  assert.equal((await phpSees(gw.port, '/admin/x', { Authorization: `Bearer ${comma.json.token}` })).status, 403)
})

const IDP = 'https://idp.test'
const IDP_SHARED = 'https://shared-idp.test'
const idpKeys = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
})

const idpToken = (claims: Record<string, unknown>, iss = IDP) =>
  rs256({ iss, exp: nowSec() + 300, iat: nowSec(), ...claims }, idpKeys.privateKey)

const externalRows: Array<{
  row: string
  claims: Record<string, unknown>
  iss?: string
  status: number
  header?: Record<string, string | undefined>
}> = [
  { row: 'trailing tab', claims: { preferred_username: 'admin\t', uid: 1 }, status: 401 },
  { row: 'NUL', claims: { preferred_username: 'admin\u0000', uid: 1 }, status: 401 },
  { row: 'surrounding spaces', claims: { preferred_username: ' admin ', uid: 1 }, status: 401 },
  { row: 'CR LF', claims: { preferred_username: 'admin\r\nX-Injected: yes' }, status: 401 },
  { row: 'LF only', claims: { preferred_username: 'admin\n' }, status: 401 },
  { row: 'DEL', claims: { preferred_username: 'admin\u007f' }, status: 401 },
  { row: 'C1 control', claims: { preferred_username: 'admin\u0085' }, status: 401 },
  { row: 'line separator', claims: { preferred_username: 'admin\u2028' }, status: 401 },
  { row: 'no-break space', claims: { preferred_username: '\u00a0admin' }, status: 401 },
  { row: 'control in a group', claims: { preferred_username: 'alice', groups: ['user\r\nsysop'] }, status: 401 },
  { row: 'spaced group', claims: { preferred_username: 'alice', groups: ['sysop '] }, status: 401 },
  { row: 'CR LF in e-mail', claims: { preferred_username: 'alice', email: 'a@x\r\nX-Injected: yes' }, status: 401 },
  { row: 'control in name', claims: { preferred_username: 'alice', name: 'Alice\u0000' }, status: 401 },
  {
    row: 'admin with uid 1: kept apart from the local admin',
    claims: { preferred_username: 'admin', uid: 1, groups: ['user'] },
    status: 200,
    header: {
      HTTP_X_AUTH_USER: 'https://idp.test#admin',
      HTTP_X_AUTH_USER_ID: '0',
      HTTP_X_AUTH_GROUPS: 'user',
      HTTP_X_AUTH_SCHEME: 'bearer',
    },
  },
  {
    row: 'comma in a group',
    claims: { preferred_username: 'alice', groups: ['user,sysop'] },
    status: 200,
    header: { HTTP_X_AUTH_USER: 'https://idp.test#alice', HTTP_X_AUTH_GROUPS: 'user%2Csysop' },
  },
  {
    row: 'non-ASCII and %',
    claims: { preferred_username: 'Zoë%', email: 'zoë@example.org', groups: ['Ärzte'] },
    status: 200,
    header: {
      HTTP_X_AUTH_USER: 'https://idp.test#Zo%C3%AB%25',
      HTTP_X_AUTH_EMAIL: 'zo%C3%AB@example.org',
      HTTP_X_AUTH_GROUPS: '%C3%84rzte',
    },
  },
  {
    row: 'an issuer configured to share the namespace and map uid',
    iss: IDP_SHARED,
    claims: { preferred_username: 'carol', uid: 42 },
    status: 200,
    header: { HTTP_X_AUTH_USER: 'corp-carol', HTTP_X_AUTH_USER_ID: '42' },
  },
  {
    row: 'uid claim that is not a number',
    iss: IDP_SHARED,
    claims: { preferred_username: 'carol', uid: '1' },
    status: 401,
  },
]

test(
  'external issuer: control characters and surrounding spaces are refused (E1001); its users stay apart',
  { skip },
  async () => {
    const gw = await startTestGateway(
      gatewayConfig({
        secrets: { jwt: { secret: TEST_SECRET } },
        issuers: [
          { issuer: IDP, publicKey: idpKeys.publicKey },
          { issuer: IDP_SHARED, publicKey: idpKeys.publicKey, usernamePrefix: 'corp-', uidClaim: 'uid' },
        ],
        routes: [{ path: '/admin/', require: { groups: ['sysop'] } }],
      }),
    )
    for (const r of externalRows) {
      const seen = await phpSees(gw.port, '/wiki/Page', { Authorization: `Bearer ${idpToken(r.claims, r.iss)}` })
      assert.equal(seen.status, r.status, `${r.row}: ${seen.body}`)
      if (r.status === 401) {
        assert.equal(JSON.parse(seen.body).code, 'E1001', r.row)
        continue
      }
      for (const [k, v] of Object.entries(r.header ?? {})) assert.equal(seen.server[k], v, `${r.row}: ${k}`)
      assertNoInjection(seen.server, r.row)
    }
    const forged = await phpSees(gw.port, '/admin/x', {
      Authorization: `Bearer ${idpToken({ preferred_username: 'alice', groups: ['user,sysop'] })}`,
    })
    assert.equal(forged.status, 403, 'a comma in a group forges no group')
  },
)

// identityFromUpstream: a stand-in for the wiki's meta=userinfo, answering per the `case` cookie
const upstreamRows: Array<{
  row: string
  userinfo: Record<string, unknown>
  status: number
  header?: Record<string, string>
}> = [
  { row: 'trailing tab', userinfo: { id: 1, name: 'Admin\t', groups: ['sysop'] }, status: 401 },
  { row: 'NUL', userinfo: { id: 1, name: 'Admin\u0000' }, status: 401 },
  { row: 'leading space', userinfo: { id: 1, name: ' Admin' }, status: 401 },
  { row: 'CR LF', userinfo: { id: 1, name: 'Admin\r\nX-Injected: yes' }, status: 401 },
  { row: 'control in a group', userinfo: { id: 2, name: 'Bob', groups: ['user\nsysop'] }, status: 401 },
  { row: 'CR LF in e-mail', userinfo: { id: 2, name: 'Bob', email: 'b@x\r\nX-Injected: yes' }, status: 401 },
  {
    row: 'comma in a group',
    userinfo: { id: 2, name: 'Bob', groups: ['user,sysop', '*'] },
    status: 200,
    header: { HTTP_X_AUTH_USER: 'Bob', HTTP_X_AUTH_GROUPS: 'user%2Csysop,*', HTTP_X_AUTH_SCHEME: 'upstream' },
  },
  {
    row: 'non-ASCII',
    userinfo: { id: 3, name: 'Zoë', email: 'zoë@example.org', groups: [] },
    status: 200,
    header: { HTTP_X_AUTH_USER: 'Zo%C3%AB', HTTP_X_AUTH_USER_ID: '3', HTTP_X_AUTH_EMAIL: 'zo%C3%AB@example.org' },
  },
]

test('identityFromUpstream: hostile wiki answers give no identity; good ones reach PHP encoded', { skip }, async () => {
  const wiki = await startUpstream((req, res) => {
    const n = Number(/case=(\d+)/.exec(req.headers.cookie ?? '')?.[1])
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ query: { userinfo: upstreamRows[n]!.userinfo } }))
  })
  const gw = await startTestGateway(
    // `case` stands in for the wiki's session cookie
    gatewayConfig({
      identityFromUpstream: { url: `${wiki.url}/w/api.php?action=query&meta=userinfo&format=json`, cookies: ['case'] },
    }),
  )
  for (const [i, r] of upstreamRows.entries()) {
    const seen = await phpSees(gw.port, '/wiki/Page', { Cookie: `case=${i}` })
    assert.equal(seen.status, r.status, `${r.row}: ${seen.body}`)
    if (r.status === 401) continue
    for (const [k, v] of Object.entries(r.header ?? {})) assert.equal(seen.server[k], v, `${r.row}: ${k}`)
    assertNoInjection(seen.server, r.row)
  }
})
