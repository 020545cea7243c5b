import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchContext, CaseOptions, Target } from './context.js'
import {
  checkConfig,
  login,
  requirePass,
  Skip,
  startKeygate,
  writeConfig,
  type KeygateRunner,
  type RunningKeygate,
} from './keygate.js'
import { describeAnswer, probe } from './net.js'
import { cpuSecondsBetween, cpuTicks, reapedChildrenTicks, peakRssKiB, processTree } from './procs.js'
import type { CaseSpec } from './settings.js'
import { startBareProxy, startNginxProxy } from './upstream.js'
import { runWrk, type WrkErrors, type WrkResult } from './wrk.js'
import { startAuthFloor, startAuthRequestNginx } from './forward-auth.js'
import { prepareTlsCase } from './tls-cases.js'

export interface CaseResult {
  readonly id: number
  readonly key: string
  readonly title: string
  readonly status: 'ok' | 'skipped' | 'failed'
  readonly reason: string | null
  readonly notes: readonly string[]
  readonly rps: number | null
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly p999Ms: number | null
  readonly requests: number | null
  readonly errors: WrkErrors | null
  /** CPU time of the system under test (its whole process tree) per request */
  readonly cpuUsPerRequest: number | null
  /**
   * CPU time of the load per request: wrk (a child of the bench, counted when it is reaped) and
   * the upstream. With everything on the same cores this is what the workers cannot have.
   */
  readonly loadCpuUsPerRequest: number | null
  /** VmHWM of the system under test, summed over its processes, sampled after the load */
  readonly peakRssMiB: number | null
  readonly processes: number | null
}

export interface CaseRun {
  readonly result: CaseResult
  /** performance.now() at the start and end of the measured load, and when the SUT was spawned */
  readonly window: {
    readonly sutStartedAt: number
    readonly from: number
    readonly to: number
    readonly pid: number
  } | null
}

const runnerNote = (r: KeygateRunner): string =>
  r.kind === 'dist' ? 'keygate from dist/' : `keygate via tsx (${r.why})`

function keygateBase(ctx: BenchContext): Record<string, unknown> {
  const c = ctx.credentials
  return {
    upstream: ctx.upstream.origin,
    logLevel: ctx.settings.logLevel,
    secrets: { salt: c.salt, jwt: { alg: 'HS256', secret: c.jwtSecret } },
    apiKeys: [{ name: 'bench', key: c.apiKey, cidr: ['127.0.0.1/32'], allow: { paths: ['/data/'] } }],
    routes: [{ path: '/public/', methods: ['GET', 'HEAD'], anonymous: true }],
    defaultPolicy: 'authenticated',
  }
}

/** Issue 15: a signed identity assertion on every proxied request (the bench's HS256 key, reused per caller). */
function withAssertion(config: Record<string, unknown>): Record<string, unknown> {
  return { ...config, identityAssertion: { audience: 'bench', ttl: '60s' } }
}

/** A limit every request is counted against and none reaches in a run (issue 16's hot path). */
const NEVER_REACHED = { rate: '1000000/s' }

/** keygateBase with the bench key held to `rateLimit`. */
function limitedKey(ctx: BenchContext, rateLimit: Record<string, unknown>): Record<string, unknown> {
  const base = keygateBase(ctx)
  const [key] = base.apiKeys as Array<Record<string, unknown>>
  return { ...base, apiKeys: [{ ...key, rateLimit }] }
}

async function bearerConfig(ctx: BenchContext): Promise<Record<string, unknown>> {
  const [redis, passwordHash] = await Promise.all([ctx.redis(), ctx.passwordHash()])
  return {
    ...keygateBase(ctx),
    store: { redis: redis.url, prefix: redis.prefix },
    users: [
      {
        username: ctx.credentials.username,
        passwordHash,
        uid: 1000,
        name: 'Bench User',
        email: 'bench@example.org',
        groups: ['user'],
      },
    ],
  }
}

