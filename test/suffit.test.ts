import { after, test } from 'node:test'
import {
  constants,
  createPublicKey,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import { startTestGateway, startUpstream } from './helpers.js'
import type { RawResponse } from './helpers.js'
import { hashPassword } from '../src/tokens/password.js'
import { GatewaySchema } from '../src/config/schema.js'
import { createLoginKeys } from '../src/suffit/login-key.js'
import { KeygateError } from '../src/errors.js'
import {
  ALICE_PW,
  JWT_SECRET,
  STORE_KINDS,
  decodeJwtPart,
  login,
  makeUsers,
  md5,
  postForm,
  postMultipart,
  redisPrefixes,
  bearer,
  send,
  sleep,
  type StoreKind,
} from './support/users.js'

// Compatibility with the Suffit auth API (issue 19): the /api/authorize answer field by field against
// Suffit's documented answer, for every token type and every request encoding.

const users = await makeUsers()
const prefixes = redisPrefixes('suffit')
const UA = 'suffit-client/2.0'

/** Suffit's documented answer to POST /api/authorize (values are examples; names, types and formats are the contract). */
const SUFFIT_ANSWER = {
  cachekey: '97vyZgPzskPG',
  clientid: 'f459f12619c961122450ae5883e44a60',
  code: 'E0000',
  datetime: '2024-08-13T14:42:56Z',
  elapsed: 0.230106,
  encrypted: false,
  expires: '2024-08-14T14:42:56Z',
  jti: 'oWwGYKT2MdKj-xVvF9s9',
  message: 'The user is successfully authorized',
  referer: '',
  status: true,
  token: 'ey...8o',
  type: 'access',
  user: {
    algorithm: 'SHA256',
    attributes: '',
    comment: 'Test user for internal testing only',
    created: 1678741533,
    email: 'test@owl.localhost',
    email_md5: '163e50783979333ebae6fd63b2d96d16',
    expires: 1723560176,
    flags: 31,
    groups: ['user'],
    name: 'Test User',
    not_after: 0,
    not_before: 1695334721,
    public_key: '-----BEGIN RSA PUBLIC KEY-----...',
    role: 'Test user',
    uid: 3,
    username: 'test',
  },
}

const SUFFIT_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/
const HEX32 = /^[0-9a-f]{32}$/
const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v)

export const suffitConfig = (kind: StoreKind, extra: Record<string, unknown> = {}) => ({
  upstream: 'demo',
  ...prefixes.store(kind),
  secrets: { jwt: { secret: JWT_SECRET } },
  users: [...users, carol],
  ...extra,
})

/** Every top-level field: present, of the documented type, and in the documented format. */
function assertSuffitAnswer(res: RawResponse, type: string, label: string, expect: { encrypted?: boolean } = {}) {
  assert.equal(res.status, 200, `${label}: ${res.body}`)
  assert.equal(res.headers['content-type'], 'application/json;charset=UTF-8', `${label}: Content-Type`)
  const b = res.json
  assert.deepEqual(
    Object.keys(b).sort(),
    Object.keys(SUFFIT_ANSWER).sort(),
    `${label}: the documented fields, no others`,
  )
  for (const [field, example] of Object.entries(SUFFIT_ANSWER))
    assert.equal(typeOf(b[field]), typeOf(example), `${label}: ${field} is a ${typeOf(example)}`)
  assert.equal(b.status, true)
  assert.equal(b.code, 'E0000')
  assert.equal(b.message, 'The user is successfully authorized')
  assert.equal(b.type, type)
  assert.match(b.datetime, SUFFIT_DATETIME, `${label}: datetime to the second, UTC`)
  assert.match(b.expires, SUFFIT_DATETIME, `${label}: expires to the second, UTC`)
  const payload = decodeJwtPart(b.token, 1)
  assert.equal(b.jti, payload.jti)
  assert.equal(payload.type, type)
  assert.equal(Date.parse(b.datetime), payload.iat * 1000, `${label}: datetime is the token's iat`)
  assert.equal(Date.parse(b.expires), payload.exp * 1000, `${label}: expires is the token's exp`)
  assert.ok(b.elapsed >= 0 && b.elapsed < 10, `${label}: elapsed in seconds`)
  assert.match(b.clientid, HEX32)
  assert.equal(b.clientid, md5(`${UA}127.0.0.1`))
  assert.ok(b.cachekey.length > 0)
  assert.equal(b.referer, '')
  assert.equal(b.encrypted, expect.encrypted ?? false, `${label}: encrypted echoes the request`)
  return b
}

