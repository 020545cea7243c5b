import { after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

// The real command line, `keygate …`, as a child process: the source through tsx, as `npm start` would run the build.

const KEYGATE = ['--import', 'tsx', 'src/cli.ts'] as const

export interface KeygateRun {
  readonly code: number | null
  readonly out: string
  readonly err: string
  /** from spawn to exit, tsx start-up included */
  readonly ms: number
}

/** `keygate <args>`, run to its end. */
export async function runKeygate(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<KeygateRun> {
  const started = Date.now()
  const child = spawn(process.execPath, [...KEYGATE, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let err = ''
  child.stdout.on('data', (c) => {
    out += c
  })
  child.stderr.on('data', (c) => {
    err += c
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, out, err, ms: Date.now() - started }
}

export interface KeygateProcess {
  readonly child: ChildProcess
  /** the port of the first listener it announced */
  readonly port: number
  /** everything it printed so far, stdout and stderr */
  readonly output: () => string
}

/**
 * `keygate serve --config <file>`, once `listeners` processes (1, or each worker) say they listen.
 * Stopped after the test file: SIGTERM, then SIGKILL after 3 s.
 */
export async function startKeygate(
  configFile: string,
  opts: { env?: NodeJS.ProcessEnv; listeners?: number; timeoutMs?: number } = {},
): Promise<KeygateProcess> {
  const listeners = opts.listeners ?? 1
  // The IPC channel: if the test process is killed, keygate sees it close and stops.
  const child = spawn(process.execPath, [...KEYGATE, 'serve', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: opts.env ?? process.env,
  })
  after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000)
    await exited
    clearTimeout(timer)
  })
  let out = ''
  const listening = () => (out.match(/keygate listening/g) ?? []).length >= listeners
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, opts.timeoutMs ?? 15_000)
    function done() {
      clearTimeout(timer)
      child.off('exit', done)
      resolve()
    }
    const keep = (c: Buffer) => {
      out += c.toString()
      if (listening()) done()
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    child.once('exit', done)
  })
  const port = Number(/"listen":"[^"]*:(\d+)"/.exec(out)?.[1])
  assert.ok(listening() && port > 0, `keygate did not start (${listeners} listening): ${out}`)
  return { child, port, output: () => out }
}
