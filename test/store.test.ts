import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createManualClock } from '../src/clock.js'
import { StoreUnavailableError } from '../src/errors.js'
import { createMemoryStore } from '../src/store/memory.js'
import { createRedisStore } from '../src/store/redis.js'
import { createStoreHealth } from '../src/store/health.js'
import { createStore } from '../src/store/index.js'
import type { Store } from '../src/store/types.js'

// One contract, two stores (oauth2-proxy's RunSessionStoreTests): the memory store moves a
// manual clock, the Redis store really waits, with TTLs of tens of ms. Redis at 6379 is
// required: when it is not reachable these tests fail, they are not skipped.

const REDIS_URL = 'redis://127.0.0.1:6379'
const RUN_PREFIX = `kgtest:${process.pid}:${Date.now()}:`

interface Harness {
  store: Store
  advance: (ms: number) => Promise<void>
}

// TTLs for the contract: long enough that a real Redis round trip, or a loaded machine's late
// timer, never eats them (100 ms did, under CI load), short enough that waiting them out keeps
// the Redis run quick.
const TTL = 250
const PAST_TTL = TTL * 1.5
/** a step inside the TTL: two of them outlast it */
const STEP = TTL * 0.6

function storeContract(name: string, make: () => Promise<Harness>): void {
  const open = async (t: { after: (fn: () => Promise<void>) => void }): Promise<Harness> => {
    const h = await make()
    t.after(() => h.store.close())
    return h
  }

  test(`${name}: a value is read back until its TTL runs out`, async (t) => {
    const { store, advance } = await open(t)
    assert.equal(await store.get('a'), null)
    await store.set('a', 'one', TTL)
    assert.equal(await store.get('a'), 'one')
    const left = await store.ttl('a')
    assert.ok(left !== null && left > 0 && left <= TTL, `ttl ${left}`)
    await store.set('a', 'two', TTL) // overwrite
    assert.equal(await store.get('a'), 'two')
    await advance(PAST_TTL)
    assert.equal(await store.get('a'), null)
    assert.equal(await store.ttl('a'), null)
  })

  test(`${name}: setIfAbsent sets only an absent key, and again once it expired`, async (t) => {
    const { store, advance } = await open(t)
    assert.equal(await store.setIfAbsent('nx', 'first', TTL), true)
    assert.equal(await store.setIfAbsent('nx', 'second', TTL), false)
    assert.equal(await store.get('nx'), 'first')
    const left = await store.ttl('nx')
    assert.ok(left !== null && left <= TTL, 'setIfAbsent sets the TTL with the value')
    await advance(PAST_TTL)
    assert.equal(await store.setIfAbsent('nx', 'third', TTL), true)
    assert.equal(await store.get('nx'), 'third')
  })

  test(`${name}: take returns a value once`, async (t) => {
    const { store } = await open(t)
    await store.set('once', 'secret', 10_000)
    assert.equal(await store.take('once'), 'secret')
    assert.equal(await store.take('once'), null)
    assert.equal(await store.get('once'), null)
    assert.equal(await store.take('never-set'), null)
  })

  test(`${name}: of 20 concurrent takes exactly one wins`, async (t) => {
    const { store } = await open(t)
    await store.set('race', 'token', 10_000)
    const results = await Promise.all(Array.from({ length: 20 }, () => store.take('race')))
    assert.deepEqual(
      results.filter((r) => r !== null),
      ['token'],
    )
  })

  test(`${name}: an expired value cannot be taken`, async (t) => {
    const { store, advance } = await open(t)
    await store.set('late', 'token', TTL)
    await advance(PAST_TTL)
    assert.equal(await store.take('late'), null)
  })

  test(`${name}: del says whether the key existed`, async (t) => {
    const { store } = await open(t)
    await store.set('d', 'x', 10_000)
    assert.equal(await store.del('d'), true)
    assert.equal(await store.del('d'), false)
    assert.equal(await store.get('d'), null)
  })

  test(`${name}: expire slides the expiry of a live key only`, async (t) => {
    const { store, advance } = await open(t)
    await store.set('s', 'session', TTL)
    await advance(STEP)
    assert.equal(await store.expire('s', TTL), true)
    await advance(STEP) // two steps after set: kept alive by the slide
    assert.equal(await store.get('s'), 'session')
    await advance(PAST_TTL)
    assert.equal(await store.get('s'), null)
    assert.equal(await store.expire('s', TTL), false)
    assert.equal(await store.expire('missing', TTL), false)
    assert.equal(await store.get('missing'), null, 'expire does not create a key')
  })

  test(`${name}: incr counts in a fixed window that the first increment starts`, async (t) => {
    const { store, advance } = await open(t)
    const first = await store.incr('hits', TTL)
    assert.equal(first.count, 1)
    assert.ok(first.ttlMs > 0 && first.ttlMs <= TTL, `ttl ${first.ttlMs}`)
    await advance(STEP)
    const second = await store.incr('hits', TTL)
    assert.equal(second.count, 2)
    assert.ok(second.ttlMs > 0 && second.ttlMs <= TTL - STEP, `the window is not extended (ttl ${second.ttlMs})`)
    await advance(STEP)
    const third = await store.incr('hits', TTL)
    assert.equal(third.count, 1, 'a new window starts after the old one ends')
    assert.ok(third.ttlMs > TTL - STEP && third.ttlMs <= TTL, `ttl ${third.ttlMs}`)
  })

  test(`${name}: incr windows are per key`, async (t) => {
    const { store } = await open(t)
    const counts = await Promise.all(Array.from({ length: 10 }, () => store.incr('burst', 10_000)))
    assert.deepEqual(
      counts.map((c) => c.count).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
    assert.equal((await store.incr('other', 10_000)).count, 1)
  })

  test(`${name}: decr takes back an increment within the window, never below 0, and creates nothing`, async (t) => {
    const { store, advance } = await open(t)
    await store.incr('tries', TTL)
    await store.incr('tries', TTL)
    await store.decr('tries')
    assert.equal((await store.incr('tries', TTL)).count, 2)
    await store.decr('tries')
    await store.decr('tries')
    await store.decr('tries')
    assert.equal(await store.get('tries'), '0', 'never below 0')
    const left = await store.ttl('tries')
    assert.ok(left !== null && left <= TTL, `decr keeps the window's expiry (ttl ${left})`)
    await store.decr('absent')
    assert.equal(await store.get('absent'), null, 'decr does not create a counter')
    await advance(PAST_TTL)
    await store.decr('tries')
    assert.equal(await store.get('tries'), null, 'nor bring back an expired one')
  })

  test(`${name}: a set lives ttl after its last add`, async (t) => {
    const { store, advance } = await open(t)
    assert.deepEqual(await store.members('idx'), [])
    await store.addToSet('idx', 'a', TTL)
    await store.addToSet('idx', 'b', TTL)
    await store.addToSet('idx', 'a', TTL)
    assert.deepEqual((await store.members('idx')).sort(), ['a', 'b'])
    await advance(STEP)
    await store.addToSet('idx', 'c', TTL) // refreshes the whole set
    await advance(STEP)
    assert.deepEqual((await store.members('idx')).sort(), ['a', 'b', 'c'])
    await advance(PAST_TTL)
    assert.deepEqual(await store.members('idx'), [])
  })

  test(`${name}: a shorter add never cuts a set's life short (an index lives as long as its longest member)`, async (t) => {
    const { store, advance } = await open(t)
    await store.addToSet('long', 'api', TTL * 3)
    await store.addToSet('long', 'access', TTL)
    assert.ok((await store.ttl('long'))! > TTL * 2, 'the longer expiry stands')
    await advance(PAST_TTL)
    assert.deepEqual((await store.members('long')).sort(), ['access', 'api'])
    await advance(TTL * 3)
    assert.deepEqual(await store.members('long'), [])
  })

  test(`${name}: removing members, and the last one removes the set`, async (t) => {
    const { store } = await open(t)
    await store.addToSet('rm', 'a', 10_000)
    await store.addToSet('rm', 'b', 10_000)
    await store.removeFromSet('rm', 'a')
    await store.removeFromSet('rm', 'not-a-member')
    await store.removeFromSet('no-such-set', 'a')
    assert.deepEqual(await store.members('rm'), ['b'])
    await store.removeFromSet('rm', 'b')
    assert.deepEqual(await store.members('rm'), [])
    assert.equal(await store.ttl('rm'), null)
  })

  test(`${name}: keys lists live keys under a literal prefix, without the store prefix`, async (t) => {
    const { store, advance } = await open(t)
    await store.set('kp:old', 'x', TTL)
    await advance(PAST_TTL)
    await store.set('kp:a', 'x', 10_000)
    await store.set('kp:b', 'x', 10_000)
    await store.addToSet('kp:set', 'm', 10_000)
    await store.set('kq:c', 'x', 10_000)
    await store.set('g*:x', 'x', 10_000)
    await store.set('gz:y', 'x', 10_000)
    assert.deepEqual((await store.keys('kp:')).sort(), ['kp:a', 'kp:b', 'kp:set'])
    assert.deepEqual(await store.keys('g*:'), ['g*:x'], 'glob characters in the prefix are literal')
    assert.deepEqual(await store.keys('none:'), [])
  })

  test(`${name}: published messages reach every subscriber of the channel`, async (t) => {
    const { store } = await open(t)
    const a: string[] = []
    const b: string[] = []
    const elsewhere: string[] = []
    await store.subscribe('revoked', (m) => a.push(m))
    await store.subscribe('revoked', (m) => b.push(m))
    await store.subscribe('other', (m) => elsewhere.push(m))
    await store.publish('revoked', 'jti-1')
    await store.publish('revoked', 'jti-2')
    await waitFor(() => a.length === 2 && b.length === 2)
    assert.deepEqual(a, ['jti-1', 'jti-2'])
    assert.deepEqual(b, ['jti-1', 'jti-2'])
    assert.deepEqual(elsewhere, [])
  })

  test(`${name}: an unsubscribed listener hears nothing more; the others, and a later subscriber, still do`, async (t) => {
    const { store } = await open(t)
    const a: string[] = []
    const b: string[] = []
    const stopA = await store.subscribe('revoked', (m) => a.push(m))
    const stopB = await store.subscribe('revoked', (m) => b.push(m))
    stopA()
    stopA() // twice is harmless
    await store.publish('revoked', 'jti-1')
    await waitFor(() => b.length === 1)
    stopB()
    await store.publish('revoked', 'jti-2') // nobody listens
    const c: string[] = []
    await store.subscribe('revoked', (m) => c.push(m))
    await store.publish('revoked', 'jti-3')
    await waitFor(() => c.length === 1)
    await sleep(20)
    assert.deepEqual(a, [])
    assert.deepEqual(b, ['jti-1'])
    assert.deepEqual(c, ['jti-3'])
  })

  test(`${name}: stores with different prefixes share neither keys nor channels`, async (t) => {
    const one = (await open(t)).store
    const two = (await open(t)).store
    const heard: string[] = []
    await two.subscribe('revoked', (m) => heard.push(m))
    await one.set('shared-name', 'one', 10_000)
    await one.publish('revoked', 'for-one-only')
    await sleep(50)
    assert.equal(await two.get('shared-name'), null)
    assert.deepEqual(heard, [])
  })

  test(`${name}: ping answers; a closed store is unavailable`, async (t) => {
    const { store } = await open(t) // closing twice is harmless
    await store.ping()
    await store.close()
    await assert.rejects(store.ping(), StoreUnavailableError)
    await assert.rejects(store.get('a'), StoreUnavailableError)
  })

  test(`${name}: a TTL must be a positive number of ms`, async (t) => {
    const { store } = await open(t)
    await assert.rejects(store.set('bad', 'x', 0), RangeError)
    await assert.rejects(store.set('bad', 'x', Number.NaN), RangeError)
    await assert.rejects(store.incr('bad', -1), RangeError)
    assert.equal(await store.get('bad'), null)
  })
}

storeContract('memory', async () => {
  const clock = createManualClock(1_000_000)
  return { store: createMemoryStore({ clock }), advance: async (ms) => clock.advance(ms) }
})

let redisStores = 0
storeContract('redis', async () => ({
  store: createRedisStore({ redis: REDIS_URL, prefix: `${RUN_PREFIX}${++redisStores}:` }),
  advance: (ms) => sleep(ms),
}))

test('redis: when its last listener leaves, the store unsubscribes the channel on the server', async (t) => {
  const prefix = `${RUN_PREFIX}unsub:`
  const store = createRedisStore({ redis: REDIS_URL, prefix })
  const admin = new Redis(REDIS_URL)
  t.after(async () => {
    admin.disconnect()
    await store.close()
  })
  const listeners = async () => ((await admin.pubsub('NUMSUB', `${prefix}revoked`)) as [string, number])[1]
  const stops = await Promise.all([1, 2].map(() => store.subscribe('revoked', () => {})))
  assert.equal(await listeners(), 1, 'one connection subscribed for both listeners')
  stops[0]!()
  assert.equal(await listeners(), 1)
  stops[1]!()
  const deadline = Date.now() + 2000
  while ((await listeners()) !== 0) {
    assert.ok(Date.now() < deadline, 'the channel is still subscribed')
    await sleep(10)
  }
})

test('redis at 6379 is reachable (the Redis contract run is not optional)', async () => {
  const store = createRedisStore({ redis: REDIS_URL, prefix: RUN_PREFIX })
  try {
    await store.ping()
    // The Redis run relies on GETDEL (take) and PX: Redis 6.2 or newer.
    await store.set('version-check', 'x', 1000)
    assert.equal(await store.take('version-check'), 'x')
  } finally {
    await store.close()
  }
})

after(async () => {
  // Everything this run wrote lives under RUN_PREFIX; most of it has expired already.
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${RUN_PREFIX}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } catch {
    // Redis absent: the reachability test has failed already, nothing to clean.
  } finally {
    redis.disconnect()
  }
})

