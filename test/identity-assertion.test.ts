import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { rawGet, startTestGateway, startUpstream } from './helpers.js'
import { ALICE_PW, login, makeUsers } from './support/users.js'
import { createManualClock } from '../src/clock.js'
import { createKeyring } from '../src/tokens/keyring.js'
import { createAssertionSigner } from '../src/tokens/assertion.js'
import type { Principal } from '../src/principal.js'

// The signed identity assertion: a short-lived JWT beside the plain identity headers, verifiable
// with keygate's JWKS alone, reused per identity and audience, never taken from the client.

const es256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString()
const API_KEY = 'assertion-test-api-key-0123456789abcdef012345'
const decode = (token: string, part: 0 | 1) =>
  JSON.parse(Buffer.from(token.split('.')[part]!, 'base64url').toString()) as Record<string, any>

async function setup() {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    users: await makeUsers(),
    secrets: { jwt: { keys: [{ kid: 'k1', alg: 'ES256', privateKey: es256 }] } },
    identityAssertion: { audience: 'wiki', ttl: '60s' },
    serviceUser: { name: 'Service', id: 9, groups: ['bot'] },
    apiKeys: [{ name: 'svc', key: API_KEY, allow: { paths: ['/'] } }],
    routes: [
      { path: '/public/', anonymous: true },
      { path: '/api/v2/', assertionAudience: 'reports' },
    ],
  })
  const r = await login(gw.port, { username: 'alice', password: ALICE_PW })
  assert.equal(r.status, 200, r.body)
  const jwks = createLocalJWKSet((await rawGet(gw.port, '/.well-known/jwks.json')).json as JSONWebKeySet)
  return { up, gw, bearer: `Bearer ${r.json.token as string}`, jwks }
}

test('the upstream gets a signed assertion with every claim, verifiable with the published keys', async () => {
  const { up, gw, bearer, jwks } = await setup()
  const res = await rawGet(gw.port, '/page', { Authorization: bearer })
  assert.equal(res.status, 200, res.body)
  const token = up.seen.at(-1)!.headers['x-keygate-assertion'] as string
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: 'keygate', audience: 'wiki' })
  assert.equal(protectedHeader.kid, 'k1')
  assert.equal(protectedHeader.alg, 'ES256')
  assert.deepEqual(
    { ...payload, iat: undefined, nbf: undefined, exp: undefined },
    {
      iss: 'keygate',
      aud: 'wiki',
      sub: 'alice',
      uid: 3,
      name: 'Alice Example',
      email: 'Alice@Example.org',
      groups: ['user', 'editors'],
      scheme: 'bearer',
      iat: undefined,
      nbf: undefined,
      exp: undefined,
    },
  )
  assert.equal(payload.exp! - payload.iat!, 60)
  assert.ok(Math.abs(payload.iat! - Date.now() / 1000) < 5)

  // reused: the next request carries the same assertion (no signature per request)
  await rawGet(gw.port, '/other', { Authorization: bearer })
  assert.equal(up.seen.at(-1)!.headers['x-keygate-assertion'], token)

  // a route's own audience
  await rawGet(gw.port, '/api/v2/report', { Authorization: bearer })
  const onApi = up.seen.at(-1)!.headers['x-keygate-assertion'] as string
  assert.equal((await jwtVerify(onApi, jwks, { audience: 'reports' })).payload.sub, 'alice')

  // an ApiKey caller is the service user, scheme apikey
  await rawGet(gw.port, '/page', { Authorization: `ApiKey ${API_KEY}` })
  const svc = decode(up.seen.at(-1)!.headers['x-keygate-assertion'] as string, 1)
  assert.deepEqual([svc.sub, svc.uid, svc.scheme, svc.groups], ['Service', 9, 'apikey', ['bot']])
})