/** A user with every Suffit field set, as the documented answer has them. */
const CAROL_PW = 'carol-password-0123'
const carol = {
  username: 'carol',
  passwordHash: await hashPassword(CAROL_PW, { N: 1024, r: 8, p: 1 }),
  uid: 7,
  name: 'Carol Suffit',
  email: 'Carol@Owl.localhost',
  groups: ['user'],
  role: 'Test user',
  flags: 31,
  comment: 'Test user for internal testing only',
  attributes: '{"office":"B12"}',
  created: 1678741533,
  notBefore: 1695334721,
  notAfter: 0,
  expires: 4102444800,
  publicKey: '-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEA\n-----END RSA PUBLIC KEY-----\n',
}

/** The `user` object: the documented fields and types; alice has only the defaults, carol has them all. */
function assertSuffitUser(user: Record<string, unknown>, label: string) {
  assert.deepEqual(Object.keys(user).sort(), Object.keys(SUFFIT_ANSWER.user).sort(), `${label}: user fields`)
  for (const [field, example] of Object.entries(SUFFIT_ANSWER.user))
    assert.equal(typeOf(user[field]), typeOf(example), `${label}: user.${field} is a ${typeOf(example)}`)
  const expected =
    user.username === 'carol'
      ? {
          uid: 7,
          username: 'carol',
          name: 'Carol Suffit',
          email: 'Carol@Owl.localhost',
          email_md5: md5('carol@owl.localhost'),
          groups: ['user'],
          role: 'Test user',
          flags: 31,
          algorithm: 'SCRYPT',
          attributes: '{"office":"B12"}',
          comment: 'Test user for internal testing only',
          created: 1678741533,
          expires: 4102444800,
          not_before: 1695334721,
          not_after: 0,
          public_key: carol.publicKey,
        }
      : {
          uid: 3,
          username: 'alice',
          name: 'Alice Example',
          email: 'Alice@Example.org',
          email_md5: md5('alice@example.org'),
          groups: ['user', 'editors'],
          role: '',
          flags: 5,
          algorithm: 'SCRYPT',
          attributes: '',
          comment: '',
          created: 0,
          expires: 0,
          not_before: 0,
          not_after: 0,
          public_key: '',
        }
  assert.deepEqual(user, expected, label)
}

const ENCODINGS = {
  json: (port: number, fields: Record<string, string>) => login(port, fields, { 'User-Agent': UA }),
  form: (port: number, fields: Record<string, string>) =>
    postForm(port, '/api/authorize', fields, { 'User-Agent': UA }),
  multipart: (port: number, fields: Record<string, string>) =>
    postMultipart(port, '/api/authorize', fields, { 'User-Agent': UA }),
}
const TOKEN_TYPES = ['access', 'session', 'refresh', 'api'] as const

for (const kind of STORE_KINDS) {
  test(`${kind}: the /api/authorize answer is Suffit's, for every token type and every request encoding`, async () => {
    const gw = await startTestGateway(suffitConfig(kind))
    for (const type of TOKEN_TYPES)
      for (const [encoding, post] of Object.entries(ENCODINGS)) {
        const res = await post(gw.port, { username: 'alice', password: ALICE_PW, token_type: type })
        const b = assertSuffitAnswer(res, type, `${type} as ${encoding}`)
        assertSuffitUser(b.user, `${type} as ${encoding}`)
        const cookie = res.headers['set-cookie']
        if (type === 'session') assert.match(String(cookie), new RegExp(`^keygate_session=${b.token};`))
        else assert.equal(cookie, undefined, `${type}: no cookie`)
      }
  })
}

test("keygate's own JSON answers, refusals included, say application/json;charset=UTF-8", async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(suffitConfig('memory', { upstream: up.url }))
  const refused = await login(gw.port, { username: 'alice', password: 'wrong' })
  assert.equal(refused.status, 401)
  assert.equal(refused.json.code, 'E1026')
  assert.equal(refused.headers['content-type'], 'application/json;charset=UTF-8')
  const noToken = await postForm(gw.port, '/anything', {})
  assert.equal(noToken.json.code, 'E1000')
  assert.equal(noToken.headers['content-type'], 'application/json;charset=UTF-8')
  assert.equal(up.seen.length, 0)
})

test('a user record with every Suffit field comes back whole in the answer', async () => {
  const gw = await startTestGateway(suffitConfig('memory'))
  const res = await ENCODINGS.form(gw.port, { username: 'carol', password: CAROL_PW })
  assertSuffitUser(assertSuffitAnswer(res, 'access', 'carol').user, 'carol')
})