test('memory store: the keyspace belongs to one store object', async () => {
  const clock = createManualClock(0)
  const one = createMemoryStore({ clock })
  const two = createMemoryStore({ clock })
  await one.set('k', 'v', 1000)
  assert.equal(await two.get('k'), null)
  await Promise.all([one.close(), two.close()])
})

test('memory store: delivers published messages after publish resolves, like Redis', async () => {
  const store = createMemoryStore({})
  const heard: string[] = []
  await store.subscribe('c', (m) => heard.push(m))
  await store.publish('c', 'm')
  assert.deepEqual(heard, [])
  await waitFor(() => heard.length === 1)
  await store.close()
})

test('createStore: memory without redis, redis with it', async (t) => {
  const memory = createStore({ prefix: 'x:' })
  t.after(() => memory.close())
  assert.equal(memory.kind, 'memory')
  const redis = createStore({ redis: REDIS_URL, prefix: `${RUN_PREFIX}factory:` })
  t.after(() => redis.close())
  assert.equal(redis.kind, 'redis')
  await redis.ping()
})

// ---- health ------------------------------------------------------------------------------

/** A memory store whose ping can be made to fail or to hang. */
function flakyStore() {
  const store = createMemoryStore({})
  const state = { mode: 'ok' as 'ok' | 'fail' | 'hang', pings: 0 }
  const flaky: Store = {
    ...store,
    ping: async () => {
      state.pings++
      if (state.mode === 'fail') throw new StoreUnavailableError()
      if (state.mode === 'hang') await new Promise(() => {})
    },
  }
  return { store: flaky, state }
}

