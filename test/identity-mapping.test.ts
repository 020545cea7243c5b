import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { rawGet, startTestGateway, startUpstream, TEST_SECRET } from './helpers.js'
import { hashPassword } from '../src/tokens/password.js'
import { parseConfigText } from '../src/config/load.js'
import { login, nowSec, rs256 } from './support/users.js'
import { toolGate } from './support/processes.js'
import { startPhpEcho } from './support/php-echo.js'

// identityHeaders.custom: free header names filled from the caller ({username} … {claim:a.b}),
// per route, in the one reversible encoding whatever the source says, and every mapped name
// stripped from client requests in every spelling PHP would read.

const { skip } = toolGate(['php'], 'apt-get install -y php-cli')
const php = skip ? null : await startPhpEcho()
const dir = mkdtempSync(join(tmpdir(), 'keygate-mapping-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const PASSWORD = 'mapping-test-password-0123'
const CUSTOM = {
  'Remote-User': '{username}',
  'X-Roles': '{groups}',
  'X-Forwarded-Email': '{email}',
  'X-Real-Name': '{name}',
  'X-Who': 'uid={uid}; via={scheme}',
  'X-Dept': '{claim:dept}',
  'X-Unit': '{claim:org.unit}',
  'X-Claim-Roles': '{claim:roles}',
  'X-Level': '{claim:level}',
  'X-Blob': '{claim:blob}',
}
const IDP = 'https://idp.test'
const idpKeys = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
})
const idpToken = (claims: Record<string, unknown>) =>
  rs256({ iss: IDP, exp: nowSec() + 300, iat: nowSec(), ...claims }, idpKeys.privateKey)

/** What PHP read: $_SERVER's HTTP_* entries. */
async function phpSees(port: number, target: string, headers: Record<string, string>) {
  const res = await rawGet(port, target, headers)
  return { status: res.status, server: (res.json?.server ?? {}) as Record<string, string>, body: res.body }
}
const decoded = (v: string | undefined) => (v === undefined ? undefined : decodeURIComponent(v))
const decodedList = (v: string | undefined) => (v ? v.split(',').map((g) => decodeURIComponent(g)) : [])
function assertClean(server: Record<string, string>, row: string) {
  for (const [k, v] of Object.entries(server)) {
    assert.ok(/^[\x20-\x7e]*$/.test(String(v)), `${row}: ${k} is not printable ASCII: ${JSON.stringify(v)}`)
    assert.ok(!/INJECTED/i.test(k), `${row}: a value became the header ${k}`)
  }
}

