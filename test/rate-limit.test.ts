import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import { rawGet, rawRequest, startTestGateway, startUpstream, TEST_SECRET, parseConfig } from './helpers.js'
import {
  ALICE_PW,
  BOB_PW,
  REDIS_URL,
  STORE_KINDS,
  bearer,
  login,
  makeUsers,
  redisPrefixes,
  sleep,
} from './support/users.js'
import { freePort, kill, startRedis, waitFor } from './support/redis-server.js'
import { makeTempDir, startProcess, waitForPort } from './support/processes.js'
import { parseConfigText } from '../src/config/load.js'
import { compileConfig } from '../src/config/compile.js'
import { createMemoryStore } from '../src/store/index.js'
import { createRateLimit } from '../src/pipeline/rate-limit.js'
import { MAX_BUCKETS } from '../src/store/rate-counter.js'

const BOT_KEY = 'bot-key-0123456789abcdef0123456789abcdef'
const OTHER_KEY = 'other-key-0123456789abcdef0123456789abcde'
const apiKey = (key: string) => ({ Authorization: `ApiKey ${key}` })
const prefixes = redisPrefixes('rate-limit')

/** One request from a chosen loopback address (127.0.0.0/8 is all ours). */
const hit = (port: number, path: string, headers: Record<string, string> = {}, from = '127.0.0.1') =>
  rawGet(port, path, headers, { localAddress: from })

async function hits(n: number, port: number, path: string, headers: Record<string, string> = {}, from?: string) {
  const statuses: number[] = []
  for (let i = 0; i < n; i++) statuses.push((await hit(port, path, headers, from)).status)
  return statuses
}

const repeat = (value: number, n: number) => Array.from({ length: n }, () => value)