test('health: unknown until the first ping, then follows the pings', async () => {
  const clock = createManualClock(0)
  const { store, state } = flakyStore()
  const health = createStoreHealth(store, { intervalMs: 500, clock })
  assert.equal(health.healthy, false, 'never reached: not known healthy')
  assert.equal(await health.check(), true)
  assert.equal(health.healthy, true)
  state.mode = 'fail'
  assert.equal(await health.check(), false)
  assert.equal(health.healthy, false)
  state.mode = 'ok'
  assert.equal(await health.check(), true)
  assert.equal(health.healthy, true)
})

test('health: a ping that does not come back within two intervals ends health', async () => {
  const clock = createManualClock(0)
  const { store, state } = flakyStore()
  const health = createStoreHealth(store, { intervalMs: 500, clock })
  await health.check()
  state.mode = 'hang'
  void health.check()
  void health.check() // joins the one in flight
  assert.equal(state.pings, 2)
  clock.advance(1000)
  assert.equal(health.healthy, true)
  clock.advance(1)
  assert.equal(health.healthy, false)
})

test('health: the heartbeat runs on its own and stops', async () => {
  const { store, state } = flakyStore()
  const health = createStoreHealth(store, { intervalMs: 20 })
  health.start()
  await waitFor(() => health.healthy && state.pings >= 3)
  state.mode = 'fail'
  await waitFor(() => !health.healthy)
  state.mode = 'ok'
  await waitFor(() => health.healthy)
  health.stop()
  const pings = state.pings
  await sleep(60)
  assert.equal(state.pings, pings)
})

test('health: the interval is at most one second', () => {
  const store = createMemoryStore({})
  assert.throws(() => createStoreHealth(store, { intervalMs: 1001 }), RangeError)
  assert.throws(() => createStoreHealth(store, { intervalMs: 0 }), RangeError)
})

async function waitFor(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${timeoutMs} ms`)
    await sleep(5)
  }
}