async function keygateTarget(
  ctx: BenchContext,
  kg: RunningKeygate,
  path: string,
  headers: Record<string, string>,
  what: string,
  notes: string[],
): Promise<Target> {
  try {
    await requirePass(`${kg.origin}${path}`, headers, what)
  } catch (err) {
    await ctx.procs.stop(kg.proc)
    throw err
  }
  return { url: `${kg.origin}${path}`, headers, sut: kg.proc, notes: [runnerNote(ctx.runner), ...notes], ownsSut: true }
}

/** Logs in, or stops the keygate it was given before passing the Skip on. */
async function bearerToken(
  ctx: BenchContext,
  kg: RunningKeygate,
  tokenType: 'access' | 'session' = 'access',
): Promise<string> {
  try {
    return await login(kg.origin, ctx.credentials.username, ctx.credentials.password, tokenType)
  } catch (err) {
    await ctx.procs.stop(kg.proc)
    throw err
  }
}

/** Starts what a case needs and checks that its request passes (throws Skip otherwise). */
export async function prepare(ctx: BenchContext, spec: CaseSpec, opts: CaseOptions = {}): Promise<Target> {
  const kgOpts = { role: 'sut' as const, nodeArgs: opts.nodeArgs }
  switch (spec.id) {
    case 1:
      return {
        url: `${ctx.upstream.origin}/bench/page`,
        headers: {},
        sut: ctx.upstream.proc,
        ownsSut: false,
        notes: [`${ctx.upstream.kind} upstream; it runs on the load CPU beside wrk`],
      }
    case 2: {
      if (!ctx.nginx) throw new Skip('nginx is not installed (apt-get install -y nginx)')
      const p = await startNginxProxy(ctx.procs, ctx.dir, ctx.nginx, ctx.upstream)
      return {
        url: `${p.origin}/bench/page`,
        headers: {},
        sut: p.proc,
        ownsSut: true,
        notes: ['nginx, 1 worker, keepalive 64 to the upstream'],
      }
    }
    case 3: {
      const p = await startBareProxy(ctx.procs, ctx.dir, ctx.root, ctx.upstream, { nodeArgs: opts.nodeArgs })
      return {
        url: `${p.origin}/bench/page`,
        headers: {},
        sut: p.proc,
        ownsSut: true,
        notes: ['undici Pool.stream, tsx'],
      }
    }
    case 4: {
      const kg = await startKeygate(ctx, spec.key, keygateBase(ctx), kgOpts)
      return keygateTarget(ctx, kg, '/public/page', {}, 'GET /public/page (anonymous route)', ['memory store'])
    }
    case 9: {
      const kg = await startKeygate(ctx, spec.key, { ...keygateBase(ctx), metrics: { enabled: false } }, kgOpts)
      return keygateTarget(ctx, kg, '/public/page', {}, 'GET /public/page (anonymous route, no metrics)', [
        'memory store',
        'metrics off: compare with (4)',
      ])
    }
    case 5: {
      const kg = await startKeygate(ctx, spec.key, keygateBase(ctx), kgOpts)
      return keygateTarget(
        ctx,
        kg,
        '/data/page',
        { Authorization: `ApiKey ${ctx.credentials.apiKey}` },
        'GET /data/page with ApiKey',
        ['memory store', 'key with cidr + allow.paths'],
      )
    }
    case 6: {
      const kg = await startKeygate(ctx, spec.key, await bearerConfig(ctx), kgOpts)
      const token = await bearerToken(ctx, kg)
      return keygateTarget(ctx, kg, '/data/page', { Authorization: `Bearer ${token}` }, 'GET /data/page with Bearer', [
        'Redis store',
      ])
    }
    case 10: {
      const kg = await startKeygate(ctx, spec.key, limitedKey(ctx, NEVER_REACHED), kgOpts)
      return keygateTarget(
        ctx,
        kg,
        '/data/page',
        { Authorization: `ApiKey ${ctx.credentials.apiKey}` },
        'GET /data/page with ApiKey (rate-limited)',
        ['memory store', 'apiKeys[].rateLimit 1000000/s: counted, never reached; compare with (5)'],
      )
    }
    case 11: {
      const config = { ...(await bearerConfig(ctx)), rateLimits: { authenticated: { ...NEVER_REACHED, by: 'user' } } }
      const kg = await startKeygate(ctx, spec.key, config, kgOpts)
      const token = await bearerToken(ctx, kg)
      return keygateTarget(ctx, kg, '/data/page', { Authorization: `Bearer ${token}` }, 'GET /data/page with Bearer', [
        'Redis store: one counting round trip per request',
        'rateLimits.authenticated 1000000/s by user: counted, never reached; compare with (6)',
      ])
    }
    case 12: {
      const redis = await ctx.redis()
      const config = { ...limitedKey(ctx, { rate: '1/h' }), store: { redis: redis.url, prefix: redis.prefix } }
      const kg = await startKeygate(ctx, spec.key, config, kgOpts)
      // The one request the key has per hour is the bench's own check that the case works; every
      // request under load is then refused with 429 (counted by wrk as errors, by design).
      return keygateTarget(
        ctx,
        kg,
        '/data/page',
        { Authorization: `ApiKey ${ctx.credentials.apiKey}` },
        'GET /data/page with ApiKey (its one request of the hour)',
        ['Redis store', 'apiKeys[].rateLimit 1/h: every measured request is a 429 E1031, no upstream, no round trip'],
      )
    }
    case 13: {
      const kg = await startKeygate(ctx, spec.key, withAssertion(keygateBase(ctx)), kgOpts)
      return keygateTarget(
        ctx,
        kg,
        '/data/page',
        { Authorization: `ApiKey ${ctx.credentials.apiKey}` },
        'GET /data/page with ApiKey (and an assertion)',
        ['memory store', 'identityAssertion (HS256, 60s, reused): compare with (5)'],
      )
    }
    case 14: {
      const kg = await startKeygate(ctx, spec.key, withAssertion(await bearerConfig(ctx)), kgOpts)
      const token = await bearerToken(ctx, kg)
      return keygateTarget(ctx, kg, '/data/page', { Authorization: `Bearer ${token}` }, 'GET /data/page with Bearer', [
        'Redis store',
        'identityAssertion (HS256, 60s, reused): compare with (6)',
      ])
    }
    case 15: {
      const config = { ...(await bearerConfig(ctx)), signIn: { appName: 'Bench' } }
      const kg = await startKeygate(ctx, spec.key, config, kgOpts)
      const session = await bearerToken(ctx, kg, 'session')
      // What a browser sends on a page load: its cookies (keygate's among the app's) and Accept.
      const headers = {
        Cookie: `wiki_session=abc123; keygate_session=${session}; lang=en`,
        Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      }
      return keygateTarget(ctx, kg, '/data/page', headers, 'GET /data/page with the session cookie', [
        'Redis store; signIn configured (three cookie names read); compare with (6)',
      ])
    }
    case 16: {
      if (!ctx.nginx) throw new Skip('nginx is not installed (apt-get install -y nginx)')
      const auth = await startAuthFloor(ctx.procs, ctx.dir, ctx.root, opts.nodeArgs)
      const p = await startAuthRequestNginx(ctx.procs, ctx.dir, ctx.nginx, ctx.upstream, spec.key, auth.origin, '/')
      return {
        url: `${p.origin}/data/page`,
        headers: {},
        sut: p.proc,
        companions: [auth.proc],
        ownsSut: true,
        notes: ['nginx (1 worker) + bench/auth-floor.ts, both on the system-under-test CPU'],
      }
    }
    case 17: {
      if (!ctx.nginx) throw new Skip('nginx is not installed (apt-get install -y nginx)')
      const config = { ...(await bearerConfig(ctx)), trustedProxies: ['127.0.0.1/32'] }
      const kg = await startKeygate(ctx, spec.key, config, kgOpts)
      const token = await bearerToken(ctx, kg)
      const p = await startAuthRequestNginx(
        ctx.procs,
        ctx.dir,
        ctx.nginx,
        ctx.upstream,
        spec.key,
        kg.origin,
        '/_keygate/auth',
      )
      const target = { url: `${p.origin}/data/page`, headers: { Authorization: `Bearer ${token}` } }
      try {
        await requirePass(target.url, target.headers, 'GET /data/page through nginx auth_request')
      } catch (err) {
        await Promise.all([ctx.procs.stop(p.proc), ctx.procs.stop(kg.proc)])
        throw err
      }
      return {
        ...target,
        sut: p.proc,
        companions: [kg.proc],
        ownsSut: true,
        notes: [runnerNote(ctx.runner), 'Redis store', 'nginx (1 worker) + keygate, both on the system-under-test CPU'],
      }
    }
    case 7: {
      const kg = await startKeygate(ctx, spec.key, await bearerConfig(ctx), kgOpts)
      const token = await bearerToken(ctx, kg)
      const headers = { Authorization: `Bearer ${token}`, 'X-Original-URI': '/data/page', 'X-Original-Method': 'GET' }
      return keygateTarget(
        ctx,
        kg,
        '/_keygate/auth',
        headers,
        'GET /_keygate/auth (X-Original-URI /data/page, Bearer)',
        ['Redis store', 'no upstream request'],
      )
    }
    case 18: {
      // (8)'s twin: the same unpinned placement, one process, so that (8) / (18) is what the workers add.
      const kg = await startKeygate(ctx, spec.key, await bearerConfig(ctx), { ...kgOpts, role: 'any' })
      const token = await bearerToken(ctx, kg)
      return keygateTarget(ctx, kg, '/data/page', { Authorization: `Bearer ${token}` }, 'GET /data/page with Bearer', [
        'Redis store',
        'one process, unpinned like (8)',
      ])
    }
    case 8: {
      const config = { ...(await bearerConfig(ctx)), workers: 'auto' }
      // Ask keygate itself whether it takes `workers: auto` before starting anything.
      const problems = await checkConfig(ctx, writeConfig(ctx, `${spec.key}-check`, config, '127.0.0.1:0'))
      if (problems !== null)
        throw new Skip(`the config does not accept workers: auto: ${problems.split('\n').slice(-2).join(' ')}`)
      // Not pinned: `auto` counts the CPUs the process may use, and pinning would make that 1.
      const kg = await startKeygate(ctx, spec.key, config, { ...kgOpts, role: 'any' })
      await sleep(500) // let the primary fork the rest of its workers
      const workers = processTree(kg.proc.pid).length - 1
      if (workers < 1) {
        await ctx.procs.stop(kg.proc)
        throw new Skip('workers not implemented yet (`workers: auto` is accepted, but keygate serves from one process)')
      }
      const token = await bearerToken(ctx, kg)
      const pinNote = ctx.pinning.enabled
        ? `keygate unpinned (all CPUs) while wrk and the upstream stay on CPU ${ctx.pinning.loadCpu}`
        : 'unpinned'
      return keygateTarget(
        ctx,
        kg,
        '/data/page',
        { Authorization: `Bearer ${token}` },
        'GET /data/page with Bearer (workers)',
        ['Redis store', `${workers} worker${workers === 1 ? '' : 's'} + primary`, pinNote],
      )
    }
    default:
      return prepareTlsCase(ctx, spec, opts)
  }
}

