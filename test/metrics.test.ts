import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { makeTempDir } from './support/processes.js'
import { createMetrics } from '../src/metrics/catalogue.js'
import { createObserver, requestChannel, type RequestEvent, type StoreEvent } from '../src/observe.js'
import { hashPassword } from '../src/tokens/password.js'
import { rawGet, rawRequest, startTestGateway, startUpstream, TEST_SECRET } from './helpers.js'

// Metrics are read the way Prometheus reads them: the text exposition format, parsed by a strict
// parser that refuses anything a scraper would choke on, then every series is checked exactly.

// ------------------------------------------------------------ a strict Prometheus text parser

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}
interface Family {
  readonly name: string
  type: string
  help: string | null
  readonly samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value "${text}"`)
  return Number(text)
}

/** name{a="x",b="y"} value — label values with \\, \" and \n escapes; no trailing comma tricks. */
function parseSampleLine(line: string, where: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/.exec(line)
  if (!m) throw new Error(`${where}: not a sample line: ${line}`)
  const labels: Record<string, string> = {}
  const body = m[3] ?? ''
  let i = 0
  while (i < body.length) {
    const nameMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(body.slice(i))
    if (!nameMatch) throw new Error(`${where}: bad label at "${body.slice(i)}"`)
    const labelName = nameMatch[1]!
    i += nameMatch[0].length
    let value = ''
    for (;;) {
      if (i >= body.length) throw new Error(`${where}: unterminated label value`)
      const c = body[i]!
      if (c === '\\') {
        const n = body[i + 1]
        if (n === '\\') value += '\\'
        else if (n === '"') value += '"'
        else if (n === 'n') value += '\n'
        else throw new Error(`${where}: bad escape \\${n}`)
        i += 2
      } else if (c === '"') {
        i++
        break
      } else {
        value += c
        i++
      }
    }
    if (labelName in labels) throw new Error(`${where}: label ${labelName} twice`)
    labels[labelName] = value
    if (i < body.length) {
      if (body[i] !== ',') throw new Error(`${where}: expected , between labels`)
      i++
    }
  }
  return { name: m[1]!, labels, value: parseValue(m[4]!, where) }
}

/** The families of one scrape; throws on anything malformed or inconsistent. */
function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const seenSeries = new Set<string>()
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const lines = text.split('\n').slice(0, -1)
  const familyOf = (sampleName: string): Family | undefined => {
    const direct = families.get(sampleName)
    if (direct) return direct
    const base = sampleName.replace(/_(bucket|sum|count)$/, '')
    const f = families.get(base)
    return f && (f.type === 'histogram' || f.type === 'summary') ? f : undefined
  }
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`
    if (line === '') return
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (!m) return // other comments are allowed
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string]
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`)
      let f = families.get(name)
      if (!f) {
        f = { name, type: 'untyped', help: null, samples: [] }
        families.set(name, f)
      }
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${where}: bad type ${rest}`)
        if (f.samples.length > 0) throw new Error(`${where}: TYPE after samples of ${name}`)
        f.type = rest
      } else {
        if (f.help !== null) throw new Error(`${where}: second HELP for ${name}`)
        f.help = rest
      }
      return
    }
    const s = parseSampleLine(line, where)
    const f = familyOf(s.name)
    if (!f) throw new Error(`${where}: sample ${s.name} has no TYPE line`)
    for (const l of Object.keys(s.labels)) if (!LABEL_NAME.test(l)) throw new Error(`${where}: bad label name ${l}`)
    const key = `${s.name}{${Object.entries(s.labels)
      .sort()
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`
    if (seenSeries.has(key)) throw new Error(`${where}: series ${key} twice`)
    seenSeries.add(key)
    f.samples.push(s)
  })
  // Histograms: cumulative buckets, a +Inf bucket equal to _count, per label set.
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue
    const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>()
    for (const s of f.samples) {
      const { le, ...rest } = s.labels
      const g = JSON.stringify(Object.entries(rest).sort())
      const entry = groups.get(g) ?? { buckets: [] }
      groups.set(g, entry)
      if (s.name === `${f.name}_bucket`) {
        if (le === undefined) throw new Error(`${f.name}: bucket without le`)
        entry.buckets.push([parseValue(le, f.name), s.value])
      } else if (s.name === `${f.name}_count`) entry.count = s.value
      else if (s.name === `${f.name}_sum`) entry.sum = s.value
      else throw new Error(`${f.name}: unexpected sample ${s.name}`)
    }
    for (const g of groups.values()) {
      const sorted = [...g.buckets].sort((a, b) => a[0] - b[0])
      sorted.forEach(([, v], i) => {
        if (i > 0 && v < sorted[i - 1]![1]) throw new Error(`${f.name}: buckets not cumulative`)
      })
      const inf = sorted.at(-1)
      if (!inf || inf[0] !== Infinity) throw new Error(`${f.name}: no +Inf bucket`)
      if (g.count === undefined || g.sum === undefined) throw new Error(`${f.name}: _count or _sum missing`)
      if (inf[1] !== g.count) throw new Error(`${f.name}: +Inf bucket ${inf[1]} != count ${g.count}`)
    }
  }
  return families
}

