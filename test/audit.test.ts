import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createAudit } from '../src/audit.js'
import { auditChannel, createObserver, type AuditEvent } from '../src/observe.js'
import { hashPassword } from '../src/tokens/password.js'
import { rawGet, rawRequest, startTestGateway, TEST_SECRET, yamlConfig } from './helpers.js'
import { makeTempDir } from './support/processes.js'

// The audit trail is a separate stream of JSON lines: every kind of audit event must reach it,
// with `audit: true`, a timestamp and the event's own fields, and nothing else.

const readLines = (file: string): Record<string, unknown>[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : []

const EVERY_KIND: readonly AuditEvent[] = [
  { kind: 'token.issued', type: 'access', jti: 'jti-1', subject: 'alice', clientIp: '192.0.2.1' },
  { kind: 'token.revoked', type: 'session', jti: 'jti-2', subject: 'alice', by: 'admin-cli:root' },
  { kind: 'login.failed', username: 'mallory', clientIp: '192.0.2.9', reason: 'credentials' },
  { kind: 'login.lockout', scope: 'ip', username: 'mallory', clientIp: '192.0.2.9', retryAfterSec: 900 },
  { kind: 'apikey.refused', keyName: 'chatbot', clientIp: '198.51.100.7', reason: 'cidr' },
  { kind: 'config.reloaded', ok: true, hash: '0123456789abcdef' },
  { kind: 'config.reloaded', ok: false, hash: null, problems: ['gateway.yaml: defaultPolicy: invalid'] },
]

test("every audit event kind told to the gateway's observer becomes one JSON line in the file", async () => {
  const dir = await makeTempDir('audit')
  const file = join(dir, 'nested', 'audit.log') // the directory is created
  const observer = createObserver()
  const audit = createAudit({ audit: { file }, observer })
  after(() => audit.close())
  for (const e of EVERY_KIND) observer.audit(e)
  audit.close()
  observer.audit({ kind: 'login.failed', username: 'late', clientIp: '192.0.2.2', reason: 'credentials' }) // after close: not written

  const lines = readLines(file)
  assert.equal(lines.length, EVERY_KIND.length, `lines: ${JSON.stringify(lines)}`)
  lines.forEach((line, i) => {
    const { audit: flag, time, ...fields } = line
    assert.equal(flag, true)
    assert.ok(typeof time === 'string' && !Number.isNaN(Date.parse(time)), `time: ${String(time)}`)
    assert.deepEqual(fields, EVERY_KIND[i], `line ${i} carries exactly the event's fields`)
  })
})

test('the file is appended to, never truncated, and a credential-named field is redacted', async () => {
  const dir = await makeTempDir('audit')
  const file = join(dir, 'audit.log')
  writeFileSync(file, '{"audit":true,"kind":"earlier"}\n')
  const observer = createObserver()
  const audit = createAudit({ audit: { file }, observer })
  after(() => audit.close())
  // Events never carry these; if one ever did by mistake, the trail must not keep it.
  const careless = {
    kind: 'token.issued',
    type: 'app',
    jti: 'h',
    subject: 's',
    clientIp: '1.2.3.4',
    token: 'deadbeef',
    password: 'pw',
  } as unknown as AuditEvent
  observer.audit(careless)
  audit.close()
  const lines = readLines(file)
  assert.equal(lines.length, 2)
  assert.equal(lines[0]!.kind, 'earlier')
  assert.equal(lines[1]!.token, '[redacted]')
  assert.equal(lines[1]!.password, '[redacted]')
  assert.ok(!readFileSync(file, 'utf8').includes('deadbeef'), 'the careless token value reached the file')
})

test("audit: false writes nothing; a trail hears its own gateway's events only; the channel taps them all", async () => {
  const dir = await makeTempDir('audit')
  const file = join(dir, 'audit.log')
  const ours = createObserver()
  const theirs = createObserver()
  const off = createAudit({ audit: false, observer: ours })
  const mine = createAudit({ audit: { file }, observer: ours })
  const tapped: unknown[] = []
  const tap = (e: unknown) => tapped.push(e)
  auditChannel.subscribe(tap)
  after(() => {
    auditChannel.unsubscribe(tap)
    off.close()
    mine.close()
  })
  ours.audit({ kind: 'login.failed', username: 'mine', clientIp: '192.0.2.1', reason: 'credentials' })
  theirs.audit({ kind: 'login.failed', username: 'theirs', clientIp: '192.0.2.1', reason: 'credentials' })
  mine.close()
  assert.deepEqual(
    readLines(file).map((l) => l.username),
    ['mine'],
  )
  assert.equal(tapped.length, 2, 'the diagnostics channel hears every gateway')
})

test('audit: true writes the lines on stdout', () => {
  const script = `
    import { createAudit } from ${JSON.stringify(resolve('src/audit.ts'))}
    import { createObserver } from ${JSON.stringify(resolve('src/observe.ts'))}
    const observer = createObserver()
    const audit = createAudit({ audit: true, observer })
    observer.audit({ kind: 'apikey.refused', keyName: 'k', clientIp: '192.0.2.3', reason: 'module' })
    audit.close()
  `
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(r.status, 0, r.stderr)
  const lines = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines.length, 1, r.stdout)
  assert.equal(lines[0]!.audit, true)
  assert.equal(lines[0]!.kind, 'apikey.refused')
  assert.equal(lines[0]!.reason, 'module')
})

const PASSWORD = 'audit test password 7'
const API_KEY = 'audit-test-api-key-0123456789abcdef0123'

