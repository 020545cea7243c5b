import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { Agent, request } from 'node:http'
import { rawGet, startUpstream } from './helpers.js'
import { startKeygate } from './support/keygate-process.js'

// `keygate serve` as a real child process: how it starts, fails to start, drains and restarts workers.

function tempConfig(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kg-serve-')), 'gateway.yaml')
  writeFileSync(file, text)
  return file
}

async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as { port: number }).port, server }
}

function serve(file: string): { child: ChildProcess; output: () => string } {
  // The IPC channel: if this test process is killed, keygate sees it close and stops.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout!.on('data', (c) => (out += c))
  child.stderr!.on('data', (c) => (out += c))
  return { child, output: () => out }
}

async function exitWithin(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(timer)
  assert.notEqual(signal, 'SIGKILL', `still running after ${ms} ms`)
  return code as number | null
}

const REDIS_STORE = `store: {redis: "redis://127.0.0.1:6379", prefix: "kgtest:serve:${process.pid}:"}`
const CLUSTER_SECRETS = 'secrets: {jwt: {secret: "serve-test-jwt-secret-0123456789abcdef"}}'

// spawnSync: ps exits 1 when the process has no children
const workerPids = (primary: number): number[] =>
  spawnSync('ps', ['-o', 'pid=', '--ppid', String(primary)], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => Number(l.trim()))
    .filter((pid) => pid > 0)

/** Whether `pid` is still a keygate running `file` (a pid taken again by another program is not). */
function isKeygateAlive(pid: number, file: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(file)
  } catch {
    return false
  }
}

/** Every worker `primary` forks while `running` holds, seen every 25 ms. */
function watchWorkers(primary: number, running: () => boolean): Promise<Set<number>> {
  const seen = new Set<number>()
  return (async () => {
    while (running()) {
      for (const pid of workerPids(primary)) seen.add(pid)
      await new Promise((r) => setTimeout(r, 25))
    }
    return seen
  })()
}

