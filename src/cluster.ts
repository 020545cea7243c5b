import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Logger } from './log.js'
import { createClusterMetrics } from './metrics/cluster.js'
import type { GatewayConfig } from './config/schema.js'

/**
 * `workers: auto | N`: a primary forks the workers and they share the listening socket
 * (node:cluster). The primary only supervises: it owns the config (it reads the file, on start
 * and on SIGHUP, and hands every worker, a restarted one too, the config it holds, so that all
 * workers always run the same one), restarts a worker that dies (later each time one dies soon
 * after it started) and, on SIGTERM/SIGINT, asks every worker to drain and exit. A worker that
 * cannot start (a port in use) is never restarted: it tells the primary, which stops them all and
 * exits 1. Workers exit when their primary dies (node:cluster does that on an unexpected
 * disconnect).
 */
export function workerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting
}

export const isWorker = (): boolean => cluster.isWorker

/** Messages between the primary and its workers. */
type ClusterMessage =
  | { readonly kind: 'keygate:config'; readonly config: GatewayConfig }
  | { readonly kind: 'keygate:config-wanted' }
  | { readonly kind: 'keygate:start-failed'; readonly message: string }

const isMessage = (m: unknown): m is ClusterMessage =>
  typeof m === 'object' && m !== null && String((m as { kind?: unknown }).kind).startsWith('keygate:')

/** A worker that lived at least this long was healthy: the next restart is immediate again. */
const HEALTHY_MS = 10_000
const FIRST_RESTART_DELAY_MS = 250
const MAX_RESTART_DELAY_MS = 30_000
/** Beyond the shutdown grace, how long a stopping primary waits for a worker before killing it. */
const STOP_MARGIN_MS = 5_000

/** No wait after a healthy worker died; 250 ms after a quick death, doubling with each further one, at most 30 s. */
const restartDelay = (quickDeaths: number): number =>
  quickDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (quickDeaths - 1))

/**
 * Runs the workers until SIGTERM/SIGINT, or until a worker cannot start; resolves with the exit
 * code. `reload` reads the config file again (null when it is refused: the workers keep theirs).
 */
export function superviseWorkers(
  count: number,
  initial: GatewayConfig,
  reload: () => GatewayConfig | null,
  logger: Logger,
): Promise<number> {
  let config = initial
  let stopping = false
  let quickDeaths = 0
  const bornAt = new Map<number, number>()
  // Workers' /_keygate/metrics answer with the numbers of all workers, gathered here.
  const metrics = createClusterMetrics()
  let resolveExit: (code: number) => void = () => {}
  const exited = new Promise<number>((resolve) => (resolveExit = resolve))

  // A worker that died before it could read a message is reported by 'exit', not here.
  const send = (worker: Worker, message: ClusterMessage) => worker.send(message, () => {})
  const fork = () => {
    const worker = cluster.fork()
    bornAt.set(worker.id, Date.now())
    worker.on('message', (m: unknown) => {
      if (!isMessage(m)) return
      if (m.kind === 'keygate:config-wanted') return send(worker, { kind: 'keygate:config', config })
      // Every worker fails the same way (a port in use): the first report stops them all, the others say nothing new.
      if (m.kind !== 'keygate:start-failed' || stopping) return
      logger.fatal({ worker: worker.process.pid }, `keygate cannot start: ${m.message}`)
      stop(null, 1)
    })
  }
  for (let i = 0; i < count; i++) fork()
  cluster.on('exit', (worker: Worker, code, signal) => {
    const lived = Date.now() - (bornAt.get(worker.id) ?? 0)
    bornAt.delete(worker.id)
    // A worker's report comes on its IPC channel, its death by SIGCHLD, and either can be seen
    // first: 'disconnect' follows every message the channel held, so only then is a death that
    // was not reported a crash (restarted) rather than a failure to start (never restarted).
    afterChannelDrained(worker, () => {
      if (stopping) return
      quickDeaths = lived < HEALTHY_MS ? quickDeaths + 1 : 0
      const delay = restartDelay(quickDeaths)
      logger.error({ worker: worker.process.pid, code, signal, restart_in_ms: delay }, 'worker died; starting another')
      setTimeout(() => {
        if (!stopping) fork()
      }, delay)
    })
  })
  process.on('SIGHUP', () => {
    const next = reload()
    if (!next) return
    config = next
    for (const w of Object.values(cluster.workers ?? {})) if (w) send(w, { kind: 'keygate:config', config })
  })
  logger.info({ workers: count }, 'keygate primary started')

  function stop(why: StopCause | null, code: number) {
    if (stopping) return
    stopping = true
    if (why) logger.info(why, 'stopping workers')
    // A worker whose 'exit' was already seen stays listed until its channel closes: not waited for.
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead())
    // Draining takes at most the grace; a worker stuck past it (or in its start) is killed.
    const deadline = setTimeout(() => {
      for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL')
    }, config.limits.shutdownGrace + STOP_MARGIN_MS)
    const done = () => {
      clearTimeout(deadline)
      metrics.close()
      resolveExit(code)
    }
    if (workers.length === 0) return done()
    let left = workers.length
    for (const w of workers) {
      w.once('exit', () => {
        if (--left === 0) done()
      })
      w.process.kill('SIGTERM')
    }
  }
  process.once('SIGTERM', () => stop({ signal: 'SIGTERM' }, 0))
  process.once('SIGINT', () => stop({ signal: 'SIGINT' }, 0))
  onParentGone(() => stop({ parent: 'gone' }, 0))
  return exited
}

/** What a stop is logged with: the signal, or the parent's IPC channel that closed. */
export type StopCause = { readonly signal: NodeJS.Signals } | { readonly parent: 'gone' }

const afterChannelDrained = (worker: Worker, then: () => void): void => {
  if (worker.isConnected()) worker.once('disconnect', then)
  else then()
}

/**
 * A parent that started keygate with an IPC channel (a test runner, a supervisor written in Node)
 * and died closes that channel: keygate then stops as on SIGTERM instead of living on unwatched.
 * Without a channel (systemd, a shell, a container) nothing changes.
 */
export function onParentGone(stop: () => void): void {
  if (process.channel) process.once('disconnect', stop)
}

/**
 * In a worker: `take` gets the config the primary holds, first on start and again after each
 * reload the primary took. A worker never reads the config file: one started after the file
 * was edited (without SIGHUP) runs what its siblings run.
 */
export function onConfigFromPrimary(take: (config: GatewayConfig) => void): void {
  process.on('message', (m: unknown) => {
    if (isMessage(m) && m.kind === 'keygate:config') take(m.config)
  })
  // Asked for, not pushed at fork: a message that arrives before this listener exists is lost.
  process.send!({ kind: 'keygate:config-wanted' } satisfies ClusterMessage)
}

/** In a worker: tell the primary this worker cannot start (the primary stops the others and exits 1). */
export function reportStartFailure(message: string): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve()
    process.send({ kind: 'keygate:start-failed', message } satisfies ClusterMessage, () => resolve())
  })
}
