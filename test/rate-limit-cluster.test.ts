import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rawGet, startTestGateway, startUpstream, type RawResponse, type SeenRequest } from './helpers.js'
import type { RedisTarget } from '../src/store/redis.js'
import {
  freePort,
  kill,
  startCluster,
  startRedis,
  startSentinel,
  waitFor,
  waitForClusterState,
} from './support/redis-server.js'

// Rate limits on the two Redis layouts beside a single server: a 3-master Cluster, where each
// bucket's counter lives on the master of its key's slot, and a master found through Sentinel.
// Two gateways on one Redis must see one limit, and a counter that cannot be reached must refuse
// (503 E1006), never let the request through uncounted. The upstream records what reached it.

const workDir = mkdtempSync(join(tmpdir(), 'keygate-rl-cluster-'))
const children: ChildProcess[] = []
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(workDir, { recursive: true, force: true })
})

// Fixed, as each test has a Redis of its own: the counters' keys, hence their slots and masters,
// are then the same on every run.
const PREFIX = 'rlc:'
/** Used up through both gateways: their limits are shared. */
const SHARED = ['bot-a', 'bot-b', 'bot-c', 'bot-d', 'bot-e', 'bot-f']
/** Anonymous callers, limited per address. */
const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']
/** One request each before Redis loses a master, the rest after. */
const FRESH = ['late-a', 'late-b', 'late-c', 'late-d', 'late-e', 'late-f']

const secretOf = (name: string) => `${name}-key-0123456789abcdef0123456789abcdef`
const apiKey = (name: string) => ({ Authorization: `ApiKey ${secretOf(name)}` })
const keyRequest = (port: number, name: string) => rawGet(port, `/data/${name}`, apiKey(name))

type Upstream = Awaited<ReturnType<typeof startUpstream>>

/** An upstream and two gateways on one Redis, both ready (their store answers). */
async function twoGateways(redis: RedisTarget): Promise<{ up: Upstream; ports: [number, number] }> {
  const up = await startUpstream()
  const config = {
    upstream: up.url,
    store: { redis, prefix: PREFIX },
    rateLimits: { anonymous: { rate: '2/m' } },
    routes: [{ path: '/public/', anonymous: true }],
    apiKeys: [...SHARED, ...FRESH].map((name) => ({
      name,
      key: secretOf(name),
      allow: { paths: ['/data/'] },
      rateLimit: { rate: '3/m' },
    })),
  }
  const ports: [number, number] = [(await startTestGateway(config)).port, (await startTestGateway(config)).port]
  await waitFor(
    async () => (await Promise.all(ports.map((p) => rawGet(p, '/_keygate/ready')))).every((r) => r.status === 200),
    5000,
    'the gateways did not reach their store',
  )
  return { up, ports }
}

const seenPaths = (seen: readonly SeenRequest[]): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const { url } of seen) counts[url] = (counts[url] ?? 0) + 1
  return counts
}

/**
 * Every key's 3/m and every address's 2/m is one count for both gateways: requests alternate
 * between them, and the one over the limit is refused by whichever gateway it reaches.
 */
async function limitsAreShared(up: Upstream, ports: [number, number]): Promise<void> {
  for (const name of SHARED) {
    const answers: RawResponse[] = []
    for (let i = 0; i < 4; i++) answers.push(await keyRequest(ports[i % 2]!, name))
    assert.deepEqual(
      answers.map((r) => r.status),
      [200, 200, 200, 429],
      name,
    )
    answers.forEach((r, i) => {
      assert.equal(r.headers['ratelimit-policy'], `"key:${name}";q=3;w=60`)
      assert.match(r.headers['ratelimit'] ?? '', new RegExp(`^"key:${name}";r=${Math.max(0, 2 - i)};t=(59|60)$`))
    })
    const refused = answers[3]!
    assert.equal(refused.json?.code, 'E1031')
    const retryAfter = Number(refused.headers['retry-after'])
    assert.ok(retryAfter >= 59 && retryAfter <= 60, `Retry-After ${refused.headers['retry-after']}`)
    // the gateway that admitted the third learns from the store that the window is used up
    assert.equal((await keyRequest(ports[0], name)).status, 429)
  }
  for (const from of ADDRESSES) {
    const statuses: number[] = []
    for (let i = 0; i < 3; i++)
      statuses.push((await rawGet(ports[i % 2]!, `/public/${from}`, {}, { localAddress: from })).status)
    assert.deepEqual(statuses, [200, 200, 429], from)
  }
  const expected: Record<string, number> = {}
  for (const name of SHARED) expected[`/data/${name}`] = 3
  for (const from of ADDRESSES) expected[`/public/${from}`] = 2
  assert.deepEqual(seenPaths(up.seen), expected, 'the upstream received exactly the requests within the limits')
}