// ------------------------------------------------------------------ validity window

const WINDOW_CASES: Array<{ name: string; record: Record<string, unknown>; logsIn: boolean }> = (() => {
  const now = Math.floor(Date.now() / 1000)
  return [
    { name: 'no window', record: {}, logsIn: true },
    { name: 'disabled', record: { disabled: true }, logsIn: false },
    { name: 'disabled: false', record: { disabled: false }, logsIn: true },
    { name: 'notBefore in the past', record: { notBefore: now - 60 }, logsIn: true },
    { name: 'notBefore in the future', record: { notBefore: now + 3600 }, logsIn: false },
    { name: 'notAfter in the future', record: { notAfter: now + 3600 }, logsIn: true },
    { name: 'notAfter in the past', record: { notAfter: now - 60 }, logsIn: false },
    { name: 'expires in the future', record: { expires: now + 3600 }, logsIn: true },
    { name: 'expires in the past', record: { expires: now - 60 }, logsIn: false },
    { name: 'inside notBefore..notAfter', record: { notBefore: now - 60, notAfter: now + 60 }, logsIn: true },
    { name: 'notAfter fine, expires past', record: { notAfter: now + 3600, expires: now - 1 }, logsIn: false },
    { name: 'inside the window but disabled', record: { notBefore: now - 60, disabled: true }, logsIn: false },
  ]
})()

test('validity window: disabled users and users outside notBefore / notAfter / expires get the wrong-password answer', async () => {
  const base = users[0]!
  const windowUsers = WINDOW_CASES.map((c, i) => ({ ...base, username: `w${i}`, uid: 100 + i, ...c.record }))
  const gw = await startTestGateway(suffitConfig('memory', { users: windowUsers, loginLimit: { perIp: 1000 } }))
  const wrong = await login(gw.port, { username: 'w0', password: 'not-the-password' })
  assert.equal(wrong.status, 401)
  for (const [i, c] of WINDOW_CASES.entries()) {
    const res = await login(gw.port, { username: `w${i}`, password: ALICE_PW })
    if (c.logsIn) {
      assert.equal(res.status, 200, `${c.name}: ${res.body}`)
      continue
    }
    assert.equal(res.status, 401, `${c.name}: ${res.body}`)
    assert.deepEqual(res.json, wrong.json, `${c.name}: the same answer as a wrong password`)
  }
})

test('check-config refuses a validity time that is not epoch seconds, naming the key', () => {
  for (const bad of [{ notAfter: '2030-01-01' }, { expires: -1 }, { created: 1.5 }, { disabled: 'yes' }]) {
    const parsed = GatewaySchema.safeParse({ users: [{ ...users[0], ...bad }] })
    assert.equal(parsed.success, false, JSON.stringify(bad))
    assert.deepEqual(parsed.error?.issues[0]?.path, ['users', 0, Object.keys(bad)[0]!])
  }
})

for (const kind of STORE_KINDS) {
  test(`${kind}: live tokens and sessions of a user stop working within 1 s of the window's end`, async () => {
    const endsAt = Math.floor(Date.now() / 1000) + 2
    const dana = { ...users[0]!, username: 'dana', uid: 9, notAfter: endsAt }
    const gw = await startTestGateway(suffitConfig(kind, { users: [dana], routes: [{ path: '/x/' }] }))
    const tokens: Record<string, string> = {}
    for (const type of ['access', 'api', 'session']) {
      const res = await login(gw.port, { username: 'dana', password: ALICE_PW, token_type: type })
      assert.equal(res.status, 200, res.body)
      tokens[type] = res.json.token
    }
    const use = (type: string) =>
      type === 'session'
        ? send(gw.port, 'GET', '/x/y', { headers: { Cookie: `keygate_session=${tokens[type]}` } })
        : send(gw.port, 'GET', '/x/y', { headers: bearer(tokens[type]!) })
    for (const type of Object.keys(tokens))
      assert.equal((await use(type)).status, 200, `${type} works inside the window`)
    await sleep(endsAt * 1000 - Date.now() + 1000)
    for (const type of Object.keys(tokens)) {
      const res = await use(type)
      assert.equal(res.status, 401, `${type} after the window: ${res.body}`)
      assert.equal(res.json.code, type === 'session' ? 'E1003' : 'E1001')
    }
    const late = await login(gw.port, { username: 'dana', password: ALICE_PW })
    assert.equal(late.json.code, 'E1026')
  })
}