/** Reads series out of a parsed scrape. */
function reader(text: string) {
  const families = parsePrometheusText(text)
  const samplesNamed = (name: string) => [...families.values()].flatMap((f) => f.samples.filter((s) => s.name === name))
  return {
    families,
    typeOf: (name: string) => families.get(name)?.type,
    /** the value of the series with exactly these labels; undefined when absent */
    value(name: string, labels: Record<string, string> = {}): number | undefined {
      const want = JSON.stringify(Object.entries(labels).sort())
      return samplesNamed(name).find((s) => JSON.stringify(Object.entries(s.labels).sort()) === want)?.value
    },
    /** every series of a name, as "k=v,k=v" → value, for whole-set comparisons */
    series(name: string): Record<string, number> {
      return Object.fromEntries(
        samplesNamed(name).map((s) => [
          Object.entries(s.labels)
            .sort()
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
          s.value,
        ]),
      )
    },
  }
}

test('the Prometheus parser of this file refuses what a scraper would refuse', () => {
  const bad = [
    'keygate_x 1\n', // no TYPE
    '# TYPE keygate_x counter\nkeygate_x{a="1} 1\n', // unterminated value
    '# TYPE keygate_x counter\nkeygate_x{a="1",a="2"} 1\n', // label twice
    '# TYPE keygate_x counter\nkeygate_x 1\nkeygate_x 2\n', // series twice
    '# TYPE keygate_x counter\nkeygate_x one\n', // bad value
    '# TYPE keygate_x counter\nkeygate_x 1', // no final newline
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', // +Inf != count
  ]
  for (const text of bad) assert.throws(() => parsePrometheusText(text), `accepted: ${JSON.stringify(text)}`)
  const ok = reader('# HELP k_total a help\n# TYPE k_total counter\nk_total{a="x\\"y",b="z\\\\"} 3\n')
  assert.equal(ok.value('k_total', { a: 'x"y', b: 'z\\' }), 3)
})

// ------------------------------------------------------------ events published on the channels

const req = (over: Partial<RequestEvent>): RequestEvent => ({
  decision: 'allow',
  code: null,
  scheme: 'anonymous',
  route: 'public',
  status: 200,
  durationMs: 2,
  upstreamMs: 1,
  upstreamError: null,
  ...over,
})

