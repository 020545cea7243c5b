import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { ProcessSet } from './procs.js'

export interface WrkErrors {
  readonly connect: number
  readonly read: number
  readonly write: number
  /** wrk counts every response with status ≥ 400 here (3xx would pass; the probe before each case wants 2xx) */
  readonly status: number
  readonly timeout: number
  readonly total: number
}

export interface WrkResult {
  readonly requests: number
  readonly durationS: number
  readonly rps: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
  readonly meanMs: number
  readonly errors: WrkErrors
}

export interface WrkLoad {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly seconds: number
  readonly connections: number
  readonly threads: number
  /** paced: each connection waits this long after an answer (wrk-report.lua's delay()); none: as fast as it can */
  readonly delayMs?: number
}

/** wrk's version line, or null when it is not installed */
export function wrkVersion(): string | null {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' }) // prints its banner and exits 1
  if (r.error) return null
  return `${r.stdout}${r.stderr}`.match(/wrk (\S+)/)?.[1] ?? 'wrk'
}

interface DoneLine {
  requests: number
  duration_us: number
  connect: number
  read: number
  write: number
  status: number
  timeout: number
  p50_us: number
  p90_us: number
  p99_us: number
  p999_us: number
  max_us: number
  mean_us: number
}

/** One wrk run on the load CPU; the numbers come from wrk-report.lua's `done` line. */
export async function runWrk(procs: ProcessSet, root: string, load: WrkLoad): Promise<WrkResult> {
  const headerLines = Object.entries(load.headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n')
  const r = await procs.run({
    name: 'wrk',
    role: 'load',
    cmd: 'wrk',
    args: [
      '-t',
      String(load.threads),
      '-c',
      String(load.connections),
      '-d',
      `${load.seconds}s`,
      '--latency',
      '-s',
      join(root, 'bench', 'wrk-report.lua'),
      load.url,
    ],
    env: {
      ...process.env,
      BENCH_WRK_HEADERS: headerLines,
      ...(load.delayMs === undefined ? {} : { BENCH_WRK_DELAY_MS: String(load.delayMs) }),
    },
    timeoutMs: (load.seconds + 20) * 1_000,
  })
  const line = r.stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '))
  if (r.code !== 0 || !line)
    throw new Error(`wrk failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 400)}`)
  const d = JSON.parse(line.slice('BENCH_JSON '.length)) as DoneLine
  const durationS = d.duration_us / 1e6
  const ms = (us: number) => us / 1000
  return {
    requests: d.requests,
    durationS,
    rps: durationS > 0 ? d.requests / durationS : 0,
    p50Ms: ms(d.p50_us),
    p90Ms: ms(d.p90_us),
    p99Ms: ms(d.p99_us),
    p999Ms: ms(d.p999_us),
    maxMs: ms(d.max_us),
    meanMs: ms(d.mean_us),
    errors: {
      connect: d.connect,
      read: d.read,
      write: d.write,
      status: d.status,
      timeout: d.timeout,
      total: d.connect + d.read + d.write + d.status + d.timeout,
    },
  }
}