/** A gateway from YAML on disk, so that usersFile is read as in production. */
async function gatewayFromFiles(users: unknown[], extra: Record<string, unknown> = {}) {
  const usersFile = join(dir, `users-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(usersFile, JSON.stringify({ users }))
  const file = join(dir, 'gateway.yaml')
  const loaded = parseConfigText(
    JSON.stringify({
      upstream: php!.url,
      usersFile,
      secrets: { jwt: { secret: TEST_SECRET } },
      identityHeaders: { custom: CUSTOM },
      routes: [
        { path: '/public/', anonymous: true },
        {
          path: '/special/',
          identityHeaders: { custom: { 'Remote-User': 'special:{username}', 'X-Only-Here': '{uid}' } },
        },
      ],
      issuers: [{ issuer: IDP, publicKey: idpKeys.publicKey, usernamePrefix: 'idp-' }],
      ...extra,
    }),
    file,
    {},
  )
  assert.ok(loaded.ok, JSON.stringify(loaded))
  return startTestGateway(loaded.config)
}

const usersFileRows = [
  { username: 'plain', name: 'Plain User', email: 'p@example.org', groups: ['user'] },
  { username: 'Zoë, 100%', name: 'Zoë Ünïcode', email: 'zoë@exämple.org', groups: ['Zoë', 'a,b'] },
  {
    username: 'crlf\r\nX-Injected: yes',
    name: 'Evil\r\nX-Injected: yes',
    email: 'a@example.org\r\nX-Injected: yes',
    groups: ['g\r\nX-Injected: yes', 'tab\there', 'user,sysop'],
  },
  { username: 'nul\u0000x\u007f', name: ' spaced ', email: '', groups: [' lead', 'trail '] },
]

test(
  'users file: hostile names, groups and e-mails reach PHP through the custom headers, encoded and reversible',
  { skip },
  async () => {
    const users = await Promise.all(
      usersFileRows.map(async (r, i) => ({
        ...r,
        passwordHash: await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 }),
        uid: 100 + i,
      })),
    )
    const gw = await gatewayFromFiles(users)
    for (const [i, row] of usersFileRows.entries()) {
      const name = JSON.stringify(row.username)
      const token = await login(gw.port, { username: row.username, password: PASSWORD, token_type: 'access' })
      assert.equal(token.status, 200, `${name}: ${token.body}`)
      const seen = await phpSees(gw.port, '/wiki/Page', { Authorization: `Bearer ${token.json.token}` })
      assert.equal(seen.status, 200, `${name}: ${seen.body}`)
      const s = seen.server
      assert.equal(decoded(s.HTTP_REMOTE_USER), row.username, `${name}: Remote-User reads back`)
      assert.deepEqual(decodedList(s.HTTP_X_ROLES), row.groups, `${name}: X-Roles read back, one group each`)
      assert.equal(decoded(s.HTTP_X_FORWARDED_EMAIL), row.email || undefined, `${name}: e-mail (absent when empty)`)
      assert.equal(decoded(s.HTTP_X_REAL_NAME), row.name, `${name}: real name`)
      assert.equal(s.HTTP_X_WHO, `uid=${100 + i}; via=bearer`)
      assert.equal(s.HTTP_X_DEPT, undefined, 'no claims for a local user: the header is left out')
      assertClean(s, name)
    }
  },
)

const externalRows: Array<{
  row: string
  claims: Record<string, unknown>
  status: number
  want?: Record<string, string | undefined>
}> = [
  {
    row: 'claims of every shape',
    claims: {
      preferred_username: 'eve,ü',
      groups: ['x,y', 'ß'],
      dept: 'R&D\r\nX-Injected: yes',
      org: { unit: 'Ünit %41' },
      roles: ['r1', 'r,2'],
      level: 42,
      blob: { a: 1 },
    },
    status: 200,
    want: {
      HTTP_REMOTE_USER: 'idp-eve,%C3%BC',
      HTTP_X_ROLES: 'x%2Cy,%C3%9F',
      HTTP_X_DEPT: 'R&D%0D%0AX-Injected: yes',
      HTTP_X_UNIT: '%C3%9Cnit %2541',
      HTTP_X_CLAIM_ROLES: 'r1,r%2C2',
      HTTP_X_LEVEL: '42',
      HTTP_X_BLOB: undefined,
      HTTP_X_WHO: 'uid=0; via=bearer',
    },
  },
  {
    row: 'a dotted claim name is found as a whole',
    claims: { preferred_username: 'f', 'org.unit': 'whole' },
    status: 200,
    want: { HTTP_X_UNIT: 'whole' },
  },
  { row: 'CR LF in the user name is refused', claims: { preferred_username: 'eve\r\nX-Injected: yes' }, status: 401 },
  {
    row: 'a control character in a group is refused',
    claims: { preferred_username: 'eve', groups: ['a\u0007'] },
    status: 401,
  },
]

test(
  'external JWT: claims of any shape reach PHP encoded; {claim:…} reads dotted paths; hostile names are refused',
  { skip },
  async () => {
    const gw = await gatewayFromFiles([])
    for (const r of externalRows) {
      const seen = await phpSees(gw.port, '/wiki/Page', { Authorization: `Bearer ${idpToken(r.claims)}` })
      assert.equal(seen.status, r.status, `${r.row}: ${seen.body}`)
      if (r.status !== 200) continue
      for (const [k, v] of Object.entries(r.want ?? {})) assert.equal(seen.server[k], v, `${r.row}: ${k}`)
      assertClean(seen.server, r.row)
    }
    const every = await phpSees(gw.port, '/wiki/Page', { Authorization: `Bearer ${idpToken(externalRows[0]!.claims)}` })
    assert.equal(decoded(every.server.HTTP_X_DEPT), 'R&D\r\nX-Injected: yes', 'reads back exactly')
    assert.deepEqual(decodedList(every.server.HTTP_X_CLAIM_ROLES), ['r1', 'r,2'])
  },
)

const wikiRows: Array<{ row: string; userinfo: Record<string, unknown>; status: number }> = [
  {
    row: 'comma, percent and non-ASCII',
    userinfo: { id: 7, name: 'Zoë, 100%', groups: ['sysop,bot', 'ü'], realname: 'Zoë Ü', email: 'z@x' },
    status: 200,
  },
  { row: 'CR LF in the name', userinfo: { id: 1, name: 'Admin\r\nX-Injected: yes', groups: ['sysop'] }, status: 401 },
  { row: 'CR LF in the real name', userinfo: { id: 1, name: 'Admin', realname: 'A\r\nX-Injected: yes' }, status: 401 },
]

test(
  "identityFromUpstream: the wiki's answer reaches PHP through the custom headers encoded; hostile answers give no identity",
  { skip },
  async () => {
    const wiki = await startUpstream((req, res) => {
      const n = Number(/case=(\d+)/.exec(req.headers.cookie ?? '')?.[1])
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ query: { userinfo: wikiRows[n]!.userinfo } }))
    })
    const gw = await gatewayFromFiles([], {
      identityFromUpstream: { url: `${wiki.url}/w/api.php?action=query&meta=userinfo&format=json`, cookies: ['case'] },
    })
    for (const [i, r] of wikiRows.entries()) {
      const seen = await phpSees(gw.port, '/wiki/Page', { Cookie: `case=${i}` })
      assert.equal(seen.status, r.status, `${r.row}: ${seen.body}`)
      if (r.status !== 200) continue
      const s = seen.server
      assert.equal(decoded(s.HTTP_REMOTE_USER), r.userinfo.name)
      assert.deepEqual(decodedList(s.HTTP_X_ROLES), r.userinfo.groups)
      assert.equal(decoded(s.HTTP_X_REAL_NAME), r.userinfo.realname)
      assert.equal(s.HTTP_X_WHO, 'uid=7; via=upstream')
      assertClean(s, r.row)
    }
  },
)

test(
  'per-route mappings override the global ones; every mapped name is stripped from clients in every spelling',
  { skip },
  async () => {
    const users = [
      {
        username: 'alice',
        passwordHash: await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 }),
        uid: 3,
        groups: ['user'],
      },
    ]
    const gw = await gatewayFromFiles(users)
    const token = await login(gw.port, { username: 'alice', password: PASSWORD, token_type: 'access' })
    const auth = { Authorization: `Bearer ${token.json.token}` }

    const special = await phpSees(gw.port, '/special/x', auth)
    assert.equal(special.server.HTTP_REMOTE_USER, 'special:alice', 'the route overrides Remote-User')
    assert.equal(special.server.HTTP_X_ONLY_HERE, '3', 'and adds its own')
    assert.equal(special.server.HTTP_X_ROLES, 'user', 'the global ones stay')
    const elsewhere = await phpSees(gw.port, '/wiki/x', auth)
    assert.equal(elsewhere.server.HTTP_REMOTE_USER, 'alice')
    assert.equal(elsewhere.server.HTTP_X_ONLY_HERE, undefined)

    const spellings = [
      'Remote-User',
      'remote_user',
      'REMOTE.USER',
      'Remote_User',
      'X-Roles',
      'x_roles',
      'X.Roles',
      'X-Only-Here',
      'x_only.here',
      'X-Forwarded_Email',
    ]
    for (const [i, name] of spellings.entries()) {
      const value = `spoof${i}`
      for (const [target, headers] of [
        ['/public/x', {}],
        ['/wiki/x', auth],
        ['/special/x', auth],
      ] as const) {
        const seen = await phpSees(gw.port, target, { ...headers, [name]: value })
        assert.equal(seen.status, 200, `${name} ${target}: ${seen.body}`)
        for (const [k, v] of Object.entries(seen.server))
          assert.ok(!String(v).includes(value), `${name} ${target}: PHP read ${k}=${v}`)
      }
    }

    // forward-auth answers carry the mapped headers too
    const fa = await rawGet(gw.port, '/_keygate/auth', { ...auth, 'X-Original-URI': '/special/x' })
    assert.equal(fa.status, 200, fa.body)
    assert.equal(fa.headers['remote-user'], 'special:alice')
  },
)

test('config: bad templates and names are reported with their key path', () => {
  const rows: Array<[Record<string, unknown>, string, RegExp]> = [
    [
      { identityHeaders: { custom: { 'X-A': '{nope}' } } },
      'identityHeaders.custom.X-A',
      /unknown placeholder \{nope\}/,
    ],
    [{ identityHeaders: { custom: { 'X-A': '{claim:}' } } }, 'identityHeaders.custom.X-A', /dotted claim path/],
    [
      { identityHeaders: { custom: { 'X-A': '{username' } } },
      'identityHeaders.custom.X-A',
      /not part of a placeholder/,
    ],
    [{ identityHeaders: { custom: { 'X-A': 'tab\there' } } }, 'identityHeaders.custom.X-A', /printable ASCII/],
    [{ identityHeaders: { custom: { Host: '{username}' } } }, 'identityHeaders.custom.Host', /keygate sets or reads/],
    [
      { identityHeaders: { custom: { x_auth_user: '{username}' } } },
      'identityHeaders.custom.x_auth_user',
      /expected a header name/,
    ],
    [
      { identityHeaders: { custom: { 'x-auth-user': '{username}' } } },
      'identityHeaders.custom.x-auth-user',
      /already a fixed/,
    ],
    [
      { routes: [{ path: '/a/', identityHeaders: { custom: { 'X-B': '{uid' } } }] },
      'routes.0.identityHeaders.custom.X-B',
      /placeholder/,
    ],
  ]
  for (const [config, path, message] of rows) {
    const r = parseConfigText(JSON.stringify(config), 'gateway.yaml', {})
    assert.ok(!r.ok, path)
    const p = r.problems.find((x) => x.path === path)
    assert.ok(p, `${path}: ${JSON.stringify(r.problems)}`)
    assert.match(p.message, message)
  }
})
