import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rawGet, startTestGateway, startUpstream, type RawResponse } from './helpers.js'
import { createMemoryStore } from '../src/store/memory.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { systemClock } from '../src/clock.js'
import { createRevocation, revocationEpochKey, type RevocableClaims } from '../src/tokens/revocation.js'
import {
  ALICE_PW,
  JWT_SECRET,
  REDIS_URL,
  SALT,
  STORE_KINDS,
  bearer,
  login,
  makeUsers,
  postJson,
  redisPrefixes,
  sleep,
  type StoreKind,
} from './support/users.js'

// The per-issuer revocation epoch (issue 12, item 6): `keygate tokens revoke --all --before <time>`
// refuses every keygate token issued before it, on every instance within a second, with no store
// round trip per request. The command line itself is tested against a gateway process in
// test/admin.test.ts; here the same revocation call runs beside in-process gateways on both stores.

const users = await makeUsers()
const prefixes = redisPrefixes('revocation-epoch')
const YEAR = 365 * 86_400_000

/** Two gateways on one store, and the store itself (as the admin command line opens it). */
async function twoGateways(kind: StoreKind) {
  const up = await startUpstream()
  const storeConfig = prefixes.store(kind, randomBytes(4).toString('hex')) as { store?: { prefix: string } }
  const config = { upstream: up.url, ...storeConfig, secrets: { salt: SALT, jwt: { secret: JWT_SECRET } }, users }
  const store: Store =
    kind === 'memory' ? createMemoryStore() : createRedisStore({ redis: REDIS_URL, prefix: storeConfig.store!.prefix })
  after(() => store.close())
  const extra = kind === 'memory' ? { store } : {}
  const a = await startTestGateway(config, extra)
  const b = await startTestGateway(config, extra)
  return { a, b, store }
}

/** The operator's side: what `keygate tokens revoke --all --before` calls. */
async function operatorRevocation(store: Store) {
  const r = await createRevocation<RevocableClaims>({
    store,
    clock: systemClock,
    healthy: () => true,
    issuer: 'keygate',
  })
  after(() => r.close())
  return r
}

async function refusedWithin(request: () => Promise<RawResponse>, withinMs: number) {
  const started = Date.now()
  let last = await request()
  while (last.status === 200 && Date.now() - started < withinMs) {
    await sleep(20)
    last = await request()
  }
  return { ...last, ms: Date.now() - started }
}

const nextSecond = () => sleep(1_000 - (Date.now() % 1_000) + 50)

for (const kind of STORE_KINDS) {
  test(`${kind}: tokens issued before the revocation epoch are refused on every instance within 1 s; later ones work`, async () => {
    const { a, b, store } = await twoGateways(kind)
    const issue = async (token_type: string) => {
      const r = await login(a.port, { username: 'alice', password: ALICE_PW, token_type })
      assert.equal(r.status, 200, r.body)
      return r.json.token as string
    }
    const access = await issue('access')
    const api = await issue('api')
    const refresh = await issue('refresh')
    for (const gw of [a, b])
      for (const t of [access, api]) assert.equal((await rawGet(gw.port, '/wiki/P', bearer(t))).status, 200)

    const operator = await operatorRevocation(store)
    await nextSecond()
    const epoch = await operator.revokeIssuedBefore(Date.now(), Date.now() + YEAR)
    for (const gw of [a, b])
      for (const t of [access, api]) {
        const r = await refusedWithin(() => rawGet(gw.port, '/wiki/P', bearer(t)), 1_000)
        assert.equal(r.json?.code, 'E1002', r.body)
        assert.ok(r.ms <= 1_000, `accepted ${r.ms} ms after the epoch`)
      }
    const refreshed = await postJson(b.port, '/api/refresh', { refresh_token: refresh })
    assert.equal(refreshed.json.code, 'E1002', refreshed.body)

    // the epoch never moves back; a token issued after it works everywhere
    assert.equal(await operator.revokeIssuedBefore(epoch - 60_000, Date.now() + YEAR), epoch)
    assert.equal(await store.get(revocationEpochKey('keygate')), String(epoch))
    await nextSecond()
    const fresh = await issue('access')
    for (const gw of [a, b]) assert.equal((await rawGet(gw.port, '/wiki/P', bearer(fresh))).status, 200)
  })

  test(`${kind}: the epoch costs one store read per instance per second, not one per request`, async () => {
    const base =
      kind === 'memory' ? createMemoryStore() : createRedisStore({ redis: REDIS_URL, prefix: `${prefixes.base}count:` })
    after(() => base.close())
    let epochReads = 0
    const counting: Store = Object.create(base, {
      get: {
        value: (key: string) => {
          if (key === revocationEpochKey('keygate')) epochReads++
          return base.get(key)
        },
      },
    })
    const revocation = await createRevocation<RevocableClaims>({
      store: counting,
      clock: systemClock,
      healthy: () => true,
      issuer: 'keygate',
    })
    after(() => revocation.close())
    const claims = { jti: 'j1', issuedAt: Date.now(), expiresAt: Date.now() + 60_000 }
    const verify = async () => ({ ok: true as const, claims })
    const started = Date.now()
    let answered = 0
    while (Date.now() - started < 1_500) {
      const hot = revocation.cached('tok')
      if (!hot) assert.equal((await revocation.check('tok', verify)).ok, true)
      answered++
      if (answered % 100 === 0) await sleep(1)
    }
    assert.ok(answered > 1_000, `${answered} requests`)
    assert.ok(epochReads >= 1 && epochReads <= 3, `${epochReads} epoch reads for ${answered} requests in 1.5 s`)
  })
}
