import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { freePort, startRedis } from './support/redis-server.js'
import { captureLogs, parseRawResponse, startUpstream } from './helpers.js'
import { startGateway } from '../src/server.js'

// A reload builds a new snapshot and retires the old one: nothing of the old one may stay
// reachable (store subscriptions, caches, upstream pools), or every SIGHUP leaks memory.
// The measurement runs in a child process of its own with --expose-gc, so that the heap it
// measures holds one gateway and nothing of the test runner's.

const workDir = mkdtempSync(join(tmpdir(), 'keygate-reload-'))
const children: ChildProcess[] = []
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(workDir, { recursive: true, force: true })
})

const RELOADS = 200
const MAX_GROWTH_BYTES = 1024 * 1024

const SCENARIO = `
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { startGateway } from ${JSON.stringify(resolve('src/server.ts'))}
import { createLogger } from ${JSON.stringify(resolve('src/log.ts'))}

const upstream = createServer((req, res) => res.end('ok'))
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
const file = process.env.CONFIG_FILE
const store = process.env.REDIS_URL ? \`store: {redis: "\${process.env.REDIS_URL}", prefix: "reload:\${process.pid}:"}\\n\` : ''
writeFileSync(file, [
  'listen: 127.0.0.1:0',
  \`upstream: http://127.0.0.1:\${upstream.address().port}\`,
  'defaultPolicy: anonymous',
  'secrets: {jwt: {secret: "reload-test-jwt-secret-0123456789abcdef"}}',
  store,
].join('\\n'))
const gateway = await startGateway({ configFile: file, logger: createLogger('silent') })

async function cycle() {
  if (!(await gateway.reload())) throw new Error('reload refused')
  // a request through the new snapshot: its upstream pool and caches are used, not just built
  const res = await fetch(gateway.url + '/page')
  if (res.status !== 200) throw new Error('status ' + res.status)
  await res.text()
}
async function heap() {
  // let retired snapshots finish closing, then collect until the number settles
  await new Promise((r) => setTimeout(r, 200))
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
  }
  return process.memoryUsage().heapUsed
}

for (let i = 0; i < 50; i++) await cycle() // warm up: JIT and inline caches settle over the first reloads
const before = await heap()
for (let i = 0; i < ${RELOADS}; i++) await cycle()
const afterReloads = await heap()
process.stdout.write(JSON.stringify({ before, after: afterReloads }))
await gateway.close()
upstream.close()
`

async function heapGrowth(kind: string, env: Record<string, string>): Promise<{ before: number; after: number }> {
  const script = join(workDir, `reloads-${kind}.mts`)
  writeFileSync(script, SCENARIO)
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
    env: { ...process.env, CONFIG_FILE: join(workDir, `gateway-${kind}.yaml`), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (err += c))
  const code = await new Promise<number | null>((done) => child.on('exit', done))
  assert.equal(code, 0, err)
  return JSON.parse(out) as { before: number; after: number }
}

for (const kind of ['memory', 'redis'] as const) {
  test(`${kind} store: ${RELOADS} reloads leave the heap within 1 MB of where it was`, async () => {
    const env: Record<string, string> = {}
    if (kind === 'redis') {
      const port = await freePort()
      await startRedis(port, [], workDir, children)
      env.REDIS_URL = `redis://127.0.0.1:${port}`
    }
    const { before, after } = await heapGrowth(kind, env)
    const growth = after - before
    console.log(`# ${kind}: heap ${before} → ${after} bytes after ${RELOADS} reloads (${growth} bytes)`)
    assert.ok(growth < MAX_GROWTH_BYTES, `heap grew ${growth} bytes over ${RELOADS} reloads`)
  })
}

test('a request decided across a reload is still forwarded, through the pool of the config it started with', async () => {
  const up = await startUpstream()
  const key = 'reload-test-api-key-0123456789abcdef'
  const file = join(workDir, 'in-flight.yaml')
  const config = (policy: string) =>
    [
      'listen: 127.0.0.1:0',
      `upstream: ${up.url}`,
      `defaultPolicy: ${policy}`,
      'secrets: {jwt: {secret: "reload-test-jwt-secret-0123456789abcdef"}}',
      `apiKeys: [{name: bot, key: "${key}", allow: {actionModules: [opensearch]}}]`,
    ].join('\n')
  writeFileSync(file, config('authenticated'))
  const { logger } = captureLogs()
  const gw = await startGateway({ configFile: file, logger, listen: { host: '127.0.0.1', port: 0 } })
  after(() => gw.close())

  // A module-limited key's POST to the Action API is decided on its body: the decision waits
  // for the body, and the reload happens while it waits.
  const body = 'action=opensearch&search=x'
  const socket = connect({ port: gw.port, host: '127.0.0.1' })
  await once(socket, 'connect')
  socket.write(
    `POST /api.php HTTP/1.1\r\nhost: x\r\nauthorization: ApiKey ${key}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.slice(0, 5)}`,
  )
  await new Promise((r) => setTimeout(r, 100))
  writeFileSync(file, config('anonymous'))
  assert.equal(await gw.reload(), true)
  await new Promise((r) => setTimeout(r, 100))
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.write(body.slice(5))
  await once(socket, 'close')
  const res = parseRawResponse(Buffer.concat(chunks).toString('latin1'))
  assert.equal(res.status, 200, res.body)
  assert.equal(up.seen.at(-1)?.body.toString(), body, 'the upstream got the whole body')
})
