import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runAdmin, type AdminIo } from '../src/admin/index.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { systemClock } from '../src/clock.js'
import { createIssuedTokens, type IssuedRecord } from '../src/tokens/issued.js'
import { createRevocation, revokedJtiKey, type RevocableClaims } from '../src/tokens/revocation.js'
import { createTokenRegistry } from '../src/tokens/opaque.js'
import type { AppTokenRecord } from '../src/auth/apptoken.js'
import { hashPassword } from '../src/tokens/password.js'
import { sha256Hex } from '../src/util/secret.js'
import { rawGet, rawRequest, TEST_SECRET } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { REDIS_URL, redisPrefixes } from './support/users.js'
import { runKeygate, startKeygate } from './support/keygate-process.js'

// The admin command line against real Redis: the same store (URL + prefix, from the config file)
// a running gateway uses, and a gateway process that must see a revocation within a second.

const PREFIX = redisPrefixes('admin').base

/** A store on this run's prefix (one sub-prefix per test); every key under PREFIX is deleted after the file. */
function openStore(sub: string): Store {
  const store = createRedisStore({ redis: REDIS_URL, prefix: PREFIX + sub })
  after(() => store.close())
  return store
}

async function writeConfig(sub: string, extra = '', secrets = `{jwt: {secret: ${TEST_SECRET}}}`): Promise<string> {
  const dir = await makeTempDir('admin')
  const file = join(dir, 'gateway.yaml')
  writeFileSync(
    file,
    `upstream: demo
store: {redis: ${REDIS_URL}, prefix: "${PREFIX}${sub}"}
secrets: ${secrets}
${extra}`,
  )
  return file
}

/** runAdmin in-process, its output collected. */
async function admin(...argv: string[]): Promise<{ code: number; out: string; err: string; json: any }> {
  let out = ''
  let err = ''
  const io: AdminIo = {
    out: (t) => {
      out += t
    },
    err: (t) => {
      err += t
    },
    env: {},
  }
  const code = await runAdmin(argv[0]!, argv.slice(1), io)
  let json: any
  try {
    json = JSON.parse(out)
  } catch {
    json = undefined
  }
  return { code, out, err, json }
}

const HOUR = 3_600_000

function record(over: Partial<IssuedRecord> & Pick<IssuedRecord, 'jti' | 'type' | 'sub'>): IssuedRecord {
  const now = Date.now()
  return { uid: 1, clientId: 'c', clientIp: '192.0.2.1', issuedAt: now, expiresAt: now + HOUR, ...over }
}

// ------------------------------------------------------------ arguments, help, errors

test('every command has --help (exit 0) and refuses bad arguments with exit 2 and a message', async () => {
  for (const cmd of [
    ['tokens', '--help'],
    ['tokens', 'list', '--help'],
    ['sessions', '-h'],
    ['apptokens', 'revoke', '--help'],
    ['keys', '--help'],
    ['keys', 'new', '-h'],
  ]) {
    const r = await admin(...cmd)
    assert.equal(r.code, 0, `${cmd.join(' ')}: ${r.err}`)
    assert.match(r.out, /^usage:/, `${cmd.join(' ')} prints its usage`)
  }
  const bad: Array<{ argv: string[]; message: RegExp }> = [
    { argv: ['tokens'], message: /^$/ }, // usage on stdout, exit 2
    { argv: ['tokens', 'frob'], message: /unknown tokens command "frob"/ },
    { argv: ['tokens', 'list', '--type', 'bogus'], message: /unknown token type "bogus"/ },
    { argv: ['tokens', 'list', '--bogus'], message: /Unknown option '--bogus'/ },
    { argv: ['tokens', 'list', '--user'], message: /argument missing/ },
    { argv: ['tokens', 'list', 'extra'], message: /takes no arguments/ },
    { argv: ['tokens', 'revoke'], message: /needs a jti or --user/ },
    { argv: ['tokens', 'revoke', 'a', 'b'], message: /takes one jti/ },
    { argv: ['tokens', 'revoke', 'a', '--user', 'u'], message: /one of them/ },
    { argv: ['tokens', 'revoke', 'with space'], message: /is not a jti/ },
    { argv: ['tokens', 'revoke', '--all'], message: /--all needs --before/ },
    { argv: ['tokens', 'revoke', 'a', '--before', 'now'], message: /--before goes with --all/ },
    { argv: ['tokens', 'revoke', '--all', '--before', 'yesterday-ish'], message: /is not a time/ },
    { argv: ['tokens', 'revoke', '--all', '--before', '2999-01-01T00:00:00Z'], message: /in the future/ },
    { argv: ['tokens', 'revoke', '--token', 'x.y.z', '--user', 'u'], message: /one of them/ },
    { argv: ['sessions', 'revoke', '--all', '--before', 'now'], message: /options of keygate tokens revoke/ },
    { argv: ['sessions', 'list', '--type', 'access'], message: /sessions take no --type/ },
    { argv: ['apptokens', 'revoke'], message: /exactly one of/ },
    { argv: ['apptokens', 'revoke', '--all', '--user', 'u'], message: /exactly one of/ },
    { argv: ['apptokens', 'revoke', 'not-a-hash'], message: /not a token hash/ },
    { argv: ['apptokens', 'list', '--all'], message: /without --all/ },
    { argv: ['keys', 'new'], message: /exactly one name/ },
    { argv: ['keys', 'new', 'a', 'b'], message: /exactly one name/ },
    { argv: ['keys', 'rotate', 'a'], message: /unknown keys command/ },
  ]
  for (const c of bad) {
    const r = await admin(...c.argv)
    assert.equal(r.code, 2, `${c.argv.join(' ')} → ${r.code}: ${r.err}`)
    assert.match(r.err, c.message, `${c.argv.join(' ')}: ${r.err}`)
  }
})

