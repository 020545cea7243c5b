import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** Who a process is: the system under test, or the load side (wrk, upstream, Redis), or unpinned. */
export type CpuRole = 'sut' | 'load' | 'any'

export interface Pinning {
  readonly enabled: boolean
  readonly sutCpu: number | null
  readonly loadCpu: number | null
  /** printed once and written to latest.json: what was used, or why not */
  readonly description: string
}

/** "0-1,4" → [0, 1, 4] */
function parseCpuList(list: string): number[] {
  const cpus: number[] = []
  for (const part of list.trim().split(',')) {
    const [from, to] = part.split('-').map(Number)
    if (from === undefined || Number.isNaN(from)) continue
    for (let c = from; c <= (to ?? from); c++) cpus.push(c)
  }
  return cpus
}

/**
 * CPU 0 for the system under test and CPU 1 for the load side, as in PERF-BASELINE.md, when
 * taskset really works here (containers may restrict the cpuset or forbid sched_setaffinity).
 * If the allowed set has two CPUs but not 0 and 1 (a cpuset like 2-3), the first two are used.
 */
export function detectPinning(env: NodeJS.ProcessEnv): Pinning {
  const off = (why: string): Pinning => ({
    enabled: false,
    sutCpu: null,
    loadCpu: null,
    description: `no CPU pinning (${why}): the gateway and wrk share all CPUs, so ratios are less stable`,
  })
  if (env.BENCH_PIN === '0') return off('BENCH_PIN=0')
  let allowed: number[]
  try {
    allowed = parseCpuList(readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.+)$/m)?.[1] ?? '')
  } catch {
    return off('cannot read /proc/self/status')
  }
  if (allowed.length < 2) return off(`only ${allowed.length} CPU allowed to this process`)
  const [sut, load] = allowed.includes(0) && allowed.includes(1) ? [0, 1] : [allowed[0]!, allowed[1]!]
  for (const cpu of [sut, load]) {
    const r = spawnSync('taskset', ['-c', String(cpu), 'true'], { encoding: 'utf8' })
    if (r.error) return off(`taskset not available: ${r.error.message}`)
    if (r.status !== 0) return off(`taskset -c ${cpu} failed: ${r.stderr.trim()}`)
  }
  return {
    enabled: true,
    sutCpu: sut,
    loadCpu: load,
    description: `taskset: system under test on CPU ${sut}; wrk and the upstream on CPU ${load}`,
  }
}

/** The command line that runs `cmd` on the role's CPU (taskset execs, so the pid stays the same). */
export function pinned(pinning: Pinning, role: CpuRole, cmd: string, args: readonly string[]): [string, string[]] {
  const cpu = role === 'sut' ? pinning.sutCpu : role === 'load' ? pinning.loadCpu : null
  if (!pinning.enabled || cpu === null) return [cmd, [...args]]
  return ['taskset', ['-c', String(cpu), cmd, ...args]]
}

export interface Proc {
  readonly name: string
  readonly pid: number
  /** performance.now() at spawn: profile.ts maps the measured window onto the CPU profile with it */
  readonly startedAt: number
  readonly logFile: string | null
  readonly exited: Promise<void>
  isRunning(): boolean
  /** the last lines of the process's output, for an error message */
  logTail(lines?: number): string
}

export interface StartSpec {
  readonly name: string
  readonly cmd: string
  readonly args: readonly string[]
  readonly role: CpuRole
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** stdout + stderr go to this file (never through a pipe to us: that would cost CPU on our side) */
  readonly logFile?: string
  /** for keygate: it stops when this IPC channel closes, so it does not outlive a bench that was killed */
  readonly ipc?: boolean
}

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface ProcessSet {
  start(spec: StartSpec): Proc
  /** a short-lived command with piped output (wrk, hash-password, check-config) */
  run(spec: Omit<StartSpec, 'logFile'> & { input?: string; timeoutMs: number }): Promise<RunResult>
  stop(proc: Proc, graceMs?: number): Promise<void>
  stopAll(): Promise<void>
  /** last resort from process.on('exit'): synchronous SIGKILL of every group still alive */
  killAllNow(): void
}

const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    /* the group is gone already */
  }
}

/**
 * Every process the bench starts goes through here. Each one is the leader of its own process
 * group (detached), so nginx workers and cluster workers are stopped with their parent, and a
 * Ctrl-C in the terminal reaches only us: we then stop everything in order.
 */