test('a scripted mix of observed events: every series counts exactly', async () => {
  let healthy = true
  let hash = 'cafe0001'
  const observer = createObserver()
  const publishRequest = observer.request
  const publishAudit = observer.audit
  const metrics = createMetrics({ configHash: () => hash, storeHealthy: () => healthy, observer })
  after(() => metrics.close())

  // before any event: fixed label sets are there at 0
  const empty = reader(await metrics.render())
  assert.equal(empty.value('keygate_upstream_errors_total', { kind: 'timeout' }), 0)
  assert.equal(empty.value('keygate_config_reloads_total', { result: 'failed' }), 0)
  assert.equal(empty.value('keygate_login_failures_total'), 0)
  assert.equal(empty.value('keygate_request_duration_seconds_count'), 0)

  for (let i = 0; i < 3; i++) publishRequest(req({ durationMs: 0.3, upstreamMs: 0.2 }))
  publishRequest(
    req({ decision: 'deny', code: 'E1000', route: 'default', status: 401, durationMs: 0.1, upstreamMs: null }),
  )
  publishRequest(
    req({ decision: 'deny', code: 'E1000', route: 'default', status: 401, durationMs: 0.1, upstreamMs: null }),
  )
  publishRequest(
    req({
      decision: 'deny',
      code: 'E1004',
      scheme: 'apikey',
      route: 'admin',
      status: 403,
      durationMs: 0.1,
      upstreamMs: null,
    }),
  )
  publishRequest(req({ scheme: 'bearer', route: 'api', durationMs: 30, upstreamMs: 29 }))
  publishRequest(
    req({ scheme: 'bearer', route: 'api', status: 502, durationMs: 3, upstreamMs: 2.5, upstreamError: 'unreachable' }),
  )
  publishRequest(
    req({ scheme: 'bearer', route: 'api', status: 504, durationMs: 7000, upstreamMs: 6999, upstreamError: 'timeout' }),
  )
  const store = (e: StoreEvent) => observer.store(e)
  store({ op: 'get', ok: true, durationMs: 0.2 })
  store({ op: 'get', ok: true, durationMs: 0.2 })
  store({ op: 'get', ok: false, durationMs: 1000 })
  store({ op: 'set', ok: true, durationMs: 0.3 })
  publishAudit({ kind: 'token.issued', type: 'access', jti: 'j1', subject: 'alice', clientIp: '127.0.0.1' })
  publishAudit({ kind: 'token.issued', type: 'access', jti: 'j2', subject: 'alice', clientIp: '127.0.0.1' })
  publishAudit({ kind: 'token.issued', type: 'session', jti: 'j3', subject: 'bob', clientIp: '127.0.0.1' })
  publishAudit({ kind: 'token.issued', type: 'app', jti: 'h1', subject: 'bot', clientIp: '127.0.0.1' })
  publishAudit({ kind: 'token.revoked', type: 'session', jti: 'j3', subject: 'bob', by: 'bob' })
  for (let i = 0; i < 4; i++)
    publishAudit({ kind: 'login.failed', username: 'mallory', clientIp: '10.0.0.9', reason: 'credentials' })
  publishAudit({ kind: 'login.lockout', scope: 'user', username: 'mallory', clientIp: '10.0.0.9', retryAfterSec: 900 })
  publishAudit({ kind: 'apikey.refused', keyName: 'chatbot', clientIp: '10.1.1.1', reason: 'cidr' })
  publishAudit({ kind: 'apikey.refused', keyName: 'chatbot', clientIp: '127.0.0.1', reason: 'path' })
  publishAudit({ kind: 'config.reloaded', ok: true, hash: 'cafe0002' })
  publishAudit({ kind: 'config.reloaded', ok: false, hash: null, problems: ['x: bad'] })
  healthy = false
  hash = 'cafe0002'

  const text = await metrics.render()
  assert.equal(metrics.contentType.split(';')[0], 'text/plain')
  const m = reader(text)
  assert.deepEqual(m.series('keygate_requests_total'), {
    'code=none,decision=allow,route=public,scheme=anonymous': 3,
    'code=E1000,decision=deny,route=default,scheme=anonymous': 2,
    'code=E1004,decision=deny,route=admin,scheme=apikey': 1,
    'code=none,decision=allow,route=api,scheme=bearer': 3,
  })
  assert.equal(m.typeOf('keygate_requests_total'), 'counter')
  assert.equal(m.typeOf('keygate_request_duration_seconds'), 'histogram')
  assert.equal(m.value('keygate_request_duration_seconds_count'), 9)
  assert.equal(m.value('keygate_request_duration_seconds_bucket', { le: '0.0005' }), 6, '3 × 0.3 ms and 3 × 0.1 ms')
  assert.equal(m.value('keygate_request_duration_seconds_bucket', { le: '0.005' }), 7, '+ the 3 ms one')
  assert.equal(m.value('keygate_request_duration_seconds_bucket', { le: '10' }), 9)
  assert.ok(
    Math.abs(m.value('keygate_request_duration_seconds_sum')! - 7.0342) < 1e-9,
    `sum ${m.value('keygate_request_duration_seconds_sum')}`,
  )
  assert.equal(m.value('keygate_upstream_duration_seconds_count'), 6, 'only requests that went upstream')
  assert.equal(m.value('keygate_upstream_duration_seconds_bucket', { le: '0.001' }), 3)
  assert.deepEqual(m.series('keygate_upstream_errors_total'), { 'kind=unreachable': 1, 'kind=timeout': 1 })
  assert.deepEqual(m.series('keygate_store_ops_total'), {
    'ok=true,op=get': 2,
    'ok=false,op=get': 1,
    'ok=true,op=set': 1,
  })
  assert.equal(m.value('keygate_store_healthy'), 0)
  assert.deepEqual(m.series('keygate_tokens_issued_total'), { 'type=access': 2, 'type=session': 1, 'type=app': 1 })
  assert.deepEqual(m.series('keygate_tokens_revoked_total'), { 'type=session': 1 })
  assert.equal(m.value('keygate_login_failures_total'), 4)
  assert.deepEqual(m.series('keygate_lockouts_total'), { 'scope=user': 1, 'scope=ip': 0 })
  assert.deepEqual(m.series('keygate_apikey_refusals_total'), {
    'key=chatbot,reason=cidr': 1,
    'key=chatbot,reason=path': 1,
  })
  assert.deepEqual(m.series('keygate_config_reloads_total'), { 'result=ok': 1, 'result=failed': 1 })
  assert.deepEqual(m.series('keygate_config_info'), { 'hash=cafe0002': 1 }, 'only the hash now serving')

  // Nothing bounded by user input: no user name, IP or jti ever becomes a label value.
  for (const leak of ['alice', 'bob', 'mallory', '10.0.0.9', '127.0.0.1', 'j1', 'j3', 'h1']) {
    assert.ok(!text.includes(`"${leak}"`), `label value ${leak} in the scrape`)
  }

  // close(): later events are not counted, the numbers so far still render
  metrics.close()
  publishRequest(req({}))
  publishAudit({ kind: 'login.failed', username: 'x', clientIp: '1.1.1.1', reason: 'credentials' })
  const afterClose = reader(await metrics.render())
  assert.equal(
    afterClose.value('keygate_requests_total', {
      decision: 'allow',
      code: 'none',
      scheme: 'anonymous',
      route: 'public',
    }),
    3,
  )
  assert.equal(afterClose.value('keygate_login_failures_total'), 4)
})