test('a config without store.redis, an invalid config and an unreachable Redis each fail with exit 1 and say why', async () => {
  const dir = await makeTempDir('admin')
  const memory = join(dir, 'memory.yaml')
  writeFileSync(memory, 'upstream: demo\n')
  const r1 = await admin('tokens', 'list', '--config', memory)
  assert.equal(r1.code, 1)
  assert.match(r1.err, /the admin commands need store\.redis/, r1.err)

  const invalid = join(dir, 'invalid.yaml')
  writeFileSync(invalid, 'upstream: demo\nbogus: 1\n')
  const r2 = await admin('sessions', 'list', '-c', invalid)
  assert.equal(r2.code, 1)
  assert.match(r2.err, /invalid configuration:[\s\S]*bogus: unknown key/, r2.err)

  const r3 = await admin('tokens', 'list', '-c', join(dir, 'missing.yaml'))
  assert.equal(r3.code, 1)
  assert.match(r3.err, /cannot read the file/, r3.err)

  // Nothing listens on a port that was just closed; the password in the URL must not be echoed.
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as { port: number }).port
  probe.close()
  const down = join(dir, 'down.yaml')
  writeFileSync(down, `upstream: demo\nstore: {redis: "redis://:hunter2-redis-pw@127.0.0.1:${port}"}\n`)
  const r4 = await runKeygate(['tokens', 'list', '--config', down])
  assert.equal(r4.code, 1, r4.err)
  assert.match(r4.err, /cannot reach the store at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/, r4.err)
  assert.ok(!r4.err.includes('hunter2-redis-pw'), 'the Redis password was printed')
  // It gives up after about a second rather than retrying: measured against a command that fails
  // before any connection, since tsx start-up alone takes seconds on a loaded machine.
  const startUp = await runKeygate(['tokens', 'list', '--config', memory])
  assert.equal(startUp.code, 1, startUp.err)
  assert.ok(r4.ms - startUp.ms < 3_000, `took ${r4.ms} ms to give up, ${startUp.ms} ms without a store to reach`)
})

test('keys new prints a fresh 32-byte key once with its keyHash and a YAML entry; --json for scripts', async () => {
  const a = await admin('keys', 'new', 'chatbot')
  assert.equal(a.code, 0, a.err)
  const key = /^key: ([0-9a-f]{64})$/m.exec(a.out)?.[1]
  assert.ok(key, `no key line in: ${a.out}`)
  assert.match(a.out, new RegExp(`^keyHash: sha256:${sha256Hex(key)}$`, 'm'), 'the keyHash line')
  assert.match(
    a.out,
    new RegExp(`apiKeys:\\n  - name: "chatbot"\\n    keyHash: sha256:${sha256Hex(key)}\\n`),
    'the YAML entry',
  )
  assert.equal(a.out.split(key).length - 1, 1, 'the key is printed exactly once')
  const b = await admin('keys', 'new', 'chatbot', '--json')
  assert.equal(b.code, 0)
  assert.deepEqual(Object.keys(b.json), ['name', 'key', 'keyHash'])
  assert.equal(b.json.keyHash, `sha256:${sha256Hex(b.json.key)}`)
  assert.notEqual(b.json.key, key, 'every key is new')
})