for (const kind of STORE_KINDS) {
  test(`${kind}: a key over its rate gets 429 E1031 with Retry-After, RateLimit-Policy and RateLimit; the upstream never sees it`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway({
      upstream: up.url,
      ...prefixes.store(kind),
      apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/data/'] }, rateLimit: { rate: '3/m' } }],
    })
    for (let i = 0; i < 3; i++) {
      const res = await hit(gw.port, '/data/page', apiKey(BOT_KEY))
      assert.equal(res.status, 200)
      assert.equal(res.headers['ratelimit-policy'], '"key:bot";q=3;w=60')
      assert.match(res.headers['ratelimit']!, new RegExp(`^"key:bot";r=${2 - i};t=(59|60)$`))
    }
    const refused = await hit(gw.port, '/data/page', apiKey(BOT_KEY))
    assert.equal(refused.status, 429)
    assert.equal(refused.json.code, 'E1031')
    const retryAfter = Number(refused.headers['retry-after'])
    assert.ok(retryAfter >= 59 && retryAfter <= 60, `Retry-After ${refused.headers['retry-after']}`)
    assert.equal(refused.headers['ratelimit-policy'], '"key:bot";q=3;w=60')
    assert.match(refused.headers['ratelimit']!, /^"key:bot";r=0;t=(59|60)$/)
    assert.equal(up.seen.length, 3)
  })

  test(`${kind}: a WebSocket upgrade over the limit is refused like any request: 429 E1031 with Retry-After and the RateLimit headers, no tunnel`, async () => {
    const up = await startUpstream()
    const tunnels: string[] = []
    up.server.on('upgrade', (req: { url: string }, socket: { destroy(): void }) => {
      tunnels.push(req.url)
      socket.destroy()
    })
    const gw = await startTestGateway({
      upstream: up.url,
      ...prefixes.store(kind),
      apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/ws/'] }, rateLimit: { rate: '1/m' } }],
    })
    const upgrade = `GET /ws/feed HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${BOT_KEY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`
    assert.equal((await hit(gw.port, '/ws/page', apiKey(BOT_KEY))).status, 200, 'the one request of the minute')
    const refused = await rawRequest(gw.port, upgrade)
    assert.equal(refused.status, 429, refused.body)
    assert.equal(refused.json?.code, 'E1031')
    const retryAfter = Number(refused.headers['retry-after'])
    assert.ok(retryAfter >= 59 && retryAfter <= 60, `Retry-After ${refused.headers['retry-after']}`)
    assert.equal(refused.headers['ratelimit-policy'], '"key:bot";q=1;w=60')
    assert.match(refused.headers['ratelimit'] ?? '', /^"key:bot";r=0;t=(59|60)$/)
    assert.deepEqual(tunnels, [], 'no tunnel was opened')
  })

  test(`${kind}: the most specific limit applies (route > key > default) and \`by\` decides what is counted`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway({
      upstream: up.url,
      ...prefixes.store(kind),
      secrets: { jwt: { secret: TEST_SECRET } },
      users: await makeUsers(),
      rateLimits: { anonymous: { rate: '2/m' }, authenticated: { rate: '4/m', by: 'user' } },
      routes: [
        { path: '/public/', anonymous: true },
        { path: '/shared/', anonymous: true, rateLimit: { rate: '2/m', by: 'route' } },
        { path: '/search/', rateLimit: { rate: '1/m', by: 'route' } },
      ],
      apiKeys: [
        { name: 'bot', key: BOT_KEY, allow: { paths: ['/data/', '/search/'] }, rateLimit: { rate: '3/m' } },
        { name: 'other', key: OTHER_KEY, allow: { paths: ['/data/'] } },
      ],
    })
    // anonymous callers: per client address
    assert.deepEqual(await hits(3, gw.port, '/public/a', {}, '127.0.0.2'), [200, 200, 429])
    assert.deepEqual(await hits(1, gw.port, '/public/a', {}, '127.0.0.3'), [200])
    // a key with its own limit: the key's (3), not the authenticated default (4)
    const botRefused = await hit(gw.port, '/data/x', apiKey(BOT_KEY))
    assert.equal(botRefused.status, 200)
    assert.deepEqual(await hits(3, gw.port, '/data/x', apiKey(BOT_KEY)), [200, 200, 429])
    assert.match((await hit(gw.port, '/data/x', apiKey(BOT_KEY))).headers['ratelimit-policy']!, /^"key:bot";/)
    // a key without one: the authenticated default, counted as the key (not shared with bot)
    assert.deepEqual(await hits(5, gw.port, '/data/x', apiKey(OTHER_KEY)), [200, 200, 200, 200, 429])
    // users: two tokens of one user share the user's budget; another user has their own
    const a1 = (await login(gw.port, { username: 'alice', password: ALICE_PW }, {}, '127.0.0.10')).json.token
    const a2 = (await login(gw.port, { username: 'alice', password: ALICE_PW }, {}, '127.0.0.11')).json.token
    const b = (await login(gw.port, { username: 'bob', password: BOB_PW }, {}, '127.0.0.12')).json.token
    assert.ok(a1 && a2 && b)
    assert.deepEqual(await hits(2, gw.port, '/data/x', bearer(a1)), [200, 200])
    const aliceOther = await hits(3, gw.port, '/data/x', bearer(a2))
    assert.deepEqual(aliceOther, [200, 200, 429])
    assert.match((await hit(gw.port, '/data/x', bearer(a2))).headers['ratelimit-policy']!, /^"authenticated";q=4;w=60$/)
    assert.deepEqual(await hits(1, gw.port, '/data/x', bearer(b)), [200])
    // a route limit beats the key's: the bot is over its own limit, yet the route lets it in once;
    // `by: route` is one budget for every caller of the route
    const onRoute = await hit(gw.port, '/search/q', apiKey(BOT_KEY))
    assert.equal(onRoute.status, 200)
    assert.equal(onRoute.headers['ratelimit-policy'], '"route:/search/";q=1;w=60')
    assert.equal((await hit(gw.port, '/search/q', bearer(b))).status, 429)
    // an anonymous route with `by: route`: addresses share it
    assert.equal((await hit(gw.port, '/shared/x', {}, '127.0.0.4')).status, 200)
    assert.equal((await hit(gw.port, '/shared/x', {}, '127.0.0.5')).status, 200)
    assert.equal((await hit(gw.port, '/shared/x', {}, '127.0.0.6')).status, 429)
    // keygate's own probes are never limited
    assert.deepEqual(await hits(3, gw.port, '/_keygate/health', {}, '127.0.0.2'), [200, 200, 200])
  })

  test(`${kind}: a spoofed X-Forwarded-For does not escape a per-address limit; a trusted proxy's forwarded address is counted`, async () => {
    const up = await startUpstream()
    const gw = await startTestGateway({
      upstream: up.url,
      ...prefixes.store(kind),
      trustedProxies: ['127.0.0.9/32'],
      rateLimits: { anonymous: { rate: '2/m', by: 'ip' } },
      routes: [{ path: '/public/', anonymous: true }],
    })
    const spoofed = []
    for (let i = 0; i < 4; i++)
      spoofed.push((await hit(gw.port, '/public/a', { 'X-Forwarded-For': `198.51.100.${i}` }, '127.0.0.20')).status)
    assert.deepEqual(spoofed, [200, 200, 429, 429])
    const viaProxy = (client: string) => hit(gw.port, '/public/a', { 'X-Forwarded-For': client }, '127.0.0.9')
    assert.equal((await viaProxy('203.0.113.1')).status, 200)
    assert.equal((await viaProxy('203.0.113.1')).status, 200)
    assert.equal((await viaProxy('203.0.113.1')).status, 429)
    assert.equal((await viaProxy('203.0.113.2')).status, 200, 'another client behind the proxy has its own budget')
    assert.equal((await viaProxy('203.0.113.2, 127.0.0.9')).status, 200)
    assert.equal((await viaProxy('203.0.113.2')).status, 429)
  })

  test(`${kind}: forward-auth answers carry RateLimit headers, and 429 E1031 with Retry-After over the limit`, async () => {
    const gw = await startTestGateway({
      ...prefixes.store(kind),
      apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/data/'] }, rateLimit: { rate: '2/m' } }],
    })
    const decision = () =>
      hit(gw.port, '/_keygate/auth', { ...apiKey(BOT_KEY), 'X-Original-URI': '/data/x', 'X-Original-Method': 'GET' })
    const first = await decision()
    assert.equal(first.status, 200)
    assert.equal(first.headers['ratelimit-policy'], '"key:bot";q=2;w=60')
    assert.match(first.headers['ratelimit']!, /^"key:bot";r=1;t=(59|60)$/)
    assert.equal(first.headers['x-auth-user'], 'service')
    assert.equal((await decision()).status, 200)
    const refused = await decision()
    assert.equal(refused.status, 429)
    assert.equal(refused.json.code, 'E1031')
    assert.ok(Number(refused.headers['retry-after']) >= 1)
    assert.match(refused.headers['ratelimit']!, /^"key:bot";r=0;t=\d+$/)
    assert.equal(refused.headers['x-auth-user'], undefined)
  })

  test(`${kind}: the first crossing of a window is audited once; metrics count by limit name`, async () => {
    const up = await startUpstream()
    const dir = await makeTempDir('rl-audit')
    const auditFile = join(dir, 'audit.log')
    const gw = await startTestGateway({
      upstream: up.url,
      ...prefixes.store(kind),
      audit: { file: auditFile },
      apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/data/'] }, rateLimit: { rate: '2/m' } }],
    })
    assert.deepEqual(await hits(5, gw.port, '/data/x', apiKey(BOT_KEY)), [200, 200, 429, 429, 429])
    const lines = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.kind === 'ratelimit.exceeded')
    assert.equal(lines.length, 1)
    assert.equal(lines[0].limit, 'key:bot')
    assert.equal(lines[0].subject, 'bot')
    assert.equal(lines[0].clientIp, '127.0.0.1')
    const metrics = (await hit(gw.port, '/_keygate/metrics')).body
    assert.match(metrics, /keygate_rate_limit_requests_total\{limit="key:bot",result="allowed"\} 2\b/)
    assert.match(metrics, /keygate_rate_limit_requests_total\{limit="key:bot",result="limited"\} 3\b/)
  })
}