test("two gateways in one process: each metrics instance has its own registry and counts its observer's events; the channel taps all", async () => {
  const oa = createObserver()
  const ob = createObserver()
  const a = createMetrics({ configHash: () => 'a', storeHealthy: () => true, observer: oa })
  const b = createMetrics({ configHash: () => 'b', storeHealthy: () => true, observer: ob })
  const tapped: unknown[] = []
  const tap = (e: unknown) => tapped.push(e)
  requestChannel.subscribe(tap)
  after(() => {
    requestChannel.unsubscribe(tap)
    a.close()
    b.close()
  })
  oa.request(req({ route: 'a-one' }))
  ob.request(req({ route: 'b-one' }))
  ob.request(req({ route: 'b-one' }))
  assert.equal(tapped.length, 3)
  const ma = reader(await a.render())
  const mb = reader(await b.render())
  assert.deepEqual(ma.series('keygate_requests_total'), { 'code=none,decision=allow,route=a-one,scheme=anonymous': 1 })
  assert.deepEqual(mb.series('keygate_requests_total'), { 'code=none,decision=allow,route=b-one,scheme=anonymous': 2 })
  assert.deepEqual(ma.series('keygate_config_info'), { 'hash=a': 1 })
})

test('cluster mode: a scrape answered by one worker covers every worker', async () => {
  // node:cluster forks re-run a script file, so the scenario is a file of its own.
  const dir = await makeTempDir('metrics-cluster')
  const script = join(dir, 'cluster.mts')
  writeFileSync(
    script,
    `
    import cluster from 'node:cluster'
    import { createMetrics } from ${JSON.stringify(resolve('src/metrics/catalogue.ts'))}
    import { createClusterMetrics } from ${JSON.stringify(resolve('src/metrics/cluster.ts'))}
    import { createObserver } from ${JSON.stringify(resolve('src/observe.ts'))}
    if (cluster.isPrimary) {
      const aggregation = createClusterMetrics()
      const workers = [cluster.fork({ N: '2' }), cluster.fork({ N: '3' })]
      let ready = 0
      cluster.on('message', (_w, m) => {
        if (m === 'ready' && ++ready === workers.length) workers[1].send('render')
        if (typeof m?.scrape === 'string') {
          process.stdout.write(m.scrape)
          aggregation.close()
          for (const w of workers) w.kill()
        }
      })
    } else {
      const n = Number(process.env.N)
      const observer = createObserver()
      const metrics = createMetrics({ configHash: () => 'h1', storeHealthy: () => n === 3, cluster: true, observer })
      for (let i = 0; i < n; i++) observer.request({ decision: 'allow', code: null, scheme: 'anonymous', route: 'r', status: 200, durationMs: 1, upstreamMs: null, upstreamError: null })
      process.on('message', (m) => { if (m === 'render') metrics.render().then((scrape) => process.send({ scrape })) })
      process.send('ready')
    }
  `,
  )
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, r.stderr)
  const m = reader(r.stdout)
  assert.deepEqual(
    m.series('keygate_requests_total'),
    { 'code=none,decision=allow,route=r,scheme=anonymous': 5 },
    'summed over both workers',
  )
  assert.equal(m.value('keygate_request_duration_seconds_count'), 5)
  assert.equal(m.value('keygate_store_healthy'), 0, 'healthy only when every worker is')
  assert.deepEqual(m.series('keygate_config_info'), { 'hash=h1': 1 }, 'one config, not one per worker')
})

