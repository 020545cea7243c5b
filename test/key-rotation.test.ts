import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { captureLogs, rawGet, startUpstream } from './helpers.js'
import { ALICE_PW, STORE_KINDS, login, makeUsers, redisPrefixes } from './support/users.js'
import { startGateway } from '../src/server.js'
import { runAdmin, type AdminIo } from '../src/admin/index.js'
import { parseConfigText } from '../src/config/load.js'
import { createJwtKeys } from '../src/tokens/jwt-keys.js'
import { issueJwt, verifyJwt } from '../src/tokens/own-tokens.js'
import { systemClock } from '../src/clock.js'

// Key rotation with live tokens: the first key of secrets.jwt.keys signs, every listed key
// verifies, a removed key's tokens fail, and the single-key form's tokens survive the switch.

const dir = mkdtempSync(join(tmpdir(), 'keygate-rotation-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const prefixes = redisPrefixes('rotation')

const es256 = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }
}
const A = es256()
const B = es256()
const header = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())

for (const kind of STORE_KINDS) {
  test(`${kind}: rotation table — old tokens verify until they expire, new ones use the new key, a removed key's fail`, async () => {
    const up = await startUpstream()
    const file = join(dir, `${kind}.json`)
    const base = {
      upstream: up.url,
      users: await makeUsers(),
      tokens: { access: { ttl: '2s' }, api: { ttl: '1d' } },
      identityAssertion: { audience: 'wiki' },
      ...prefixes.store(kind, 'shared'),
    }
    const write = (jwt: Record<string, unknown>) =>
      writeFileSync(file, JSON.stringify({ ...base, secrets: { jwt: { clockSkew: '0s', ...jwt } } }))
    const token = async (type: 'access' | 'api') => {
      const r = await login(gw.port, { username: 'alice', password: ALICE_PW, token_type: type })
      assert.equal(r.status, 200, r.body)
      return r.json.token as string
    }
    const assertionKid = () => header(up.seen.at(-1)!.headers['x-keygate-assertion'] as string).kid as string
    const status = async (t: string) => {
      const r = await rawGet(gw.port, '/page', { Authorization: `Bearer ${t}` })
      return r.status === 401 ? `401 ${r.json.code}` : String(r.status)
    }

    write({ alg: 'ES256', privateKey: A.privateKey }) // the single-key form
    const gw = await startGateway({
      configFile: file,
      logger: captureLogs().logger,
      listen: { host: '127.0.0.1', port: 0 },
    })
    after(() => gw.close())
    const oldShort = await token('access')
    const oldLong = await token('api')
    assert.ok(header(oldShort).kid, 'the single-key form names its key too')
    assert.equal(await status(oldLong), '200')
    assert.equal(assertionKid(), header(oldShort).kid, 'assertions are signed with the same key')

    write({
      keys: [
        { kid: 'b', alg: 'ES256', privateKey: B.privateKey },
        { kid: 'a', alg: 'ES256', publicKey: A.publicKey },
      ],
    })
    assert.equal(await gw.reload(), true)
    const fresh = await token('api')
    assert.equal(header(fresh).kid, 'b', 'the first key signs')
    const jwks = await rawGet(gw.port, '/.well-known/jwks.json')
    assert.deepEqual(
      jwks.json.keys.map((k: { kid: string }) => k.kid),
      ['b', 'a'],
    )
    const { payload } = await jwtVerify(fresh, createLocalJWKSet(jwks.json), { issuer: 'keygate' })
    assert.equal(payload.sub, 'alice', 'verifiable with the published keys alone')

    const rows: Array<[string, string, string]> = [
      ['old access token, not yet expired', oldShort, '200'],
      ['old api token', oldLong, '200'],
      ['new token', fresh, '200'],
    ]
    for (const [name, t, want] of rows) assert.equal(await status(t), want, name)
    assert.equal(assertionKid(), 'b', 'assertions are signed with the new key at once')

    await sleep(2100)
    assert.equal(await status(oldShort), '401 E1001', 'the old access token has expired')
    assert.equal(await status(oldLong), '200', 'the old api token still verifies')

    write({ keys: [{ kid: 'b', alg: 'ES256', privateKey: B.privateKey }] })
    assert.equal(await gw.reload(), true)
    assert.equal(await status(oldLong), '401 E1001', "a removed key's token fails")
    assert.equal(await status(fresh), '200', 'the remaining key still verifies its tokens')
    assert.deepEqual(
      (await rawGet(gw.port, '/.well-known/jwks.json')).json.keys.map((k: { kid: string }) => k.kid),
      ['b'],
    )
  })
}

test('a kid names one key and its algorithm: a token that names an ES256 kid with alg HS256 is refused', async () => {
  const secret = 'rotation-test-hs256-secret-0123456789abcdef'
  const keys = await createJwtKeys({
    alg: 'HS256',
    issuer: 'keygate',
    clockSkew: 0,
    keys: [
      { kid: 'h', alg: 'HS256', secret },
      { kid: 'e', alg: 'ES256', publicKey: A.publicKey },
    ],
  })
  const claims = { sub: 'alice', type: 'access', uid: 3, name: '', email: '', groups: [], ttlMs: 60_000 } as const
  const issued = await issueJwt(keys, claims, systemClock)
  assert.ok(issued.ok)
  assert.equal(header(issued.token).kid, 'h')
  assert.ok((await verifyJwt(keys, issued.token, systemClock)).ok)
  const [, p, s] = issued.token.split('.')
  const renamed = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'e' })).toString('base64url')}.${p}.${s}`
  assert.deepEqual(await verifyJwt(keys, renamed, systemClock), {
    ok: false,
    refusal: { code: 'E1001' },
    reason: 'no_key',
  })
  assert.deepEqual(
    keys.ring.jwks.keys.map((k) => k.kid),
    ['e'],
    'an HS256 secret is never published',
  )
})

test('keygate keys new-signing-key --alg ES256 prints an entry that pastes into secrets.jwt.keys and signs', async () => {
  let out = ''
  const io: AdminIo = { out: (t) => void (out += t), err: (t) => assert.fail(t), env: {} }
  assert.equal(await runAdmin('keys', ['new-signing-key', '--alg', 'ES256'], io), 0)
  const yaml = `secrets:\n  jwt:\n    keys:\n${out}    - {kid: old, alg: ES256, publicKey: ${JSON.stringify(A.publicKey)}}\n`
  const loaded = parseConfigText(yaml, 'gateway.yaml', {})
  assert.ok(loaded.ok, JSON.stringify(loaded))
  const keys = await createJwtKeys(loaded.config.secrets.jwt)
  const kid = /kid: (\S+)/.exec(out)![1]!
  assert.match(kid, /^\d{4}-\d{2}-\d{2}-[0-9a-f]{6}$/)
  assert.equal(keys.ring.signing?.kid, kid)
  assert.equal(keys.ring.signing?.alg, 'ES256')
  assert.deepEqual(
    keys.ring.jwks.keys.map((k) => k.kid),
    [kid, 'old'],
  )

  const bad = parseConfigText(
    'secrets: {jwt: {keys: [{kid: a, alg: ES256, publicKey: x}, {kid: a, alg: HS256}]}}',
    'gateway.yaml',
    {},
  )
  assert.ok(!bad.ok)
  assert.deepEqual(bad.problems.map((p) => p.path).sort(), [
    'secrets.jwt.keys.0.privateKey',
    'secrets.jwt.keys.1.kid',
    'secrets.jwt.keys.1.secret',
  ])
})