// ------------------------------------------------------------------ authorize routes with a fixed token type

test('tokenApi.authorize mounts authorize routes with a fixed token type; a contradicting token_type is E1020', async () => {
  const gw = await startTestGateway(
    suffitConfig('memory', {
      tokenApi: {
        authorize: [
          { path: '/api/authorize', tokenType: 'access' },
          { path: '/api/session', tokenType: 'session' },
          { path: '/api/apikey', tokenType: 'api' },
          { path: '/api/any' },
        ],
      },
    }),
  )
  const alice = { username: 'alice', password: ALICE_PW }
  const cases: Array<{ path: string; fields: Record<string, string>; type?: string; code?: string }> = [
    { path: '/api/authorize', fields: {}, type: 'access' },
    { path: '/api/authorize', fields: { token_type: 'access' }, type: 'access' },
    { path: '/api/authorize', fields: { token_type: 'session' }, code: 'E1020' },
    { path: '/api/authorize', fields: { type: 'api' }, code: 'E1020' },
    { path: '/api/session', fields: {}, type: 'session' },
    { path: '/api/session', fields: { token_type: 'session' }, type: 'session' },
    { path: '/api/session', fields: { token_type: 'access' }, code: 'E1020' },
    { path: '/api/apikey', fields: {}, type: 'api' },
    { path: '/api/apikey', fields: { token_type: 'refresh' }, code: 'E1020' },
    { path: '/api/any', fields: {}, type: 'access' },
    { path: '/api/any', fields: { token_type: 'api' }, type: 'api' },
    { path: '/api/any', fields: { token_type: 'bogus' }, code: 'E1020' },
  ]
  for (const c of cases) {
    const label = `${c.path} ${JSON.stringify(c.fields)}`
    const res = await postForm(gw.port, c.path, { ...alice, ...c.fields }, { 'User-Agent': UA })
    if (c.type) {
      assertSuffitAnswer(res, c.type, label)
      continue
    }
    assert.equal(res.status, 400, `${label}: ${res.body}`)
    assert.equal(res.json.code, c.code, label)
  }
  // each route revokes what it issued (DELETE), and other methods there are 405, never upstream
  const session = await postForm(gw.port, '/api/session', alice)
  const cookie = { Cookie: `keygate_session=${session.json.token}` }
  assert.equal((await send(gw.port, 'GET', '/anything', { headers: cookie })).status, 200)
  assert.equal((await send(gw.port, 'DELETE', '/api/session', { headers: cookie })).status, 200)
  assert.equal((await send(gw.port, 'GET', '/anything', { headers: cookie })).status, 401, 'revoked')
  assert.equal((await send(gw.port, 'GET', '/api/session')).status, 405)
})

test('the default keeps POST /api/authorize with the token_type field; a path listed twice is a config error', async () => {
  const gw = await startTestGateway(suffitConfig('memory'))
  const res = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: 'api' }, { 'User-Agent': UA })
  assertSuffitAnswer(res, 'api', 'default route')
  const parsed = GatewaySchema.safeParse({
    tokenApi: {
      authorize: [
        { path: '/api/a', tokenType: 'access' },
        { path: '/api/a', tokenType: 'session' },
      ],
    },
  })
  assert.equal(parsed.success, false)
  assert.deepEqual(parsed.error?.issues[0]?.path, ['tokenApi', 'authorize', 1, 'path'])
})

// ------------------------------------------------------------------ encrypted passwords

const rsaKey = () => generateKeyPairSync('rsa', { modulusLength: 2048 })
const loginKey = rsaKey()
const oldLoginKey = rsaKey()
const strangerKey = rsaKey()
const pkcs8 = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString()
const oaep = (key: KeyObject | string, text: string | Buffer) =>
  publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(text)).toString(
    'base64',
  )