test("a gateway's own actions reach the trail: issue, revoke, failed login, lockout, ApiKey refused, reloads", async () => {
  const dir = await makeTempDir('audit')
  const file = join(dir, 'audit.log')
  const configFile = join(dir, 'gateway.yaml')
  const yaml = `upstream: demo
secrets: {jwt: {secret: ${TEST_SECRET}}}
users:
  - {username: alice, passwordHash: "${await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 })}", uid: 7, name: Alice, email: a@example.org, groups: [user]}
apiKeys:
  - {name: far-away, key: ${API_KEY}, cidr: [10.0.0.0/8], allow: {paths: [/page]}}
loginLimit: {perUser: 2, perIp: 100, window: 15m}
`
  writeFileSync(configFile, yaml)
  const gw = await startTestGateway(yamlConfig(yaml), { configFile })
  const audit = createAudit({ audit: { file }, observer: gw.observer })
  after(() => audit.close())
  const post = (path: string, body: string, headers = '') =>
    rawRequest(
      gw.port,
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
    )

  const login = await post(
    '/api/authorize',
    JSON.stringify({ username: 'alice', password: PASSWORD, token_type: 'session' }),
  )
  assert.equal(login.status, 200, login.body)
  const jti = String(login.json.jti)
  const logout = await post('/api/logout', '{}', `Authorization: Bearer ${login.json.token}\r\n`)
  assert.equal(logout.status, 200, logout.body)
  assert.equal(
    (await post('/api/authorize', JSON.stringify({ username: 'mallory', password: 'wrong-pass-1' }))).status,
    401,
  )
  assert.equal(
    (await post('/api/authorize', JSON.stringify({ username: 'mallory', password: 'wrong-pass-2' }))).status,
    401,
  )
  assert.equal((await rawGet(gw.port, '/page', { Authorization: `ApiKey ${API_KEY}` })).status, 403)
  assert.equal(await gw.reload(), true, gw.logs.join(''))
  writeFileSync(configFile, `${yaml}bogus: 1\n`)
  assert.equal(await gw.reload(), false)
  audit.close()

  const lines = readLines(file)
  const kinds = lines.map((l) => l.kind)
  assert.deepEqual(kinds, [
    'token.issued',
    'token.revoked',
    'login.failed',
    'login.failed',
    'login.lockout',
    'apikey.refused',
    'config.reloaded',
    'config.reloaded',
  ])
  assert.deepEqual(lines[0], { ...lines[0], type: 'session', jti, subject: 'alice', clientIp: '127.0.0.1' })
  assert.deepEqual(lines[1], { ...lines[1], type: 'session', jti, subject: 'alice', by: 'alice' })
  assert.deepEqual(lines[4], { ...lines[4], scope: 'user', username: 'mallory' })
  assert.deepEqual(lines[5], { ...lines[5], keyName: 'far-away', clientIp: '127.0.0.1', reason: 'cidr' })
  assert.equal(lines[6]!.ok, true)
  assert.match(String(lines[6]!.hash), /^[0-9a-f]{16}$/, "the new config's hash")
  assert.equal(lines[7]!.ok, false)
  assert.match(JSON.stringify(lines[7]!.problems), /bogus/, 'the problems of the refused config')
  const text = readFileSync(file, 'utf8')
  for (const secret of [PASSWORD, API_KEY, String(login.json.token), TEST_SECRET, 'wrong-pass-1', 'wrong-pass-2']) {
    assert.ok(!text.includes(secret), `the audit trail holds a secret: ${secret.slice(0, 8)}…`)
  }
})

test("two gateways in one process: requests to one leave the other's metrics and audit trail unchanged", async () => {
  const dir = await makeTempDir('audit')
  const gateway = async (name: string) => {
    const file = join(dir, `${name}.log`)
    const gw = await startTestGateway(
      yamlConfig(`upstream: demo
secrets: {jwt: {secret: ${TEST_SECRET}}}
apiKeys:
  - {name: ${name}-key, key: ${API_KEY}-${name}, cidr: [10.0.0.0/8]}
audit: {file: ${file}}
`),
    )
    // The gateway's traffic as its metrics count it, but for the scrapes themselves (and the
    // store heartbeat, which runs on its own).
    const scrape = async () =>
      (await rawGet(gw.port, '/_keygate/metrics')).body
        .split('\n')
        .filter(
          (l) => /^keygate_(requests_total|apikey_refusals_total|upstream)/.test(l) && !l.includes('route="metrics"'),
        )
    return { gw, file, scrape }
  }
  const a = await gateway('a')
  const b = await gateway('b')
  const bMetricsBefore = await b.scrape()
  const bAuditBefore = readLines(b.file)

  for (let i = 0; i < 5; i++) assert.equal((await rawGet(a.gw.port, '/page')).status, 401)
  assert.equal((await rawGet(a.gw.port, '/page', { Authorization: `ApiKey ${API_KEY}-a` })).status, 403) // apikey.refused

  assert.ok(
    (await a.scrape()).includes(
      'keygate_requests_total{decision="deny",code="E1000",scheme="anonymous",route="default"} 5',
    ),
    'A counted its own',
  )
  assert.deepEqual(
    readLines(a.file).map((l) => l.keyName),
    ['a-key'],
    "A's trail has its own refusal",
  )
  assert.deepEqual(await b.scrape(), bMetricsBefore, "B's metrics moved with A's requests")
  assert.deepEqual(readLines(b.file), bAuditBefore, "B's audit trail got A's events")
})
