import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, kill, startCluster, startRedis, waitFor } from './support/redis-server.js'
import { startTestGateway } from './helpers.js'

// What a gateway says about its store, against redis-server processes of the test's own:
// readiness and keygate_store_healthy follow whether the store can serve keygate's keys (a
// Redis Cluster with a master gone cannot, though its other nodes still answer PING), and an
// outage is logged once when it starts and once when it ends.

const workDir = mkdtempSync(join(tmpdir(), 'keygate-health-'))
const children: ChildProcess[] = []
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(workDir, { recursive: true, force: true })
})

const gatewayOn = (redis: unknown) =>
  startTestGateway({
    upstream: 'demo',
    defaultPolicy: 'anonymous',
    secrets: { jwt: { secret: 'store-health-jwt-secret-0123456789abcdef' } },
    store: { redis, prefix: `health:${process.pid}:` },
  })

const readyStatus = async (url: string): Promise<number> => {
  const res = await fetch(`${url}/_keygate/ready`)
  await res.arrayBuffer()
  return res.status
}
const storeHealthy = async (url: string): Promise<number> => {
  const text = await (await fetch(`${url}/_keygate/metrics`)).text()
  return Number(/^keygate_store_healthy (\d+)$/m.exec(text)?.[1])
}

test('Redis Cluster: one of three masters killed → /ready 503 and keygate_store_healthy 0 within 2 s', async () => {
  const { ports, nodes } = await startCluster(workDir, children)
  const gw = await gatewayOn({ cluster: ports.map((p) => `127.0.0.1:${p}`) })
  await waitFor(async () => (await readyStatus(gw.url)) === 200, 5000, 'never ready on a healthy cluster')
  await waitFor(async () => (await storeHealthy(gw.url)) === 1, 5000, 'store never healthy on a healthy cluster')

  // The surviving masters still answer PING, and serve their own slots, for a while.
  await kill(nodes[1]!)
  const killedAt = Date.now()
  await waitFor(
    async () => (await readyStatus(gw.url)) === 503 && (await storeHealthy(gw.url)) === 0,
    2000,
    'still ready / healthy 2 s after a master died',
  )
  const tookMs = Date.now() - killedAt
  console.log(`# cluster master down → not ready after ${tookMs} ms`)
  await sleep(600) // and it stays so
  assert.equal(await readyStatus(gw.url), 503)
  assert.equal(await storeHealthy(gw.url), 0)
})

interface LogLine {
  level: number
  msg?: string
  store?: string
  outageMs?: number
  err?: string
}

test('a Redis outage is logged once when it starts (warn) and once when it ends (info, with its length)', async () => {
  const port = await freePort()
  let server = await startRedis(port, [], workDir, children)
  const gw = await gatewayOn(`redis://127.0.0.1:${port}`)
  await waitFor(async () => (await readyStatus(gw.url)) === 200, 5000, 'never ready')
  const lines = () => gw.logs.map((l) => JSON.parse(l) as LogLine)
  const down = () => lines().filter((l) => l.msg?.startsWith('store unreachable'))
  const back = () => lines().filter((l) => l.msg === 'store reachable again')
  assert.deepEqual(down(), [], 'no outage reported while Redis is up')

  await kill(server)
  await waitFor(() => down().length > 0, 2000, 'the outage was not logged within 2 s')
  await sleep(1500) // the heartbeat keeps failing: still one line
  assert.equal(down().length, 1, 'one warning per outage')
  assert.equal(down()[0]!.level, 40, 'at warn')
  assert.equal(down()[0]!.store, 'redis')
  assert.ok(down()[0]!.err, 'says what failed')
  assert.deepEqual(back(), [])

  server = await startRedis(port, [], workDir, children)
  await waitFor(() => back().length > 0, 3000, 'the recovery was not logged')
  await sleep(600)
  assert.equal(back().length, 1, 'one info line per recovery')
  assert.equal(back()[0]!.level, 30, 'at info')
  assert.ok(back()[0]!.outageMs! >= 1500, `outage of ${back()[0]!.outageMs} ms reported`)
  assert.equal(down().length, 1)
  assert.equal(await readyStatus(gw.url), 200)
  await kill(server)
})
