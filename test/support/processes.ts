import { after } from 'node:test'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A port that was free a moment ago, for programs that cannot be told to take port 0. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** A private temp dir, removed after the test file. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `keygate-${prefix}-`))
  after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Whether a command is on PATH (or is an executable path). */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$1" >/dev/null 2>&1`, 'sh', cmd]).status === 0
}

/**
 * What to do when a tool the test needs is missing: skip on a developer machine, fail in CI
 * (.ci/run installs it, so a missing tool there is a broken install step, not a reason to skip).
 */
export function toolGate(tools: readonly string[], install: string): { skip: string | false } {
  const missing = tools.filter((t) => !hasCommand(t))
  if (missing.length === 0) return { skip: false }
  const reason = `${missing.join(', ')} not installed (${install})`
  if (process.env.CI) throw new Error(`CI must run this test: ${reason}`)
  return { skip: reason }
}

export interface RunningProcess {
  readonly child: ChildProcess
  /** everything it printed so far (bounded), for failure messages */
  output(): string
  stop(): Promise<void>
}

/**
 * Starts a program whose output is kept for diagnostics; it is stopped after the test file.
 * It runs in a process group of its own, and the whole group is stopped: `php -S` with
 * PHP_CLI_SERVER_WORKERS forks workers that outlive their parent and keep its pipes open.
 */
export function startProcess(
  cmd: string,
  args: readonly string[],
  opts: {
    env?: NodeJS.ProcessEnv
    cwd?: string
    /** for keygate: it stops when this IPC channel closes, so it does not outlive a killed test process */
    ipc?: boolean
  } = {},
): RunningProcess {
  const child = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-20_000)
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  child.on('error', (err) => {
    out += `\nspawn error: ${err.message}`
  })
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      /* the group is gone already */
    }
  }
  const stop = async () => {
    if (child.pid === undefined) return
    const closed =
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : once(child, 'exit').then(() => undefined)
    signalGroup('SIGTERM')
    const timer = setTimeout(() => signalGroup('SIGKILL'), 3_000)
    await closed
    clearTimeout(timer)
    // workers of the group may outlive the leader for a moment: make sure none is left
    await new Promise((r) => setTimeout(r, 100))
    signalGroup('SIGKILL')
    child.stdout!.destroy()
    child.stderr!.destroy()
  }
  after(stop)
  return { child, output: () => out, stop }
}

/** Waits until something accepts TCP connections on host:port, or fails with what the process said. */
export async function waitForPort(
  port: number,
  proc: RunningProcess | null,
  timeoutMs = 15_000,
  host = '127.0.0.1',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(
        `process exited (${proc.child.exitCode ?? proc.child.signalCode}) before listening on ${port}:\n${proc.output()}`,
      )
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host })
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline)
      throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms:\n${proc?.output() ?? ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Fills ${NAME} placeholders the way envsubst does for a given list; an unfilled one is an error. */
export function renderTemplate(text: string, values: Record<string, string>): string {
  const out = text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (m, name: string) => values[name] ?? m)
  const left = out.match(/\$\{[A-Z_][A-Z0-9_]*\}/g)
  if (left) throw new Error(`template placeholders left unfilled: ${[...new Set(left)].join(', ')}`)
  return out
}