test("a client's copy of the assertion header never reaches the upstream, in any spelling", async () => {
  const { up, gw, bearer } = await setup()
  const spellings = ['X-Keygate-Assertion', 'x-keygate-assertion', 'X_Keygate_Assertion', 'X.Keygate.Assertion']
  for (const name of spellings) {
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'
    const anon = await rawGet(gw.port, '/public/x', { [name]: forged })
    assert.equal(anon.status, 200)
    const seenAnon = up.seen.at(-1)!
    assert.ok(
      !seenAnon.rawHeaders.some((h) => /keygate.assertion/i.test(h) || h === forged),
      `${name}: nothing on an anonymous route`,
    )
    await rawGet(gw.port, '/page', { [name]: forged, Authorization: bearer })
    const seen = up.seen.at(-1)!
    const values = seen.rawHeaders.filter((_, i) => i % 2 === 1 && /keygate.assertion/i.test(seen.rawHeaders[i - 1]!))
    assert.equal(values.length, 1, `${name}: only keygate's own`)
    assert.notEqual(values[0], forged)
    assert.equal(decode(values[0]!, 1).sub, 'alice')
  }
})

test('forward-auth answers carry the assertion (for auth_request_set)', async () => {
  const { gw, bearer, jwks } = await setup()
  const res = await rawGet(gw.port, '/_keygate/auth', { Authorization: bearer, 'X-Original-URI': '/page' })
  assert.equal(res.status, 200, res.body)
  const { payload } = await jwtVerify(res.headers['x-keygate-assertion']!, jwks, { audience: 'wiki' })
  assert.equal(payload.sub, 'alice')
  const anon = await rawGet(gw.port, '/_keygate/auth', { 'X-Original-URI': '/public/a' })
  assert.equal(anon.status, 200)
  assert.equal(anon.headers['x-keygate-assertion'], undefined, 'no assertion for nobody')
})

const principal = (i: number, o: Partial<Principal> = {}): Principal => ({
  scheme: 'bearer',
  username: `user${i}`,
  uid: i,
  realName: `User ${i}`,
  email: `user${i}@example.org`,
  groups: ['user'],
  ...o,
})

test('an assertion is reused until half its lifetime is left, and never across identities or audiences', async () => {
  const ring = await createKeyring({
    alg: 'HS256',
    secret: 'assertion-test-secret-0123456789abcdef0123',
    issuer: 'keygate',
    clockSkew: 0,
  })
  const clock = createManualClock(Date.UTC(2026, 0, 1))
  const sign = createAssertionSigner({ key: ring.signing!, issuer: 'keygate', ttlMs: 60_000, clock })
  const alice = principal(1)
  const first = sign(alice, 'wiki')
  assert.equal(sign(alice, 'wiki'), first)
  assert.equal(sign({ ...alice }, 'wiki'), first, 'an equal principal object shares it')
  assert.notEqual(sign(alice, 'api'), first, 'another audience')
  for (const change of [
    { groups: ['user', 'sysop'] },
    { groups: ['user,sysop'] },
    { realName: 'Other' },
    { email: 'x@example.org' },
    { uid: 2 },
    { scheme: 'session' as const },
  ])
    assert.notEqual(sign(principal(1, change), 'wiki'), first, JSON.stringify(change))
  clock.advance(29_000)
  assert.equal(sign(alice, 'wiki'), first, 'more than half the lifetime left')
  clock.advance(1_000)
  const renewed = sign(alice, 'wiki')
  assert.notEqual(renewed, first, 'half the lifetime gone: signed anew')
  assert.equal(decode(renewed, 1).exp, decode(first, 1).exp + 30)
})

test('memory stays flat over 40k distinct principals (the reuse cache is bounded)', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const ring = await createKeyring({
    alg: 'HS256',
    secret: 'assertion-test-secret-0123456789abcdef0123',
    issuer: 'keygate',
    clockSkew: 0,
  })
  const sign = createAssertionSigner({
    key: ring.signing!,
    issuer: 'keygate',
    ttlMs: 60_000,
    clock: createManualClock(0),
    maxEntries: 2_000,
  })
  const heapAfter = (from: number, to: number) => {
    for (let i = from; i < to; i++) sign(principal(i), 'wiki')
    gc()
    gc()
    return process.memoryUsage().heapUsed
  }
  // each assertion kept is a few hundred bytes: 36k more unbounded entries would be well over 10 MB
  const filled = heapAfter(0, 4_000) // the cache is full from here on
  const after40k = heapAfter(4_000, 40_000)
  const growth = after40k - filled
  assert.ok(growth < 4 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MB over 36k more principals`)
})