for (const [name, extra] of [
  ['a Redis store', [REDIS_STORE]],
  ['workers: 2', ['workers: 2', REDIS_STORE, CLUSTER_SECRETS]],
] as const) {
  test(`a port in use with ${name}: exits 1 with one line naming the address, no worker restarted or left`, async () => {
    const held = await holdPort()
    after(() => held.server.close())
    const file = tempConfig(
      [`listen: 127.0.0.1:${held.port}`, 'upstream: demo', 'defaultPolicy: anonymous', ...extra].join('\n'),
    )
    const { child, output } = serve(file)
    const workers = watchWorkers(child.pid!, () => child.exitCode === null && child.signalCode === null)
    const code = await exitWithin(child, 20_000)
    assert.equal(code, 1, output())
    const lines = output()
      .split('\n')
      .filter((l) => l.includes('EADDRINUSE'))
    assert.equal(lines.length, 1, output())
    assert.match(lines[0]!, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${held.port}: address already in use`))
    assert.doesNotMatch(output(), /keygate listening/)
    assert.doesNotMatch(output(), /worker died/)
    const forked = await workers
    if (extra.includes('workers: 2')) assert.ok(forked.size >= 1 && forked.size <= 2, `${forked.size} workers forked`)
    assert.deepEqual(
      [...forked].filter((pid) => isKeygateAlive(pid, file)),
      [],
      'no worker outlives its primary',
    )
    // the start-up warning names its setting (a field called `key` would be redacted as a secret)
    assert.match(output(), /"setting":"secrets\.salt"/)
  })
}

for (const workers of [1, 2]) {
  test(`workers: ${workers}, started with an IPC channel by a parent that is then killed: keygate stops`, async () => {
    const { file } = await workersConfig('anonymous', workers)
    // The parent hands its stdout to keygate, so that this test still reads it after the parent is gone.
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `const c = require('node:child_process').spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', process.argv[1]], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }); console.log('primary ' + c.pid)`,
        file,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const pids: number[] = []
    after(() => {
      parent.kill('SIGKILL')
      for (const pid of pids) if (isKeygateAlive(pid, file)) process.kill(pid, 'SIGKILL')
    })
    let out = ''
    parent.stdout.on('data', (c) => (out += c))
    parent.stderr.on('data', (c) => (out += c))
    await listening(() => out, workers)
    const primary = Number(/primary (\d+)/.exec(out)?.[1])
    pids.push(primary, ...workerPids(primary))
    assert.equal(pids.length, 1 + (workers > 1 ? workers : 0), out)
    parent.kill('SIGKILL')
    for (let i = 0; i < 150 && pids.some((pid) => isKeygateAlive(pid, file)); i++)
      await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(
      pids.filter((pid) => isKeygateAlive(pid, file)),
      [],
      `still running 15 s after their parent was killed: ${out}`,
    )
    assert.match(out, /"parent":"gone"/)
  })
}

/** The port `serve` printed in its "keygate listening" line. */
async function listening(output: () => string, workers = 1): Promise<number> {
  for (let i = 0; i < 150 && (output().match(/keygate listening/g) ?? []).length < workers; i++)
    await new Promise((r) => setTimeout(r, 100))
  const port = Number(/"listen":"[^"]*:(\d+)"/.exec(output())?.[1])
  assert.ok(port > 0, `gateway did not start: ${output()}`)
  return port
}

interface Sent {
  readonly at: number
  status: number | null
  error: string | null
  connection: string | undefined
}

/**
 * `clients` keep-alive clients, each sending one request after the other until one fails (the
 * gateway stopped accepting) or `untilMs` passes.
 */
function keepAliveLoad(port: number, clients: number, untilMs: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const sent: Sent[] = []
  const stopAt = performance.now() + untilMs
  const one = () =>
    new Promise<Sent>((resolve) => {
      const s: Sent = { at: performance.now(), status: null, error: null, connection: undefined }
      sent.push(s)
      const req = request({ host: '127.0.0.1', port, path: '/slow', agent }, (res) => {
        s.status = res.statusCode ?? null
        s.connection = res.headers.connection
        res.on('data', () => {})
        res.on('end', () => resolve(s))
        res.on('error', (err) => {
          s.error = err.message
          resolve(s)
        })
      })
      req.on('error', (err) => {
        s.error = err.message
        resolve(s)
      })
      req.end()
    })
  const loops = Array.from({ length: clients }, async () => {
    while (performance.now() < stopAt) if ((await one()).error) return
  })
  return {
    sent,
    done: Promise.all(loops).then(() => agent.destroy()),
  }
}

async function openTunnel(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.write(
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  )
  const [first] = (await once(socket, 'data')) as [Buffer]
  assert.match(first.toString(), /^HTTP\/1\.1 101/)
  return socket
}

const GRACE_MS = 3000
/** In front of `upstream`, draining for GRACE_MS on SIGTERM. */
const drainingConfig = (upstream: string) =>
  tempConfig(
    [
      'listen: 127.0.0.1:0',
      `upstream: ${upstream}`,
      'defaultPolicy: anonymous',
      `limits: {shutdownGrace: ${GRACE_MS}ms}`,
    ].join('\n'),
  )

test('SIGTERM under keep-alive load (2 s upstream) with a WebSocket tunnel open: no request sent before it fails; exit at the grace', async () => {
  const up = await startUpstream((_req, res) => {
    setTimeout(() => res.end('slow but whole'), 2000)
  })
  up.server.on('upgrade', (_req, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    socket.on('error', () => {})
  })
  const { child, port, output } = await startKeygate(drainingConfig(up.url))
  const tunnel = await openTunnel(port)
  const tunnelClosed = once(tunnel, 'close')
  const load = keepAliveLoad(port, 16, 8000)
  await new Promise((r) => setTimeout(r, 1000))
  const signalledAt = performance.now()
  child.kill('SIGTERM')
  const code = await exitWithin(child, GRACE_MS + 1000)
  const exitMs = performance.now() - signalledAt
  assert.equal(code, 0, output())
  assert.ok(exitMs < GRACE_MS + 1000, `exited ${Math.round(exitMs)} ms after SIGTERM`)
  await tunnelClosed
  await load.done
  const before = load.sent.filter((s) => s.at < signalledAt)
  assert.ok(before.length >= 16, `${before.length} requests before SIGTERM`)
  assert.deepEqual(
    before.filter((s) => s.error !== null || s.status !== 200),
    [],
    'every request sent before SIGTERM was answered',
  )
  assert.ok(
    before.every((s) => s.connection === 'close'),
    'answers that were running at SIGTERM close their connection',
  )
  assert.match(output(), /draining connections/)
  assert.match(output(), /"cut":1[,}].*shutdown grace over/)
})