// ------------------------------------------------------------ JWT records and sessions

test('tokens and sessions: list with filters, revoke by jti and by user (denylist, pub/sub, record gone), audit lines', async () => {
  const sub = 'jwt:'
  const dir = await makeTempDir('admin')
  const auditFile = join(dir, 'audit.log')
  const config = await writeConfig(sub, `audit: {file: ${auditFile}}\n`)
  const store = openStore(sub)
  const issued = createIssuedTokens({ store, clock: systemClock, graceMs: 30_000 })
  const t0 = Date.now() - 10_000
  const recs = [
    record({ jti: 'a-access-1', type: 'access', sub: 'alice', issuedAt: t0 }),
    record({ jti: 'a-access-2', type: 'access', sub: 'alice', issuedAt: t0 + 1 }),
    record({ jti: 'a-session', type: 'session', sub: 'alice', issuedAt: t0 + 2 }),
    record({ jti: 'b-api', type: 'api', sub: 'bob', issuedAt: t0 + 3 }),
    record({ jti: 'b-session', type: 'session', sub: 'bob', issuedAt: t0 + 4 }),
  ]
  for (const r of recs) await issued.record(r)

  // What a running gateway hears: its revocation instance on the same store and channel.
  const heard: string[] = []
  const gatewayStore = openStore(sub)
  await gatewayStore.subscribe('revocations', (jti) => heard.push(jti))
  const gatewayRevocation = await createRevocation<RevocableClaims>({
    store: gatewayStore,
    clock: systemClock,
    healthy: () => true,
  })
  after(() => gatewayRevocation.close())

  const all = await admin('tokens', 'list', '--json', '--config', config)
  assert.equal(all.code, 0, all.err)
  assert.deepEqual(
    all.json.map((r: any) => r.jti),
    recs.map((r) => r.jti),
  )
  assert.deepEqual(all.json[0], {
    jti: 'a-access-1',
    type: 'access',
    user: 'alice',
    uid: 1,
    clientId: 'c',
    clientIp: '192.0.2.1',
    issued: new Date(recs[0]!.issuedAt).toISOString(),
    expires: new Date(recs[0]!.expiresAt).toISOString(),
  })
  assert.deepEqual(
    (await admin('tokens', 'list', '--user', 'alice', '--json', '-c', config)).json.map((r: any) => r.jti),
    ['a-access-1', 'a-access-2', 'a-session'],
  )
  assert.deepEqual(
    (await admin('tokens', 'list', '--type', 'session', '--json', '-c', config)).json.map((r: any) => r.jti),
    ['a-session', 'b-session'],
  )
  assert.deepEqual(
    (await admin('sessions', 'list', '--json', '-c', config)).json.map((r: any) => r.jti),
    ['a-session', 'b-session'],
  )
  assert.deepEqual(
    (await admin('sessions', 'list', '-u', 'bob', '--json', '-c', config)).json.map((r: any) => r.jti),
    ['b-session'],
  )
  const text = await admin('tokens', 'list', '-c', config)
  assert.match(text.out, /^JTI +TYPE +USER +ISSUED +EXPIRES +CLIENT IP\n/, text.out)
  assert.match(text.out, /^b-api +api +bob +\d{4}-/m, text.out)
  assert.equal((await admin('tokens', 'list', '--user', 'nobody', '-c', config)).out, 'no tokens of nobody\n')

  // one jti
  const one = await admin('tokens', 'revoke', 'a-access-1', '--json', '-c', config)
  assert.equal(one.code, 0, one.err)
  assert.equal(one.json.count, 1)
  assert.equal(await issued.get('a-access-1'), null, 'the record is gone')
  assert.equal(await store.get(revokedJtiKey('a-access-1')), '1', 'the jti is denylisted')
  assert.equal(await gatewayRevocation.isRevoked('a-access-1'), true)
  // no record left: denylisted all the same (a store that lost its data lost the denylist too)
  const again = await admin('tokens', 'revoke', 'a-access-1', '-c', config)
  assert.equal(again.code, 0, again.err)
  assert.match(
    again.out,
    /^no record of a-access-1 \(unknown, expired, or lost with the store's data\): denylisted until /,
  )
  const wrongKind = await admin('sessions', 'revoke', 'b-api', '-c', config)
  assert.equal(wrongKind.code, 1)
  assert.match(wrongKind.err, /b-api is an api token, not a session/)
  assert.notEqual(await issued.get('b-api'), null, 'a refused revoke changes nothing')

  // by user: sessions revoke takes only the sessions, tokens revoke --type only that type
  const bobSessions = await admin('sessions', 'revoke', '--user', 'bob', '-c', config)
  assert.equal(bobSessions.code, 0, bobSessions.err)
  assert.equal(bobSessions.out, 'revoked 1 session of bob: b-session\n')
  assert.notEqual(await issued.get('b-api'), null, "bob's api token stays")
  const aliceAccess = await admin('tokens', 'revoke', '--user', 'alice', '--type', 'access', '--json', '-c', config)
  assert.deepEqual(
    aliceAccess.json.revoked.map((r: any) => r.jti),
    ['a-access-2'],
  )
  const aliceRest = await admin('tokens', 'revoke', '--user', 'alice', '--json', '-c', config)
  assert.deepEqual(
    aliceRest.json.revoked.map((r: any) => r.jti),
    ['a-session'],
  )
  assert.deepEqual(
    (await admin('tokens', 'list', '--json', '-c', config)).json.map((r: any) => r.jti),
    ['b-api'],
  )
  assert.equal((await admin('tokens', 'revoke', '--user', 'alice', '-c', config)).out, 'no tokens of alice to revoke\n')

  // every revocation was published to running gateways, in order
  for (let i = 0; i < 20 && heard.length < 5; i++) await new Promise((r) => setTimeout(r, 25))
  assert.deepEqual(heard, ['a-access-1', 'a-access-1', 'b-session', 'a-access-2', 'a-session'])

  // and written to the config's audit file, attributed to the operator
  const lines = readFileSync(auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
  assert.deepEqual(
    lines.map((l) => [l.kind, l.jti, l.subject, l.source]),
    [
      ['token.revoked', 'a-access-1', 'alice', 'admin-cli'],
      ['token.revoked', 'a-access-1', '', 'admin-cli'],
      ['token.revoked', 'b-session', 'bob', 'admin-cli'],
      ['token.revoked', 'a-access-2', 'alice', 'admin-cli'],
      ['token.revoked', 'a-session', 'alice', 'admin-cli'],
    ],
  )
  assert.ok(
    lines.every((l) => l.audit === true && /^admin-cli/.test(l.by)),
    `audit lines: ${JSON.stringify(lines)}`,
  )
})

// ------------------------------------------------------------ app tokens

test('apptokens: list (all, by user), revoke by hash, by user and --all; revoked tokens no longer verify', async () => {
  const sub = 'app:'
  const config = await writeConfig(sub)
  const store = openStore(sub)
  const registry = createTokenRegistry<AppTokenRecord>({ store, clock: systemClock, kind: 'app', ttlMs: HOUR })
  const rec = (username: string): AppTokenRecord => ({
    username,
    uid: 0,
    groups: ['bot', 'sysop'],
    realName: username,
    email: '',
    issuedBy: 'chatbot',
  })
  const s1 = await registry.issue(rec('svc'))
  const s2 = await registry.issue(rec('svc'))
  const o1 = await registry.issue(rec('other user'))
  const o2 = await registry.issue(rec('other user'))
  const x1 = await registry.issue(rec('third'))

  const list = await admin('apptokens', 'list', '--json', '-c', config)
  assert.equal(list.code, 0, list.err)
  assert.deepEqual(new Set(list.json.map((t: any) => t.hash)), new Set([s1, s2, o1, o2, x1].map((t) => t.hash)))
  assert.deepEqual(Object.keys(list.json[0]).sort(), ['expires', 'groups', 'hash', 'issued', 'issuedBy', 'uid', 'user'])
  assert.ok(!list.out.includes(s1.token), 'a token value in the listing')
  assert.deepEqual(
    new Set(
      (await admin('apptokens', 'list', '--user', 'other user', '--json', '-c', config)).json.map((t: any) => t.hash),
    ),
    new Set([o1.hash, o2.hash]),
  )
  const table = await admin('apptokens', 'list', '-c', config)
  assert.match(table.out, /^HASH +USER +ISSUED BY +ISSUED +EXPIRES\n/, table.out)

  const byHash = await admin('apptokens', 'revoke', s1.hash, '-c', config)
  assert.equal(byHash.code, 0, byHash.err)
  assert.equal(byHash.out, `revoked 1 app token: ${s1.hash}\n`)
  assert.equal(await registry.verify(s1.token), null)
  assert.notEqual(await registry.verify(s2.token), null)
  assert.equal((await admin('apptokens', 'revoke', s1.hash, '-c', config)).code, 1, 'an unknown hash fails')

  const byUser = await admin('apptokens', 'revoke', '--user', 'other user', '--json', '-c', config)
  assert.deepEqual(new Set(byUser.json.revoked.map((r: any) => r.hash)), new Set([o1.hash, o2.hash]))
  assert.equal(await registry.verify(o2.token), null)

  const everything = await admin('apptokens', 'revoke', '--all', '--json', '-c', config)
  assert.equal(everything.code, 0, everything.err)
  assert.deepEqual(new Set(everything.json.revoked.map((r: any) => r.hash)), new Set([s2.hash, x1.hash]))
  assert.equal(await registry.verify(x1.token), null)
  assert.deepEqual((await admin('apptokens', 'list', '--json', '-c', config)).json, [])
  // What stays until each token would have expired is a marker that says "revoked", never a record.
  const left = await Promise.all((await store.keys('tok:app:')).map((k) => store.get(k)))
  assert.equal(left.length, 5)
  assert.ok(
    left.every((v) => v === JSON.stringify({ v: 1, revoked: true })),
    `no record left behind: ${left.join(' ')}`,
  )
  assert.equal(await registry.find(x1.token), 'revoked')
})

// ------------------------------------------------------------ a running gateway process

const PASSWORD = 'admin test password 99'
const API_KEY = 'admin-test-api-key-0123456789abcdef0123'
const SALT = 'admin-test-salt-0123456789abcdef0123456789'

const postJson = (port: number, path: string, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body)
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  return rawRequest(
    port,
    `POST ${path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Connection: close\r\n\r\n${text}`,
  )
}

/** Polls until the request is refused; how long after `since` that took. */
async function refusedWithin(since: number, limitMs: number, attempt: () => Promise<{ status: number; json: any }>) {
  for (;;) {
    const r = await attempt()
    const ms = Date.now() - since
    if (r.status !== 200) return { ...r, ms }
    if (ms > limitMs + 1_000) return { ...r, ms }
    await new Promise((res) => setTimeout(res, 20))
  }
}

test('the whole story: a gateway process, a Bearer login, `keygate tokens revoke --user` as a command, 401 E1002 within 1 s', async () => {
  const sub = 'story:'
  const config = await writeConfig(
    sub,
    `listen: 127.0.0.1:0
users:
  - {username: carol, passwordHash: "${await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 })}", uid: 12, name: Carol, email: c@example.org, groups: [user]}
apiKeys:
  - {name: chatbot, key: ${API_KEY}, allow: {paths: [/mws/v1/app-token/generate]}}
`,
    `{jwt: {secret: ${TEST_SECRET}}, salt: ${SALT}}`,
  )
  const gw = await startKeygate(config)

  const login = await postJson(gw.port, '/api/authorize', {
    username: 'carol',
    password: PASSWORD,
    token_type: 'access',
  })
  assert.equal(login.status, 200, login.body)
  const bearer = { Authorization: `Bearer ${login.json.token}` }
  const session = await postJson(gw.port, '/api/authorize', {
    username: 'carol',
    password: PASSWORD,
    token_type: 'session',
  })
  assert.equal(session.status, 200, session.body)
  const cookie = { Cookie: `keygate_session=${session.json.token}` }
  for (let i = 0; i < 3; i++) {
    // the token is now in the gateway's verified-token cache
    assert.equal((await rawGet(gw.port, '/wiki/Page', bearer)).status, 200)
    assert.equal((await rawGet(gw.port, '/wiki/Page', cookie)).status, 200)
  }

  const listed = await runKeygate(['tokens', 'list', '--user', 'carol', '--json', '--config', config])
  assert.equal(listed.code, 0, listed.err)
  assert.deepEqual(
    JSON.parse(listed.out)
      .map((r: any) => r.jti)
      .sort(),
    [login.json.jti, session.json.jti].sort(),
  )
  const sessions = await runKeygate(['sessions', 'list', '--json', '--config', config])
  assert.deepEqual(
    JSON.parse(sessions.out).map((r: any) => r.jti),
    [session.json.jti],
  )

  // ending the session first: the Bearer token must keep working
  const endSession = await runKeygate(['sessions', 'revoke', session.json.jti, '--config', config])
  assert.equal(endSession.code, 0, endSession.err)
  const sessionGone = await refusedWithin(Date.now(), 1_000, () => rawGet(gw.port, '/wiki/Page', cookie))
  assert.equal(sessionGone.status, 401, 'the ended session is refused')
  assert.ok(sessionGone.ms <= 1_000, `the session was still accepted ${sessionGone.ms} ms after the command exited`)
  assert.equal((await rawGet(gw.port, '/wiki/Page', bearer)).status, 200, 'the Bearer token was not revoked')

  const revoke = await runKeygate(['tokens', 'revoke', '--user', 'carol', '--config', config])
  const exited = Date.now()
  assert.equal(revoke.code, 0, revoke.err)
  assert.equal(revoke.out, `revoked 1 token of carol: ${login.json.jti}\n`)
  const refused = await refusedWithin(exited, 1_000, () => rawGet(gw.port, '/wiki/Page', bearer))
  assert.equal(refused.status, 401, gw.output())
  assert.equal(refused.json?.code, 'E1002')
  assert.ok(refused.ms <= 1_000, `the revoked token was still accepted ${refused.ms} ms after the command exited`)

  // AppTokens: generated through the gateway, revoked with `apptokens revoke --all`
  const generated = await postJson(gw.port, '/mws/v1/app-token/generate', {}, { Authorization: `ApiKey ${API_KEY}` })
  assert.equal(generated.status, 200, generated.body)
  const appToken = { Authorization: `AppToken ${generated.json.value}` }
  assert.equal((await rawGet(gw.port, '/wiki/Page', appToken)).status, 200)
  const apps = await runKeygate(['apptokens', 'list', '--json', '--config', config])
  assert.equal(JSON.parse(apps.out).length, 1, apps.out)
  const revokeApps = await runKeygate(['apptokens', 'revoke', '--all', '--config', config])
  const appsExited = Date.now()
  assert.equal(revokeApps.code, 0, revokeApps.err)
  const appRefused = await refusedWithin(appsExited, 1_000, () => rawGet(gw.port, '/wiki/Page', appToken))
  assert.equal(appRefused.status, 401)
  assert.ok(appRefused.ms <= 1_000, `the revoked AppToken was still accepted ${appRefused.ms} ms later`)
})

// ------------------------------------------------------------ Redis data loss (issue 12, item 6)

test('Redis data loss: a revoked token comes back; `tokens revoke <jti>` and `--token` denylist it without a record, `--all --before now` cuts every older token; a gateway process refuses within 1 s', async () => {
  const sub = 'loss:'
  const config = await writeConfig(
    sub,
    `listen: 127.0.0.1:0
users:
  - {username: dave, passwordHash: "${await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 })}", uid: 13, name: Dave, email: d@example.org, groups: [user]}
`,
  )
  const store = openStore(sub)
  const loginDave = async (token_type = 'access') => {
    const r = await postJson(first.port, '/api/authorize', { username: 'dave', password: PASSWORD, token_type })
    assert.equal(r.status, 200, r.body)
    return r.json as { token: string; jti: string }
  }
  const first = await startKeygate(config)
  const a1 = await loginDave()
  const a2 = await loginDave()
  const a3 = await loginDave()
  const api = await loginDave('api')
  const get = (port: number, t: { token: string }) => rawGet(port, '/wiki/Page', { Authorization: `Bearer ${t.token}` })
  assert.equal((await runKeygate(['tokens', 'revoke', a1.jti, '--config', config])).code, 0)
  assert.equal((await refusedWithin(Date.now(), 1_000, () => get(first.port, a1))).status, 401)

  // The loss: Redis comes back empty (no persistence), and a gateway starts afresh.
  await Promise.all((await store.keys('')).map((k) => store.del(k)))
  first.child.kill('SIGTERM')
  await once(first.child, 'exit')
  const gw = await startKeygate(config)
  assert.equal((await get(gw.port, a1)).status, 200, 'the revoked access token is accepted again: what the loss means')
  for (const t of [a2, a3]) assert.equal((await get(gw.port, t)).status, 200)
  assert.equal((await get(gw.port, api)).status, 401, 'an api token lived in its record: gone with it')

  // a bare jti with no record: denylisted for the longest configured lifetime (+ clockSkew)
  const byJti = await runKeygate(['tokens', 'revoke', a1.jti, '--config', config])
  assert.equal(byJti.code, 0, byJti.err)
  assert.match(byJti.out, /no record of .*denylisted until/)
  const r1 = await refusedWithin(Date.now(), 1_000, () => get(gw.port, a1))
  assert.equal(r1.json?.code, 'E1002', JSON.stringify(r1.json))
  assert.ok(r1.ms <= 1_000, `still accepted ${r1.ms} ms later`)
  const longest = 365 * 86_400_000 + 30_000 // tokens.api.ttl default + clockSkew
  const ttl1 = (await store.ttl(revokedJtiKey(a1.jti)))!
  assert.ok(ttl1 > longest - 60_000 && ttl1 <= longest, `the bare jti's entry lives ${ttl1} ms`)

  // --token: checked with the configured key, denylisted until its own exp (+ clockSkew)
  const byToken = await runKeygate(['tokens', 'revoke', '--token', a2.token, '--config', config])
  assert.equal(byToken.code, 0, byToken.err)
  assert.ok(!byToken.out.includes(a2.token), 'the token is not echoed')
  const r2 = await refusedWithin(Date.now(), 1_000, () => get(gw.port, a2))
  assert.equal(r2.json?.code, 'E1002', JSON.stringify(r2.json))
  const exp = JSON.parse(Buffer.from(a2.token.split('.')[1]!, 'base64url').toString()).exp * 1000
  const ttl2 = (await store.ttl(revokedJtiKey(a2.jti)))!
  assert.ok(Math.abs(Date.now() + ttl2 - (exp + 30_000)) < 5_000, `the token's entry ends at exp + skew (${ttl2} ms)`)
  const forged = await runKeygate(['tokens', 'revoke', '--token', `${a3.token.slice(0, -4)}AAAA`, '--config', config])
  assert.equal(forged.code, 1)
  assert.match(forged.err, /not a token the gateway accepts \(signature\)/)

  // --all --before now: every older token of the issuer, on the running gateway within 1 s
  assert.equal((await get(gw.port, a3)).status, 200)
  const cut = await runKeygate(['tokens', 'revoke', '--all', '--before', 'now', '--json', '--config', config])
  const cutAt = Date.now()
  assert.equal(cut.code, 0, cut.err)
  assert.equal(JSON.parse(cut.out).issuer, 'keygate')
  const r3 = await refusedWithin(cutAt, 1_000, () => get(gw.port, a3))
  assert.equal(r3.json?.code, 'E1002', JSON.stringify(r3.json))
  assert.ok(r3.ms <= 1_000, `an older token was still accepted ${r3.ms} ms later`)
  // a login after the cut works (iat has one-second resolution: the same second counts as before)
  await new Promise((r) => setTimeout(r, 1_000 - (Date.now() % 1_000) + 50))
  const fresh = await postJson(gw.port, '/api/authorize', { username: 'dave', password: PASSWORD })
  assert.equal((await get(gw.port, fresh.json)).status, 200, 'a token issued after the cut')
  // and a second gateway started now reads the epoch from the store
  const later = await startKeygate(config)
  assert.equal((await get(later.port, a3)).json?.code, 'E1002')
  assert.equal((await get(later.port, fresh.json)).status, 200)
})