// ------------------------------------------------------------ a real gateway

async function closedPort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

const API_KEY = 'metrics-test-api-key-0123456789abcdef'
const PASSWORD = 'metrics test password 42'

function post(port: number, path: string, body: string, headers: Record<string, string> = {}) {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  return rawRequest(
    port,
    `POST ${path} HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  )
}

test('a scripted mix of allowed and refused requests through a gateway: each counter exactly', async () => {
  const up = await startUpstream()
  const dead = await closedPort()
  const gw = await startTestGateway({
    upstream: up.url,
    secrets: { jwt: { secret: TEST_SECRET } },
    users: [
      {
        username: 'alice',
        passwordHash: await hashPassword(PASSWORD, { N: 1024, r: 8, p: 1 }),
        uid: 7,
        name: 'Alice',
        email: 'a@example.org',
        groups: ['user'],
      },
    ],
    apiKeys: [{ name: 'chatbot', key: API_KEY, allow: { paths: ['/bot/'] } }],
    routes: [
      { name: 'public', path: '/public/', anonymous: true },
      { name: 'gone', path: '/gone/', anonymous: true, upstream: `http://127.0.0.1:${dead}` },
      { name: 'admin', path: '/admin/', require: { groups: ['sysop'] } },
    ],
    loginLimit: { perUser: 2, perIp: 100, window: '15m' },
  })
  let hash = 'h-initial'
  const metrics = createMetrics({ configHash: () => hash, storeHealthy: () => true, observer: gw.observer })
  after(() => metrics.close())

  const expect = async (p: Promise<{ status: number }>, status: number) => assert.equal((await p).status, status)
  for (let i = 0; i < 3; i++) await expect(rawGet(gw.port, `/public/page${i}`), 200)
  await expect(rawGet(gw.port, '/private'), 401) // E1000
  await expect(rawGet(gw.port, '/private', { Authorization: 'Bearer not.a.jwt' }), 401) // E1001
  await expect(rawGet(gw.port, '/bot/ask', { Authorization: `ApiKey ${API_KEY}` }), 200)
  await expect(rawGet(gw.port, '/private', { Authorization: `ApiKey ${API_KEY}` }), 403) // E1004, apikey.refused path
  await expect(rawGet(gw.port, '/gone/x'), 502) // upstream unreachable
  // an unknown user fails like a wrong password (E1026), and the second failure starts a lockout
  await expect(post(gw.port, '/api/authorize', JSON.stringify({ username: 'mallory', password: 'guess 1' })), 401)
  await expect(post(gw.port, '/api/authorize', JSON.stringify({ username: 'mallory', password: 'guess 2' })), 401)
  await expect(post(gw.port, '/api/authorize', JSON.stringify({ username: 'mallory', password: 'guess 3' })), 429)
  const login = await post(
    gw.port,
    '/api/authorize',
    JSON.stringify({ username: 'alice', password: PASSWORD, token_type: 'access' }),
  )
  assert.equal(login.status, 200, `login: ${login.body}`)
  const token = String(login.json.token)
  await expect(rawGet(gw.port, '/docs/1', { Authorization: `Bearer ${token}` }), 200)
  await expect(rawGet(gw.port, '/admin/panel', { Authorization: `Bearer ${token}` }), 403)
  hash = 'h-next'

  const m = reader(await metrics.render())
  const requests = m.series('keygate_requests_total')
  // refusals answered by an endpoint (E1026, E1031) and by the upstream (E1032) count as deny with their code
  assert.deepEqual(requests, {
    'code=none,decision=allow,route=authorize,scheme=anonymous': 1,
    'code=E1026,decision=deny,route=authorize,scheme=anonymous': 2,
    'code=E1031,decision=deny,route=authorize,scheme=anonymous': 1,
    'code=none,decision=allow,route=public,scheme=anonymous': 3,
    'code=E1000,decision=deny,route=default,scheme=anonymous': 1,
    'code=E1001,decision=deny,route=default,scheme=anonymous': 1,
    'code=none,decision=allow,route=default,scheme=apikey': 1,
    'code=E1004,decision=deny,route=default,scheme=apikey': 1,
    'code=E1032,decision=deny,route=gone,scheme=anonymous': 1,
    'code=none,decision=allow,route=default,scheme=bearer': 1,
    'code=E1004,decision=deny,route=admin,scheme=bearer': 1,
  })
  assert.equal(m.value('keygate_request_duration_seconds_count'), 14, 'one duration per request')
  assert.equal(m.value('keygate_login_failures_total'), 2)
  assert.deepEqual(m.series('keygate_lockouts_total'), { 'scope=user': 1, 'scope=ip': 0 })
  assert.deepEqual(m.series('keygate_upstream_errors_total'), { 'kind=unreachable': 1, 'kind=timeout': 0 })
  assert.deepEqual(m.series('keygate_apikey_refusals_total'), { 'key=chatbot,reason=path': 1 })
  assert.deepEqual(m.series('keygate_config_info'), { 'hash=h-next': 1 })
  assert.deepEqual(m.series('keygate_tokens_issued_total'), { 'type=access': 1 })

  assert.equal(
    m.value('keygate_upstream_duration_seconds_count'),
    5,
    'every answer the upstream gave: public ×3, the ApiKey call, the Bearer call (/gone never answered)',
  )
})