test('check-config: rates like 0/s or abc, and a burst below the rate, are errors with their key paths', () => {
  const result = parseConfigText(
    [
      'rateLimits:',
      '  anonymous: {rate: 0/s}',
      '  authenticated: {rate: abc}',
      'routes:',
      '  - {path: /w/api.php, rateLimit: {rate: 10/s, burst: 5, by: user}}',
      'apiKeys:',
      '  - {name: bot, key: bot-key-0123456789abcdef0123456789abcdef, rateLimit: {rate: 5/d}}',
      '  - {name: ok, key: ok-key-0123456789abcdef0123456789abcdef00, rateLimit: {rate: 5/s, by: everyone}}',
    ].join('\n'),
    'gateway.yaml',
  )
  assert.equal(result.ok, false)
  const problems = result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`)
  const at = (path: string) => problems.find((p) => p.startsWith(`${path}: `))
  assert.match(at('rateLimits.anonymous.rate') ?? '', /at least one request/)
  assert.match(at('rateLimits.authenticated.rate') ?? '', /expected a rate like 10\/s/)
  assert.match(at('routes.0.rateLimit.burst') ?? '', /burst 5 is below the rate's 10/)
  assert.match(at('apiKeys.0.rateLimit.rate') ?? '', /expected a rate/)
  assert.ok(at('apiKeys.1.rateLimit.by'), problems.join('\n'))
  assert.ok(
    parseConfigText('rateLimits: {anonymous: {rate: 60/m, burst: 120}, onStoreDown: local}', 'ok.yaml').ok,
    'a valid rate passes',
  )
})

test('Redis stopped during limited traffic: E1006 and nothing passes; back: limits resume; onStoreDown: local counts per instance meanwhile', async () => {
  const port = await freePort()
  let redis = await startRedis(port)
  after(() => kill(redis))
  const up = await startUpstream()
  const config = (onStoreDown: 'refuse' | 'local') => ({
    upstream: up.url,
    store: { redis: `redis://127.0.0.1:${port}`, prefix: `rl-outage-${onStoreDown}:` },
    rateLimits: { onStoreDown },
    routes: [{ path: '/open/', anonymous: true }],
    apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/data/', '/open/'] }, rateLimit: { rate: '3/m' } }],
  })
  const strict = await startTestGateway(config('refuse'))
  const local = await startTestGateway(config('local'))
  assert.deepEqual(await hits(2, strict.port, '/data/x', apiKey(BOT_KEY)), [200, 200])
  const seenBefore = up.seen.length

  await kill(redis)
  const during = []
  for (let i = 0; i < 6; i++) {
    const res = await hit(strict.port, '/data/x', apiKey(BOT_KEY))
    during.push(`${res.status} ${res.json?.code}`)
  }
  assert.deepEqual(
    during,
    repeat(0, 6).map(() => '503 E1006'),
  )
  assert.equal(up.seen.length, seenBefore, 'nothing reached the upstream while the store was down')
  // availability first: this instance counts on its own (3/m) while Redis is away
  assert.deepEqual(await hits(4, local.port, '/data/x', apiKey(BOT_KEY)), [200, 200, 200, 429])

  redis = await startRedis(port)
  await waitFor(
    async () => (await hit(strict.port, '/data/x', apiKey(BOT_KEY))).status === 200,
    5000,
    'limited requests pass again once Redis is back',
  )
  // the restarted Redis kept nothing: a fresh window, enforced again
  assert.deepEqual(await hits(3, strict.port, '/data/x', apiKey(BOT_KEY)), [200, 200, 429])
})