export function createProcessSet(pinning: Pinning): ProcessSet {
  const live = new Set<Proc>()
  // After stopAll (the end, an error or Ctrl-C) a case still unwinding must not start anything new.
  let closing = false
  const refuseWhenClosing = (name: string) => {
    if (closing) throw new Error(`not starting ${name}: the bench is stopping`)
  }

  function start(spec: StartSpec): Proc {
    refuseWhenClosing(spec.name)
    const [cmd, args] = pinned(pinning, spec.role, spec.cmd, spec.args)
    const out = spec.logFile ? openSync(spec.logFile, 'a') : 'ignore'
    const child = spawn(cmd, args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['ignore', out, out, ...(spec.ipc ? ['ipc' as const] : [])],
    })
    if (typeof out === 'number') closeSync(out) // the child holds its own descriptor
    if (child.pid === undefined) throw new Error(`cannot start ${spec.name} (${cmd})`)
    let running = true
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        running = false
        resolve()
      })
      child.once('error', () => {
        running = false
        resolve()
      })
    })
    const proc: Proc = {
      name: spec.name,
      pid: child.pid,
      startedAt: performance.now(),
      logFile: spec.logFile ?? null,
      exited,
      isRunning: () => running,
      logTail: (lines = 8) => (spec.logFile && existsSync(spec.logFile) ? tailOf(spec.logFile, lines) : ''),
    }
    live.add(proc)
    void exited.then(() => live.delete(proc))
    return proc
  }

  async function run(spec: Omit<StartSpec, 'logFile'> & { input?: string; timeoutMs: number }): Promise<RunResult> {
    refuseWhenClosing(spec.name)
    const [cmd, args] = pinned(pinning, spec.role, spec.cmd, spec.args)
    const child = spawn(cmd, args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => stdout.push(b))
    child.stderr.on('data', (b: Buffer) => stderr.push(b))
    child.stdin.on('error', () => {
      /* the command may exit before reading stdin */
    })
    child.stdin.end(spec.input ?? '')
    const pid = child.pid
    const entry: Proc | null =
      pid === undefined
        ? null
        : {
            name: spec.name,
            pid,
            startedAt: performance.now(),
            logFile: null,
            exited: Promise.resolve(),
            isRunning: () => child.exitCode === null && child.signalCode === null,
            logTail: () => '',
          }
    if (entry) live.add(entry)
    const timer = setTimeout(() => {
      if (pid !== undefined) signalGroup(pid, 'SIGKILL')
    }, spec.timeoutMs)
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject)
        child.once('close', (c) => resolve(c))
      })
      return { code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') }
    } finally {
      clearTimeout(timer)
      if (entry) live.delete(entry)
    }
  }

  async function stop(proc: Proc, graceMs = 3_000): Promise<void> {
    if (proc.isRunning()) {
      signalGroup(proc.pid, 'SIGTERM')
      await Promise.race([proc.exited, sleep(graceMs)])
    }
    // Also when the leader is gone: cluster workers or nginx workers may outlive it.
    signalGroup(proc.pid, 'SIGKILL')
    await Promise.race([proc.exited, sleep(1_000)])
    live.delete(proc)
  }

  return {
    start,
    run,
    stop,
    stopAll: async () => {
      closing = true
      await Promise.all([...live].map((p) => stop(p)))
    },
    killAllNow: () => {
      for (const p of live) signalGroup(p.pid, 'SIGKILL')
    },
  }
}

function tailOf(file: string, lines: number): string {
  const text = readFileSync(file, 'utf8')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

// ---- /proc sampling: peak RSS and CPU time of a process and everything it forked ----

function childrenOf(pid: number): number[] {
  const out: number[] = []
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (list) out.push(...list.split(/\s+/).map(Number))
    }
  } catch {
    /* exited, or /proc has no children files (old kernels) */
  }
  return out
}

/** pid and all its descendants (nginx workers, cluster workers) */
export function processTree(pid: number): number[] {
  const seen: number[] = []
  const queue = [pid]
  while (queue.length) {
    const p = queue.shift()!
    if (seen.includes(p)) continue
    seen.push(p)
    queue.push(...childrenOf(p))
  }
  return seen.filter((p) => existsSync(`/proc/${p}`))
}

/** VmHWM (peak resident set) summed over the given processes, in KiB */
export function peakRssKiB(pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s*(\d+)\s*kB/m)?.[1] ?? 0)
    } catch {
      /* exited */
    }
  }
  return sum
}

/** utime + stime per process, in clock ticks */
export function cpuTicks(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>()
  for (const pid of pids) {
    try {
      // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(pid, Number(fields[11]) + Number(fields[12])) // fields 14 and 15 of stat(5)
    } catch {
      /* exited */
    }
  }
  return out
}

/** CPU seconds spent between two samples, by processes present in the second one */
/** CPU ticks of this process's children that have exited and been waited for (cutime + cstime): wrk's, after a run. */
export function reapedChildrenTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[13]) + Number(fields[14]) // fields 16 and 17 of stat(5)
}

export function cpuSecondsBetween(
  before: Map<number, number>,
  after: Map<number, number>,
  ticksPerSecond: number,
): number {
  let ticks = 0
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0)
  return ticks / ticksPerSecond
}

export function clockTicksPerSecond(): number {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(r.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
}

/** `cmd` on PATH, or in the sbin directories a non-root PATH often lacks (Debian's nginx) */
export function findExecutable(cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin']
  for (const dir of dirs) {
    if (!dir) continue
    const full = `${dir}/${cmd}`
    try {
      if (statSync(full).isFile()) return full
    } catch {
      /* not here */
    }
  }
  return null
}