test('SIGTERM under keep-alive load on a fast upstream: idle connections close without failing a request sent before', async () => {
  const up = await startUpstream((_req, res) => res.end('fast'))
  const { child, port, output } = await startKeygate(drainingConfig(up.url))
  const load = keepAliveLoad(port, 16, 6000)
  await new Promise((r) => setTimeout(r, 800))
  const signalledAt = performance.now()
  child.kill('SIGTERM')
  const code = await exitWithin(child, GRACE_MS + 1000)
  assert.equal(code, 0, output())
  await load.done
  const before = load.sent.filter((s) => s.at < signalledAt)
  assert.ok(before.length > 100, `${before.length} requests before SIGTERM`)
  assert.deepEqual(
    before.filter((s) => s.error !== null || s.status !== 200),
    [],
    'every request sent before SIGTERM was answered',
  )
  assert.match(output(), /connections drained/)
})

async function workersConfig(policy: string, workers = 2): Promise<{ file: string; port: number; text: string }> {
  const held = await holdPort()
  await new Promise((r) => held.server.close(r))
  const text = [
    `listen: 127.0.0.1:${held.port}`,
    'upstream: demo',
    `workers: ${workers}`,
    REDIS_STORE,
    CLUSTER_SECRETS,
    `defaultPolicy: ${policy}`,
  ].join('\n')
  return { file: tempConfig(text), port: held.port, text }
}

const listenCount = (output: () => string) => (output().match(/keygate listening/g) ?? []).length

test('workers: a worker that keeps dying is restarted later each time; with a broken file the new one runs the primary config', async () => {
  const { file, port } = await workersConfig('anonymous')
  const { child, output } = serve(file)
  await listening(output, 2)
  writeFileSync(file, 'listen: [this is not a config')
  const [victim, sibling] = workerPids(child.pid!)
  assert.ok(victim && sibling, output())
  // Kill the first worker and every one started in its place, for 3 s.
  const killed = new Set<number>()
  const until = performance.now() + 3000
  while (performance.now() < until) {
    for (const pid of workerPids(child.pid!))
      if (pid !== sibling && !killed.has(pid)) {
        killed.add(pid)
        process.kill(pid, 'SIGKILL')
      }
    await new Promise((r) => setTimeout(r, 20))
  }
  // 250, 500, 1000 ms: three restarts fit in 3 s (without backoff, dozens did)
  assert.ok(killed.size >= 3 && killed.size <= 5, `${killed.size} workers started and killed in 3 s`)
  const delays = [...output().matchAll(/"restart_in_ms":(\d+)/g)].map((m) => Number(m[1]))
  assert.deepEqual(delays.slice(0, 3), [250, 500, 1000])
  // the next one is left alone: it starts although the file is broken
  for (let i = 0; i < 100 && listenCount(output) < 3; i++) await new Promise((r) => setTimeout(r, 100))
  assert.equal(listenCount(output), 3, output())
  assert.doesNotMatch(output(), /invalid configuration/)
  for (let i = 0; i < 10; i++) assert.equal((await rawGet(port, '/x')).status, 200)
  child.kill('SIGTERM')
  assert.equal(await exitWithin(child, 5000), 0)
})

test('workers: a worker restarted after the file was edited without SIGHUP runs the same config as its siblings', async () => {
  const { file, port, text } = await workersConfig('deny')
  const { child, output } = serve(file)
  await listening(output, 2)
  assert.equal((await rawGet(port, '/x')).status, 403)
  writeFileSync(file, text.replace('defaultPolicy: deny', 'defaultPolicy: anonymous'))
  process.kill(workerPids(child.pid!)[0]!, 'SIGKILL')
  for (let i = 0; i < 100 && listenCount(output) < 3; i++) await new Promise((r) => setTimeout(r, 100))
  assert.equal(listenCount(output), 3, output())
  // a new connection per request: the primary hands them to the workers in turn
  const statuses = new Set<number>()
  for (let i = 0; i < 10; i++) statuses.add((await rawGet(port, '/x')).status)
  assert.deepEqual([...statuses], [403])
  // SIGHUP: the primary reads the file and every worker takes it
  child.kill('SIGHUP')
  for (let i = 0; i < 50 && (output().match(/config reloaded/g) ?? []).length < 2; i++)
    await new Promise((r) => setTimeout(r, 100))
  statuses.clear()
  for (let i = 0; i < 10; i++) statuses.add((await rawGet(port, '/x')).status)
  assert.deepEqual([...statuses], [200])
  child.kill('SIGTERM')
  assert.equal(await exitWithin(child, 5000), 0)
})