test("GET /_keygate/metrics serves the gateway's own numbers to allowed addresses only", async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    routes: [{ name: 'public', path: '/public/', anonymous: true }],
  })
  for (let i = 0; i < 2; i++) assert.equal((await rawGet(gw.port, '/public/x')).status, 200)
  assert.equal((await rawGet(gw.port, '/private')).status, 401)
  const scrape = await rawGet(gw.port, '/_keygate/metrics')
  assert.equal(scrape.status, 200, scrape.body)
  assert.match(scrape.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/, 'the Prometheus content type')
  const m = reader(scrape.body)
  assert.equal(
    m.value('keygate_requests_total', { decision: 'allow', code: 'none', scheme: 'anonymous', route: 'public' }),
    2,
  )
  assert.equal(
    m.value('keygate_requests_total', { decision: 'deny', code: 'E1000', scheme: 'anonymous', route: 'default' }),
    1,
  )
  assert.equal(m.value('keygate_store_healthy'), 1)
  assert.equal(Object.keys(m.series('keygate_config_info')).length, 1, 'one config hash')

  // a wrong method on keygate's own path is a refusal: 405 counted as deny E1004, never as allow
  const wrongMethod = await rawGet(gw.port, '/api/authorize')
  assert.equal(wrongMethod.status, 405)
  assert.equal(wrongMethod.json?.code, 'E1004')
  const after405 = reader((await rawGet(gw.port, '/_keygate/metrics')).body)
  const onAuthorize = Object.entries(after405.series('keygate_requests_total')).filter(([k]) =>
    k.includes('route=method-not-allowed'),
  )
  assert.deepEqual(onAuthorize, [['code=E1004,decision=deny,route=method-not-allowed,scheme=anonymous', 1]])

  // metrics.allow: a loopback scraper outside the list is refused
  const closed = await startTestGateway({ upstream: up.url, metrics: { allow: ['10.0.0.0/8'] } })
  const refused = await rawGet(closed.port, '/_keygate/metrics')
  assert.equal(refused.status, 403, refused.body)
  assert.equal(refused.json?.code, 'E1004')
})

