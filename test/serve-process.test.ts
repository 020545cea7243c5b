import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { Agent, request } from 'node:http'
import { startUpstream } from './helpers.js'

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
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (out += c))
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

for (const [name, extra] of [
  ['a Redis store', [REDIS_STORE]],
  ['workers: 2', ['workers: 2', REDIS_STORE, CLUSTER_SECRETS]],
] as const) {
  test(`a port in use with ${name}: exits 1 with one line naming the address`, async () => {
    const held = await holdPort()
    after(() => held.server.close())
    const { child, output } = serve(
      tempConfig([`listen: 127.0.0.1:${held.port}`, 'upstream: demo', 'defaultPolicy: anonymous', ...extra].join('\n')),
    )
    const code = await exitWithin(child, 8000)
    assert.equal(code, 1, output())
    const lines = output()
      .split('\n')
      .filter((l) => l.includes('EADDRINUSE'))
    assert.equal(lines.length, 1, output())
    assert.match(lines[0]!, new RegExp(`127\\.0\\.0\\.1:${held.port}`))
    assert.doesNotMatch(output(), /keygate listening/)
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

test('SIGTERM under keep-alive load (2 s upstream) with a WebSocket tunnel open: no request sent before it fails; exit at the grace', async () => {
  const up = await startUpstream((_req, res) => {
    setTimeout(() => res.end('slow but whole'), 2000)
  })
  up.server.on('upgrade', (_req, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    socket.on('error', () => {})
  })
  const { child, output } = serve(
    tempConfig(
      [
        'listen: 127.0.0.1:0',
        `upstream: ${up.url}`,
        'defaultPolicy: anonymous',
        `limits: {shutdownGrace: ${GRACE_MS}ms}`,
      ].join('\n'),
    ),
  )
  const port = await listening(output)
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
  const { child, output } = serve(
    tempConfig(
      [
        'listen: 127.0.0.1:0',
        `upstream: ${up.url}`,
        'defaultPolicy: anonymous',
        `limits: {shutdownGrace: ${GRACE_MS}ms}`,
      ].join('\n'),
    ),
  )
  const port = await listening(output)
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
