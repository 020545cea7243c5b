import { after, test } from 'node:test'
import { createServer, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import assert from 'node:assert/strict'
import { startTestGateway, startUpstream } from './helpers.js'
import { makeTempDir, toolGate } from './support/processes.js'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { LDAPMODIFY, LDAP_SUFFIX, SLAPADD, SLAPD, startSlapd } from './support/slapd.js'
import {
  ALICE_PW,
  JWT_SECRET,
  STORE_KINDS,
  bearer,
  login,
  makeUsers,
  redisPrefixes,
  send,
  sleep,
  type StoreKind,
} from './support/users.js'

// Users from a real directory (issue 19, part 6): Debian's slapd, started here with users and
// groups from an LDIF. keygate binds as its service account to search, and as the user to check
// the password.

const gate = toolGate([SLAPD, SLAPADD, LDAPMODIFY], 'apt-get install slapd ldap-utils; .ci/run does')
const prefixes = redisPrefixes('ldap')
const localUsers = await makeUsers()
const SERVICE_PW = 'keygate-service-password'
const PW = { carol: 'carol-directory-pw', dave: 'dave-directory-pw', erin: 'erin-directory-pw', frank: 'frank-pw' }
const past = Math.floor(Date.now() / 1000) - 3600

const person = (uid: string, n: number, password: string, extra: string[] = []) =>
  [
    `dn: uid=${uid},ou=people,${LDAP_SUFFIX}`,
    'objectClass: inetOrgPerson',
    'objectClass: posixAccount',
    `uid: ${uid}`,
    `cn: ${uid[0]!.toUpperCase()}${uid.slice(1)} Directory`,
    'sn: Directory',
    `mail: ${uid}@example.org`,
    `uidNumber: ${n}`,
    `gidNumber: ${n}`,
    `homeDirectory: /home/${uid}`,
    `userPassword: ${password}`,
    ...extra,
  ].join('\n')
const group = (cn: string, members: string[]) =>
  [
    `dn: cn=${cn},ou=groups,${LDAP_SUFFIX}`,
    'objectClass: groupOfNames',
    `cn: ${cn}`,
    ...members.map((m) => `member: uid=${m},ou=people,${LDAP_SUFFIX}`),
  ].join('\n')

const LDIF = [
  `dn: ${LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example`,
  `dn: ou=people,${LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: people`,
  `dn: ou=groups,${LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: groups`,
  `dn: cn=keygate,${LDAP_SUFFIX}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: keygate\nuserPassword: ${SERVICE_PW}`,
  person('carol', 1001, PW.carol, ['employeeType: Editor in chief']),
  person('dave', 1002, PW.dave),
  person('erin', 1003, PW.erin, [`employeeNumber: ${past}`]),
  person('frank', 1004, PW.frank, ['departmentNumber: TRUE']),
  group('staff', ['carol', 'erin', 'frank']),
  group('wiki-editors', ['carol']),
  group('others', ['dave']),
].join('\n\n')

const ldapConfig = (url: string, kind: StoreKind, extra: Record<string, unknown> = {}) => ({
  ...prefixes.store(kind),
  secrets: { jwt: { secret: JWT_SECRET } },
  users: localUsers,
  usersFrom: {
    ldap: {
      url,
      bindDn: `cn=keygate,${LDAP_SUFFIX}`,
      bindPassword: SERVICE_PW,
      baseDn: `ou=people,${LDAP_SUFFIX}`,
      userFilter: '(&(objectClass=inetOrgPerson)(uid={username}))',
      groupBaseDn: `ou=groups,${LDAP_SUFFIX}`,
      groupFilter: '(member={dn})',
      attributes: {
        username: 'uid',
        name: 'cn',
        email: 'mail',
        uid: 'uidNumber',
        role: 'employeeType',
        expires: 'employeeNumber',
        disabled: 'departmentNumber',
      },
      allow: { groups: ['staff'] },
      timeout: '2s',
      cacheTtl: '500ms',
    },
  },
  loginLimit: { perUser: 3, perIp: 100, window: '1m' },
  routes: [{ path: '/x/' }],
  ...extra,
})

for (const kind of STORE_KINDS) {
  test(
    `${kind}: LDAP users log in by binding as themselves; wrong password, unknown user, a user outside the allowed groups, expired and disabled users are E1026`,
    gate,
    async () => {
      const slapd = await startSlapd(LDIF)
      const up = await startUpstream()
      const gw = await startTestGateway(ldapConfig(slapd.url, kind, { upstream: up.url }))

      const ok = await login(gw.port, { username: 'carol', password: PW.carol })
      assert.equal(ok.status, 200, ok.body)
      const u = ok.json.user
      assert.deepEqual(
        { uid: u.uid, username: u.username, name: u.name, email: u.email, role: u.role, groups: [...u.groups].sort() },
        {
          uid: 1001,
          username: 'carol',
          name: 'Carol Directory',
          email: 'carol@example.org',
          role: 'Editor in chief',
          groups: ['staff', 'wiki-editors'],
        },
      )
      assert.equal(u.algorithm, '', 'no password hash: the directory checked it')
      const through = await send(gw.port, 'GET', '/x/page', { headers: bearer(ok.json.token) })
      assert.equal(through.status, 200, through.body)
      const seen = up.seen.at(-1)!.headers
      assert.equal(seen['x-auth-user'], 'carol')
      assert.equal(seen['x-auth-user-id'], '1001')
      assert.deepEqual(String(seen['x-auth-groups']).split(',').sort(), ['staff', 'wiki-editors'])

      const wrong = await login(gw.port, { username: 'carol', password: 'not-carols' })
      const refused = [
        wrong,
        await login(gw.port, { username: 'nobody', password: 'whatever' }),
        await login(gw.port, { username: 'dave', password: PW.dave }), // in "others" only
        await login(gw.port, { username: 'erin', password: PW.erin }), // expired (employeeNumber)
        await login(gw.port, { username: 'frank', password: PW.frank }), // disabled (departmentNumber)
        await login(gw.port, { username: '*', password: PW.carol }), // filter characters are escaped
        await login(gw.port, { username: 'carol)(uid=*', password: PW.carol }),
      ]
      for (const [i, res] of refused.entries()) {
        assert.equal(res.status, 401, `#${i}: ${res.body}`)
        assert.deepEqual(res.json, wrong.json, `#${i}: the same answer as a wrong password`)
      }
      // a local user of the same gateway still logs in from `users`
      assert.equal((await login(gw.port, { username: 'alice', password: ALICE_PW })).status, 200)

      // the login lockout counts directory users too: carol has 1 failure; 2 more, then 429
      await login(gw.port, { username: 'carol', password: 'x1' })
      await login(gw.port, { username: 'carol', password: 'x2' })
      const locked = await login(gw.port, { username: 'carol', password: PW.carol })
      assert.equal(locked.status, 429, locked.body)
      assert.equal(locked.json.code, 'E1031')
    },
  )
}

test(
  "the directory stopped mid-test: logins and directory users' tokens are 503 E1006 (fail closed), and work again when it is back",
  gate,
  async () => {
    const slapd = await startSlapd(LDIF)
    const gw = await startTestGateway(ldapConfig(slapd.url, 'memory', { upstream: 'demo' }))
    const ok = await login(gw.port, { username: 'carol', password: PW.carol })
    assert.equal(ok.status, 200, ok.body)
    const token = ok.json.token as string
    const local = await login(gw.port, { username: 'alice', password: ALICE_PW })
    assert.equal((await send(gw.port, 'GET', '/x/y', { headers: bearer(token) })).status, 200)

    await slapd.stop()
    const down = await login(gw.port, { username: 'carol', password: PW.carol })
    assert.equal(down.status, 503, down.body)
    assert.equal(down.json.code, 'E1006')
    const unknownDown = await login(gw.port, { username: 'nobody', password: 'x' })
    assert.equal(unknownDown.json.code, 'E1006', 'an unknown name is not "wrong password" while nobody can tell')
    await sleep(600) // past cacheTtl: the token's user must be looked up again
    const tokenDown = await send(gw.port, 'GET', '/x/y', { headers: bearer(token) })
    assert.equal(tokenDown.status, 503, tokenDown.body)
    assert.equal(tokenDown.json.code, 'E1006')
    assert.equal(
      (await send(gw.port, 'GET', '/x/y', { headers: bearer(local.json.token) })).status,
      200,
      'local users do not need the directory',
    )

    await slapd.start()
    const back = await login(gw.port, { username: 'carol', password: PW.carol })
    assert.equal(back.status, 200, back.body)
    assert.equal((await send(gw.port, 'GET', '/x/y', { headers: bearer(token) })).status, 200)
  },
)

test(
  'a directory user taken out of the allowed group loses its live token and session within cacheTtl',
  gate,
  async () => {
    const slapd = await startSlapd(LDIF)
    const gw = await startTestGateway(ldapConfig(slapd.url, 'memory', { upstream: 'demo' }))
    const access = await login(gw.port, { username: 'carol', password: PW.carol })
    const session = await login(gw.port, { username: 'carol', password: PW.carol, token_type: 'session' })
    const cookie = { Cookie: `keygate_session=${session.json.token}` }
    assert.equal((await send(gw.port, 'GET', '/x/y', { headers: bearer(access.json.token) })).status, 200)
    assert.equal((await send(gw.port, 'GET', '/x/y', { headers: cookie })).status, 200)
    slapd.modify(
      `dn: cn=staff,ou=groups,${LDAP_SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=carol,ou=people,${LDAP_SUFFIX}\n`,
    )
    await sleep(600) // cacheTtl is 500ms
    const bearerAfter = await send(gw.port, 'GET', '/x/y', { headers: bearer(access.json.token) })
    assert.equal(bearerAfter.status, 401, bearerAfter.body)
    assert.equal(bearerAfter.json.code, 'E1001')
    assert.equal((await send(gw.port, 'GET', '/x/y', { headers: cookie })).json.code, 'E1003')
    assert.equal((await login(gw.port, { username: 'carol', password: PW.carol })).json.code, 'E1026')
  },
)

test('a directory that accepts connections but never answers is E1006 after usersFrom.ldap.timeout', async () => {
  const silent = createServer(() => undefined) // takes the connection, says nothing
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  after(() => {
    silent.close()
  })
  const port = (silent.address() as AddressInfo).port
  const cfg = ldapConfig(`ldap://127.0.0.1:${port}`, 'memory', { upstream: 'demo' })
  cfg.usersFrom.ldap.timeout = '300ms'
  const gw = await startTestGateway(cfg)
  const started = Date.now()
  const res = await login(gw.port, { username: 'carol', password: PW.carol })
  assert.equal(res.status, 503, res.body)
  assert.equal(res.json.code, 'E1006')
  assert.ok(Date.now() - started < 3000, `bounded by the timeout: ${Date.now() - started} ms`)
})

test(
  'ldaps://: with usersFrom.ldap.ca the directory is trusted; without it, an untrusted certificate is E1006, never a pass',
  gate,
  async () => {
    const dir = await makeTempDir('kg-ldaps-')
    const cert = join(dir, 'slapd.pem')
    const key = join(dir, 'slapd.key')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    )
    const slapd = await startSlapd(LDIF, { cert, key })
    const trusted = ldapConfig(slapd.ldapsUrl!, 'memory', { upstream: 'demo' })
    const gw = await startTestGateway({ ...trusted, usersFrom: { ldap: { ...trusted.usersFrom.ldap, ca: cert } } })
    const ok = await login(gw.port, { username: 'carol', password: PW.carol })
    assert.equal(ok.status, 200, ok.body)
    assert.equal(ok.json.user.uid, 1001)
    const untrusted = await startTestGateway(ldapConfig(slapd.ldapsUrl!, 'memory', { upstream: 'demo' }))
    const refused = await login(untrusted.port, { username: 'carol', password: PW.carol })
    assert.equal(refused.status, 503, refused.body)
    assert.equal(refused.json.code, 'E1006')
  },
)