/** Each FRESH key's first request, which leaves its counter in Redis. */
async function firstRequests(up: Upstream, port: number): Promise<void> {
  for (const name of FRESH) {
    const res = await keyRequest(port, name)
    assert.equal(res.status, 200)
    assert.match(res.headers['ratelimit'] ?? '', new RegExp(`^"key:${name}";r=2;`))
  }
  for (const name of FRESH) assert.equal(seenPaths(up.seen)[`/data/${name}`], 1)
}

/** Keys under their limit whose counter cannot be reached: 503 E1006 from both gateways, soon, none passes. */
async function failClosed(up: Upstream, ports: [number, number], names: readonly string[]): Promise<void> {
  const before = up.seen.length
  for (const name of names) {
    for (const port of ports) {
      const started = Date.now()
      const res = await keyRequest(port, name)
      assert.equal(`${res.status} ${res.json?.code}`, '503 E1006', `${name} on ${port}`)
      assert.equal(res.headers['ratelimit'], undefined, 'no count to report')
      const elapsed = Date.now() - started
      assert.ok(elapsed < 1500, `${name} took ${elapsed} ms to be refused`)
    }
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream')
}

test('Cluster: limits spread over three masters are shared by two gateways (429 E1031); keys on a dead master get 503 E1006, then those on the survivors once the cluster is down', async () => {
  const { ports: nodes, nodes: servers } = await startCluster(workDir, children)
  const { up, ports } = await twoGateways({ cluster: nodes.map((p) => `127.0.0.1:${p}`) })
  await limitsAreShared(up, ports)

  // one counter per bucket, spread over every master: the script touches one key, so no CROSSSLOT
  const countersOn = (node: number) =>
    execFileSync('redis-cli', ['-p', String(node), '--scan', '--pattern', `${PREFIX}rl:*`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
  const held = nodes.map(countersOn)
  assert.equal(held.flat().length, SHARED.length + ADDRESSES.length)
  assert.ok(
    held.every((keys) => keys.length > 0),
    `counters per master: ${held.map((k) => k.length).join(', ')}`,
  )

  await firstRequests(up, ports[0])
  const masterOf = (name: string) =>
    nodes[nodes.map(countersOn).findIndex((keys) => keys.some((k) => k.endsWith(`:key:${name}`)))]
  const victim = masterOf(FRESH[0]!)!
  const survivor = FRESH.find((name) => masterOf(name) !== victim)
  assert.ok(survivor, 'a fresh counter lives on a surviving master')
  await kill(servers[nodes.indexOf(victim)]!)

  // The dead master's slots are refused from the start, while the others still serve theirs. On a
  // cluster each refusal takes the store's 1 s budget (ioredis retries the slot meanwhile, as it
  // would through a failover), hence one key per phase.
  await failClosed(up, ports, [FRESH[0]!])
  // a cluster that lost a master without a replica stops serving every slot (CLUSTERDOWN)
  const survivors = nodes.filter((p) => p !== victim)
  await waitForClusterState(survivors, 'fail', 8000)
  await failClosed(up, ports, [survivor])
})

test('Sentinel: limits are shared by two gateways on the master it names (429 E1031); with the master dead, limited requests get 503 E1006', async () => {
  const masterPort = await freePort()
  const master = await startRedis(masterPort, [], workDir, children)
  const sentinel = await startSentinel(masterPort, 'kgrl', workDir, children)
  const { up, ports } = await twoGateways({ sentinels: [`127.0.0.1:${sentinel.port}`], name: 'kgrl' })
  await limitsAreShared(up, ports)
  await firstRequests(up, ports[0])

  await kill(master)
  await failClosed(up, ports, FRESH)
})