test('exactness across instances: three keygate processes on one Redis hold a key to 50 per 5 s', async () => {
  const up = await startUpstream()
  const dir = await makeTempDir('rl-fleet')
  const file = join(dir, 'gateway.yaml')
  const prefix = `${prefixes.base}fleet:`
  await writeFile(
    file,
    JSON.stringify({
      listen: '127.0.0.1:${KG_PORT}',
      upstream: up.url,
      logLevel: 'warn',
      store: { redis: REDIS_URL, prefix },
      apiKeys: [{ name: 'bot', key: BOT_KEY, allow: { paths: ['/data/'] }, rateLimit: { rate: '10/s', burst: 50 } }],
    }),
  )
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  const procs = ports.map((p) =>
    startProcess(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file], {
      env: { ...process.env, KG_PORT: String(p) },
      ipc: true,
    }),
  )
  await Promise.all(ports.map((p, i) => waitForPort(p, procs[i]!)))

  const answers: Array<{ status: number; retryAfter: number; policy: string | undefined }> = []
  let next = 0
  const worker = async () => {
    while (next < 300) {
      const i = next++
      const res = await hit(ports[i % 3]!, '/data/x', apiKey(BOT_KEY))
      answers.push({
        status: res.status,
        retryAfter: Number(res.headers['retry-after']),
        policy: res.headers['ratelimit-policy'],
      })
    }
  }
  const started = Date.now()
  await Promise.all(Array.from({ length: 15 }, worker))
  assert.ok(Date.now() - started < 4500, 'the 300 requests fit in one window')
  const passed = answers.filter((a) => a.status === 200)
  const refused = answers.filter((a) => a.status === 429)
  assert.equal(passed.length, 50, 'a fixed window lets exactly its 50 through')
  assert.equal(refused.length, 250)
  assert.equal(up.seen.length, 50)
  assert.ok(answers.every((a) => a.policy === '"key:bot";q=50;w=5'))
  const waitSec = Math.max(...refused.map((a) => a.retryAfter))
  assert.ok(
    refused.every((a) => a.retryAfter >= 1 && a.retryAfter <= 5),
    'Retry-After within the window',
  )
  // an honest Retry-After: once it has passed, every instance lets the key in again
  await sleep(waitSec * 1000)
  for (const p of ports) assert.equal((await hit(p, '/data/x', apiKey(BOT_KEY))).status, 200)
})