const emptyResult = (
  spec: CaseSpec,
  status: 'skipped' | 'failed',
  reason: string,
  notes: readonly string[] = [],
): CaseResult => ({
  id: spec.id,
  key: spec.key,
  title: spec.title,
  status,
  reason,
  notes,
  rps: null,
  p50Ms: null,
  p99Ms: null,
  p999Ms: null,
  requests: null,
  errors: null,
  cpuUsPerRequest: null,
  loadCpuUsPerRequest: null,
  peakRssMiB: null,
  processes: null,
})

/**
 * One case: start what it needs, check that one request passes, warm up, measure, stop.
 * A case that cannot run comes back 'skipped' with the reason; nothing is dropped silently.
 */
export async function runCase(ctx: BenchContext, spec: CaseSpec, opts: CaseOptions = {}): Promise<CaseRun> {
  let target: Target
  try {
    target = await prepare(ctx, spec, opts)
  } catch (err) {
    return {
      result: emptyResult(spec, err instanceof Skip ? 'skipped' : 'failed', (err as Error).message),
      window: null,
    }
  }
  try {
    const load = {
      url: target.url,
      headers: target.headers,
      connections: ctx.settings.connections,
      threads: ctx.settings.threads,
    }
    const runLoad = target.runLoad ?? runWrk
    if (ctx.settings.warmupS > 0) await runLoad(ctx.procs, ctx.root, { ...load, seconds: ctx.settings.warmupS })
    const upstreamPids = target.sut === ctx.upstream.proc ? [] : processTree(ctx.upstream.proc.pid)
    const before = cpuTicks(sutPids(target))
    const loadBefore = cpuTicks(upstreamPids)
    const wrkBefore = reapedChildrenTicks()
    const from = performance.now()
    const wrk: WrkResult = await runLoad(ctx.procs, ctx.root, { ...load, seconds: ctx.settings.durationS })
    const to = performance.now()
    const pids = sutPids(target)
    const cpuS = cpuSecondsBetween(before, cpuTicks(pids), ctx.ticksPerSecond)
    const loadS =
      cpuSecondsBetween(loadBefore, cpuTicks(upstreamPids), ctx.ticksPerSecond) +
      (reapedChildrenTicks() - wrkBefore) / ctx.ticksPerSecond
    const rssKiB = peakRssKiB(pids)
    // A gateway that died under load would otherwise show up as a fast row of errors.
    if (!target.sut.isRunning()) throw new Error(`${target.sut.name} exited during the load:\n${target.sut.logTail(5)}`)
    const after = await (target.check?.() ?? probe(target.url, { headers: target.headers }).then(describeAnswer)).catch(
      (e: Error) => e.message,
    )
    const notes = [...target.notes]
    if (!after.startsWith('2')) notes.push(`after the load the same request answers ${after}`)
    return {
      result: {
        id: spec.id,
        key: spec.key,
        title: spec.title,
        status: 'ok',
        reason: null,
        notes,
        rps: wrk.rps,
        p50Ms: wrk.p50Ms,
        p99Ms: wrk.p99Ms,
        p999Ms: wrk.p999Ms,
        requests: wrk.requests,
        errors: wrk.errors,
        cpuUsPerRequest: wrk.requests > 0 ? (cpuS * 1e6) / wrk.requests : null,
        loadCpuUsPerRequest: wrk.requests > 0 ? (loadS * 1e6) / wrk.requests : null,
        peakRssMiB: rssKiB > 0 ? rssKiB / 1024 : null,
        processes: pids.length,
      },
      window: { sutStartedAt: target.sut.startedAt, from, to, pid: target.sut.pid },
    }
  } catch (err) {
    return { result: emptyResult(spec, 'failed', (err as Error).message, target.notes), window: null }
  } finally {
    if (target.ownsSut) await stopTarget(ctx, target, opts.stopGraceMs)
  }
}

/** Every process of the system under test: its tree and its companions'. */
export const sutPids = (t: Target): number[] => [t.sut, ...(t.companions ?? [])].flatMap((p) => processTree(p.pid))

export async function stopTarget(ctx: BenchContext, t: Target, graceMs?: number): Promise<void> {
  await Promise.all([t.sut, ...(t.companions ?? [])].map((p) => ctx.procs.stop(p, graceMs)))
}