test('a request the parser refuses and a refused upgrade are logged and counted like any other request', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({ upstream: up.url })
  const malformed = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: gw.test\r\nNo colon here\r\n\r\n')
  assert.equal(malformed.status, 400)
  assert.equal(malformed.json?.code, 'E1030')
  const upgrade = await rawRequest(
    gw.port,
    'GET /private HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  )
  assert.equal(upgrade.status, 401)
  assert.equal(up.seen.length, 0, 'nothing reached the upstream')

  const m = reader((await rawGet(gw.port, '/_keygate/metrics')).body)
  assert.equal(
    m.value('keygate_requests_total', { decision: 'deny', code: 'E1030', scheme: 'anonymous', route: 'none' }),
    1,
  )
  assert.equal(
    m.value('keygate_requests_total', { decision: 'deny', code: 'E1000', scheme: 'anonymous', route: 'default' }),
    1,
  )
  const lines = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>)
  const refused = lines.filter((l) => l.decision === 'deny')
  assert.deepEqual(
    refused.map((l) => [
      l.status,
      l.code,
      l.path,
      l.req_id === malformed.headers['x-request-id'] || l.req_id === upgrade.headers['x-request-id'],
    ]),
    [
      [400, 'E1030', '-', true],
      [401, 'E1000', '/private', true],
    ],
  )
})