test('memory stays flat with 200k distinct client addresses on an anonymous limit (in-memory store)', () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const compiled = compileConfig(
    parseConfig({ rateLimits: { anonymous: { rate: '60/m' } }, defaultPolicy: 'anonymous' }),
  )
  const store = createMemoryStore()
  after(() => store.close())
  const check = createRateLimit(compiled, { counter: store.rateCounter(), fallback: null, audit: () => {} })!
  const route = compiled.routes.at(-1)!
  const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  const heapAfter = (from: number, to: number): number => {
    for (let i = from; i < to; i++) {
      const out = check(route, null, address(i))
      assert.ok(out && !(out instanceof Promise) && out.result === 'allowed')
    }
    gc()
    return process.memoryUsage().heapUsed
  }
  gc()
  const start = process.memoryUsage().heapUsed
  const half = heapAfter(0, MAX_BUCKETS)
  const full = heapAfter(MAX_BUCKETS, 2 * MAX_BUCKETS)
  const mib = (n: number) => (n / 1048576).toFixed(1)
  assert.ok(full - half < 4 * 1048576, `the second 100k addresses grew the heap by ${mib(full - half)} MiB`)
  assert.ok(full - start < 48 * 1048576, `200k addresses grew the heap by ${mib(full - start)} MiB`)
  // and the limit still holds for an address that keeps coming
  const results = Array.from({ length: 61 }, () => (check(route, null, '192.0.2.7') as { result: string }).result)
  assert.equal(results.filter((r) => r === 'limited').length, 1)
})
