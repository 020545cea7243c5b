import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { hashPassword, Skip, type KeygateSetup } from './keygate.js'
import { freePort } from './net.js'
import { findExecutable, type Pinning, type Proc } from './procs.js'
import { checkRedis, type RedisInfo } from './redis.js'
import type { Settings } from './settings.js'
import type { NginxInfo, Upstream } from './upstream.js'
import type { runWrk } from './wrk.js'

// What the case runners (cases.ts, tls-cases.ts) share: the run's context, the options a case is
// started with, and what it hands to the load. Both import it; it imports neither.

/** Everything one run shares. Built by createContext (session.ts); nothing lives at module level. */
export interface BenchContext extends KeygateSetup {
  readonly settings: Settings
  readonly pinning: Pinning
  readonly nginx: NginxInfo | null
  readonly upstream: Upstream
  readonly ticksPerSecond: number
  readonly credentials: {
    readonly apiKey: string
    readonly jwtSecret: string
    readonly salt: string
    readonly username: string
    readonly password: string
  }
  /** made once, by the first case that needs it */
  passwordHash(): Promise<string>
  redis(): Promise<RedisInfo>
  /** the Redis a case asked for, if any did (its keys are deleted at the end) */
  usedRedis(): Promise<RedisInfo> | null
}

export function createContext(
  base: Omit<BenchContext, 'credentials' | 'passwordHash' | 'redis' | 'usedRedis'>,
): BenchContext {
  // Fresh secrets per run: nothing here is a real credential, and nothing is reused across runs.
  const credentials = {
    apiKey: randomBytes(24).toString('hex'),
    jwtSecret: randomBytes(32).toString('hex'),
    salt: randomBytes(32).toString('hex'),
    username: 'bench',
    password: randomBytes(12).toString('hex'),
  }
  let hash: Promise<string> | null = null
  let redis: Promise<RedisInfo> | null = null
  const ctx: BenchContext = {
    ...base,
    credentials,
    passwordHash: () => (hash ??= hashPassword(ctx, credentials.password)),
    redis: () => (redis ??= findRedis(ctx)),
    usedRedis: () => redis,
  }
  return ctx
}

/**
 * The Redis of the brief (127.0.0.1:6379, or BENCH_REDIS_URL). If nothing answers there and
 * redis-server is installed — or BENCH_REDIS_URL=own asks for it — the bench starts its own
 * on a free port, pinned to the load CPU (a system Redis is not ours to re-pin).
 */
async function findRedis(ctx: BenchContext): Promise<RedisInfo> {
  const prefix = `keygate-bench:${process.pid}-${Date.now().toString(36)}:`
  const wanted = ctx.settings.redisUrl
  const own = wanted === 'own'
  const first = own ? { ok: false as const, why: 'BENCH_REDIS_URL=own' } : await checkRedis(wanted)
  if (first.ok) return { url: wanted, version: first.version, prefix, ownProcess: false }
  const server = findExecutable('redis-server')
  if (!server || (process.env.BENCH_REDIS_URL && !own))
    throw new Skip(
      `no Redis at ${wanted} (${first.why})${server ? '' : '; apt-get install -y redis-server, or set BENCH_REDIS_URL'}`,
    )
  const port = await freePort()
  const proc = ctx.procs.start({
    name: 'redis-server',
    role: 'load',
    cmd: server,
    args: ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', ctx.dir],
    logFile: join(ctx.dir, 'redis.log'),
  })
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 50; i++) {
    const r = await checkRedis(url)
    if (r.ok) return { url, version: r.version, prefix, ownProcess: true }
    if (!proc.isRunning()) break
    await sleep(100)
  }
  throw new Skip(`no Redis at ${wanted} (${first.why}), and redis-server would not start: ${proc.logTail(2)}`)
}

/** What a case puts under load. */
export interface Target {
  readonly url: string
  readonly headers: Record<string, string>
  /** the process tree whose CPU and RSS are reported */
  readonly sut: Proc
  /** more processes of the system under test (nginx's auth service): counted and stopped with it */
  readonly companions?: readonly Proc[]
  readonly notes: string[]
  /** stopped after the case unless it is shared (the upstream) */
  readonly ownsSut: boolean
  /** the load tool when it is not wrk (HTTP/2: h2load), and the request check when fetch cannot make it (TLS) */
  readonly runLoad?: typeof runWrk
  readonly check?: () => Promise<string>
}

export interface CaseOptions {
  /** node flags for the keygate process or the bare proxy (profile.ts: --cpu-prof) */
  readonly nodeArgs?: readonly string[]
  /** how long the system under test may take to exit on SIGTERM (a CPU profile is written at exit) */
  readonly stopGraceMs?: number
}