/** What a non-Node client does: encrypt with the published PEM using the openssl command line (its base64 wraps lines). */
function opensslEncrypt(publicPem: string, password: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-openssl-'))
  try {
    writeFileSync(join(dir, 'pub.pem'), publicPem)
    const cipher = execFileSync(
      'openssl',
      [
        'pkeyutl',
        '-encrypt',
        '-pubin',
        '-inkey',
        join(dir, 'pub.pem'),
        '-pkeyopt',
        'rsa_padding_mode:oaep',
        '-pkeyopt',
        'rsa_oaep_md:sha256',
        '-pkeyopt',
        'rsa_mgf1_md:sha256',
      ],
      { input: password },
    )
    return execFileSync('openssl', ['base64'], { input: cipher }).toString()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('GET /api/public-key publishes the login key as PEM and JWK; encrypted passwords log in, bad ones are E1023', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-loginkey-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const oldKeyFile = join(dir, 'old.pem')
  writeFileSync(oldKeyFile, pkcs8(oldLoginKey.privateKey))
  const gw = await startTestGateway(
    suffitConfig('memory', {
      secrets: {
        jwt: { secret: JWT_SECRET },
        loginKeys: [{ kid: '2026-11', privateKey: pkcs8(loginKey.privateKey) }, { privateKey: oldKeyFile }],
      },
      loginLimit: { perUser: 100, perIp: 100 },
    }),
  )
  const pub = await send(gw.port, 'GET', '/api/public-key')
  assert.equal(pub.status, 200, pub.body)
  assert.equal(pub.headers['content-type'], 'application/json;charset=UTF-8')
  assert.deepEqual(Object.keys(pub.json).sort(), ['algorithm', 'jwk', 'public_key'])
  assert.equal(pub.json.algorithm, 'RSA-OAEP-256')
  assert.match(pub.json.public_key, /^-----BEGIN PUBLIC KEY-----\n/)
  const fromPem = createPublicKey(pub.json.public_key)
  const fromJwk = createPublicKey({ key: pub.json.jwk, format: 'jwk' })
  assert.ok(fromPem.equals(createPublicKey(loginKey.privateKey)), 'the first configured key is published')
  assert.ok(fromJwk.equals(fromPem), 'PEM and JWK are the same key')
  assert.deepEqual(
    { kty: pub.json.jwk.kty, kid: pub.json.jwk.kid, alg: pub.json.jwk.alg, use: pub.json.jwk.use },
    { kty: 'RSA', kid: '2026-11', alg: 'RSA-OAEP-256', use: 'enc' },
  )
  assert.equal(pub.json.jwk.d, undefined, 'no private part')

  const published = pub.json.public_key as string
  const rows: Array<{ name: string; password: string; encrypted?: unknown; code?: string }> = [
    { name: 'node publicEncrypt with the published key', password: oaep(published, ALICE_PW), encrypted: true },
    { name: 'openssl pkeyutl with the published PEM', password: opensslEncrypt(published, ALICE_PW), encrypted: true },
    { name: 'the flag as a form value "1"', password: oaep(published, ALICE_PW), encrypted: '1' },
    { name: 'an older key still listed (rotation)', password: oaep(oldLoginKey.publicKey, ALICE_PW), encrypted: true },
    { name: 'plaintext without the flag', password: ALICE_PW },
    { name: 'plaintext with encrypted: false', password: ALICE_PW, encrypted: false },
    { name: 'bad base64', password: '@@not base64@@', encrypted: true, code: 'E1023' },
    { name: 'wrong key', password: oaep(strangerKey.publicKey, ALICE_PW), encrypted: true, code: 'E1023' },
    { name: 'plaintext with the flag', password: ALICE_PW, encrypted: true, code: 'E1023' },
    { name: 'oversize', password: randomBytes(4096).toString('base64'), encrypted: true, code: 'E1023' },
    { name: 'one byte short', password: oaep(published, ALICE_PW).slice(0, -4), encrypted: true, code: 'E1023' },
    {
      name: 'PKCS#1 v1.5 padding',
      password: publicEncrypt({ key: published, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(ALICE_PW)).toString(
        'base64',
      ),
      encrypted: true,
      code: 'E1023',
    },
    { name: 'the wrong password, well encrypted', password: oaep(published, 'nope'), encrypted: true, code: 'E1026' },
  ]
  for (const row of rows) {
    const fields: Record<string, unknown> = { username: 'alice', password: row.password }
    if (row.encrypted !== undefined) fields.encrypted = row.encrypted
    const res = await login(gw.port, fields, { 'User-Agent': UA })
    if (row.code) {
      assert.equal(res.status, row.code === 'E1023' ? 400 : 401, `${row.name}: ${res.body}`)
      assert.equal(res.json.code, row.code, row.name)
      if (row.code === 'E1023') assert.equal(res.json.message, 'RSA decode error')
      continue
    }
    const b = assertSuffitAnswer(res, 'access', row.name, {
      encrypted: row.encrypted !== undefined && row.encrypted !== false,
    })
    assert.equal(b.user.username, 'alice')
  }
  // as a form and as multipart, the flag and the ciphertext survive the encoding (base64 has + and /)
  for (const post of [ENCODINGS.form, ENCODINGS.multipart]) {
    const res = await post(gw.port, { username: 'alice', password: oaep(published, ALICE_PW), encrypted: 'true' })
    assertSuffitAnswer(res, 'access', 'form', { encrypted: true })
  }
  assert.ok(!gw.logs.join('').includes(ALICE_PW), 'no password in the logs')
})

test('without secrets.loginKeys, /api/public-key is 404 and encrypted: true is E1023; a bad login key stops the start', async () => {
  const gw = await startTestGateway(suffitConfig('memory'))
  const pub = await send(gw.port, 'GET', '/api/public-key')
  assert.equal(pub.status, 404)
  const res = await login(gw.port, { username: 'alice', password: oaep(loginKey.publicKey, ALICE_PW), encrypted: true })
  assert.equal(res.status, 400)
  assert.equal(res.json.code, 'E1023')
  assert.match(res.json.message, /no login key is configured/)
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
  for (const privateKey of [pkcs8(small), pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), 'x'])
    assert.throws(
      () => createLoginKeys([{ privateKey }], () => 'not a key'),
      (e: unknown) => e instanceof KeygateError && e.code === 'E1023' && e.message.includes('secrets.loginKeys[0]'),
    )
})

// ------------------------------------------------------------------ MediaWiki: withIssuer without a salt

test('withIssuer without a salt: 400 E1023 that says why, a warning from check-config (and at start), a bare token still works', async () => {
  const gw = await startTestGateway(
    suffitConfig('memory', {
      apiKeys: [{ name: 'bot', key: 'bot-key-0123456789abcdef0123456789abcdef', allow: { paths: ['/mws/v1/'] } }],
    }),
  )
  for (const [method, path] of [
    ['GET', '/mws/v1/user-token/generate?withIssuer=true'],
    ['POST', '/mws/v1/user-token/generate?withIssuer=1'],
    ['POST', '/mws/v1/app-token/generate'],
  ] as const) {
    const res = await send(gw.port, method, path, {
      headers: { Authorization: 'ApiKey bot-key-0123456789abcdef0123456789abcdef' },
    })
    assert.equal(res.status, 400, `${path}: ${res.body}`)
    assert.equal(res.json.code, 'E1023')
    assert.match(res.json.message, /No salt is configured \(secrets\.salt\)/)
  }
  assert.equal((await send(gw.port, 'GET', '/mws/v1/user-token/generate')).status, 200, 'a bare token needs no salt')

  const dir = mkdtempSync(join(tmpdir(), 'kg-nosalt-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const check = (yaml: string) => {
    const file = join(dir, 'gateway.yaml')
    writeFileSync(file, yaml)
    return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'check-config', '--config', file], {
      encoding: 'utf8',
    })
  }
  const noSalt = check('upstream: demo\n')
  assert.equal(noSalt.status, 0, 'valid: a gateway may serve no envelopes at all')
  assert.match(noSalt.stderr, /warning: .*gateway\.yaml: secrets\.salt: not set: .*withIssuer=true .* answer 400 E1023/)
  const salted = check('upstream: demo\nsecrets: {salt: a-salt-of-32-bytes-or-more-0123456789}\n')
  assert.equal(salted.status, 0)
  assert.equal(salted.stderr, '')
})

// ------------------------------------------------------------------ README compatibility tables

test("the README's compatibility tables: every row names a test that exists", () => {
  const readme = readFileSync('README.md', 'utf8')
  const from = readme.indexOf('## Compatibility with the MediaWiki token authenticator and the Suffit auth API')
  assert.ok(from !== -1, 'the compatibility section')
  const section = readme.slice(
    from,
    readme.indexOf('\n## ', from + 1) === -1 ? undefined : readme.indexOf('\n## ', from + 1),
  )
  const rows = section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| field') && !l.startsWith('|---'))
  assert.ok(rows.length >= 40, `rows: ${rows.length}`)
  for (const row of rows) {
    const cells = row
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim())
    const ref = cells.at(-1)!
    const m = /^([\w-]+) › (.+)$/.exec(ref)
    assert.ok(m, `a test named in: ${row}`)
    const file = `test/${m[1]}.test.ts`
    assert.ok(existsSync(file), `${file} (${row})`)
    assert.ok(readFileSync(file, 'utf8').includes(m[2]!), `${file} has a test "${m[2]}"`)
    assert.match(cells[3]!, /^(same|different|added)$/, `same, different or added: ${row}`)
  }
})
