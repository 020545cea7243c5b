import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreUnavailableError } from '../src/errors.js'
import {
  freePort,
  kill,
  startCluster,
  startSentinel,
  startRedis as startRedisIn,
  waitFor,
} from './support/redis-server.js'
import { createRedisStore } from '../src/store/redis.js'
import { createStoreHealth } from '../src/store/health.js'

// Tests that run their own redis-server processes: the store fails closed and fast when Redis
// dies and recovers by itself when it returns; and the Sentinel and Cluster options work.
// A missing redis-server binary fails these tests rather than skipping them.

const workDir = mkdtempSync(join(tmpdir(), 'keygate-store-'))
const children: ChildProcess[] = []
const startRedis = (port: number, args: string[] = []) => startRedisIn(port, args, workDir, children)
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(workDir, { recursive: true, force: true })
})

/** The call must REJECT with StoreUnavailableError (never resolve, e.g. to null), and soon. */
async function rejectsFast(call: () => Promise<unknown>, label: string): Promise<void> {
  const started = Date.now()
  await assert.rejects(call(), StoreUnavailableError, label)
  const elapsed = Date.now() - started
  assert.ok(elapsed < 1500, `${label} took ${elapsed} ms to fail`)
}

test('Redis down → every call rejects with StoreUnavailableError within 1.5 s; back up → service resumes by itself', async (t) => {
  const port = await freePort()
  let server = await startRedis(port)
  const store = createRedisStore({ redis: `redis://127.0.0.1:${port}`, prefix: 'outage:' })
  const health = createStoreHealth(store, { intervalMs: 200 })
  t.after(async () => {
    health.stop()
    await store.close()
  })
  health.start()

  const heard: string[] = []
  await store.subscribe('revoked', (m) => heard.push(m))
  await store.set('token', 'alice', 60_000)
  assert.equal(await store.get('token'), 'alice')
  await store.publish('revoked', 'before')
  await waitFor(() => heard.includes('before'), 2000, 'message before the outage not delivered')
  await waitFor(() => health.healthy, 2000, 'health never became true')

  await kill(server)

  await rejectsFast(() => store.get('token'), 'get')
  await rejectsFast(() => store.set('token', 'mallory', 60_000), 'set')
  await rejectsFast(() => store.take('token'), 'take')
  await rejectsFast(() => store.incr('attempts', 60_000), 'incr')
  await rejectsFast(() => store.ping(), 'ping')
  await rejectsFast(() => store.setIfAbsent('x', 'y', 60_000), 'setIfAbsent')
  await rejectsFast(() => store.addToSet('idx', 'm', 60_000), 'addToSet')
  await rejectsFast(() => store.publish('revoked', 'lost'), 'publish')
  await rejectsFast(() => store.subscribe('another', () => {}), 'subscribe')
  await waitFor(() => !health.healthy, 1000, 'health stayed true with Redis down')
  assert.equal(await health.check(), false)

  server = await startRedis(port) // same port, empty dataset

  await waitFor(
    async () =>
      await store.get('token').then(
        () => true,
        () => false,
      ),
    5000,
    'store did not recover',
  )
  assert.equal(await store.get('token'), null) // the new server is empty: null is now the truth
  await store.set('token', 'bob', 60_000)
  assert.equal(await store.take('token'), 'bob')
  assert.equal((await store.incr('attempts', 60_000)).count, 1)
  await waitFor(() => health.healthy, 3000, 'health did not become true again')

  // The subscriber connection re-subscribes on its own after reconnecting.
  await waitFor(
    async () => {
      await store.publish('revoked', 'after').catch(() => {})
      await sleep(50)
      return heard.includes('after')
    },
    5000,
    'subscription did not survive the reconnect',
  )
  assert.ok(!heard.includes('lost'))
  await kill(server)
})

test('a Redis that hangs (connection open, no answers) fails calls at the timeout, and recovers', async (t) => {
  const port = await freePort()
  const server = await startRedis(port)
  const store = createRedisStore({ redis: `redis://127.0.0.1:${port}`, prefix: 'hang:' })
  const health = createStoreHealth(store, { intervalMs: 200 })
  t.after(async () => {
    health.stop()
    server.kill('SIGCONT')
    await store.close()
    await kill(server)
  })
  health.start()
  await store.set('k', 'v', 60_000)
  await waitFor(() => health.healthy, 2000, 'health never became true')

  server.kill('SIGSTOP') // like a network partition: no RST, no replies
  await rejectsFast(() => store.get('k'), 'get')
  await rejectsFast(() => store.take('k'), 'take')
  await waitFor(() => !health.healthy, 1000, 'health stayed true with Redis hung')

  server.kill('SIGCONT')
  await waitFor(
    async () =>
      store.ping().then(
        () => true,
        () => false,
      ),
    3000,
    'store did not recover',
  )
  await waitFor(() => health.healthy, 2000, 'health did not become true again')
})

test('a store created before Redis starts fails closed, then connects by itself', async (t) => {
  const port = await freePort()
  const store = createRedisStore({ redis: `redis://127.0.0.1:${port}`, prefix: 'early:' })
  t.after(() => store.close())
  await rejectsFast(() => store.get('k'), 'get before Redis exists')
  await rejectsFast(() => store.ping(), 'ping before Redis exists')
  const server = await startRedis(port)
  await waitFor(
    async () =>
      store.ping().then(
        () => true,
        () => false,
      ),
    3000,
    'store did not connect',
  )
  await store.set('k', 'v', 10_000)
  assert.equal(await store.get('k'), 'v')
  await kill(server)
})

test('Sentinel: the store finds the master through a sentinel', async (t) => {
  const masterPort = await freePort()
  await startRedis(masterPort)
  const sentinel = await startSentinel(masterPort, 'kgmaster', workDir, children)

  const store = createRedisStore({
    redis: { sentinels: [`127.0.0.1:${sentinel.port}`], name: 'kgmaster' },
    prefix: 'sentinel:',
  })
  t.after(() => store.close())
  await waitFor(
    async () =>
      store.ping().then(
        () => true,
        () => false,
      ),
    3000,
    'no master through the sentinel',
  )
  await store.set('k', 'v', 10_000)
  assert.equal(await store.take('k'), 'v')
  assert.equal((await store.incr('n', 10_000)).count, 1)
})

test('Cluster: keys spread over three masters are all found; scripts, transactions and pub/sub work', async (t) => {
  const { ports } = await startCluster(workDir, children)

  const store = createRedisStore({ redis: { cluster: ports.map((p) => `127.0.0.1:${p}`) }, prefix: 'cluster:' })
  t.after(() => store.close())
  await waitFor(
    async () =>
      store.ping().then(
        () => true,
        () => false,
      ),
    5000,
    'cluster store not ready',
  )

  const names = Array.from({ length: 30 }, (_, i) => `spread:${i}`)
  await Promise.all(names.map((n) => store.set(n, 'x', 10_000)))
  assert.deepEqual((await store.keys('spread:')).sort(), [...names].sort())
  assert.equal((await store.incr('n', 10_000)).count, 1)
  assert.equal((await store.incr('n', 10_000)).count, 2)
  await store.addToSet('idx', 'a', 10_000)
  assert.deepEqual(await store.members('idx'), ['a'])
  assert.equal(await store.take('spread:0'), 'x')
  assert.equal(await store.take('spread:0'), null)

  const heard: string[] = []
  await store.subscribe('revoked', (m) => heard.push(m))
  await store.publish('revoked', 'jti')
  await waitFor(() => heard.includes('jti'), 2000, 'cluster pub/sub message not delivered')
})
