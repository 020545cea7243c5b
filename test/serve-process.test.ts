import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'

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
