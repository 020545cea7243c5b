import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Logger } from './log.js'
import { createClusterMetrics } from './metrics.js'

/**
 * `workers: auto | N`: a primary forks the workers and they share the listening socket
 * (node:cluster). The primary only supervises: it restarts a worker that dies, passes SIGHUP on
 * (each worker reloads its config) and, on SIGTERM/SIGINT, asks every worker to drain and exit.
 */
export function workerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting
}

export const isPrimary = (): boolean => cluster.isPrimary
export const isWorker = (): boolean => cluster.isWorker

/** Messages from a worker to the primary. */
type WorkerMessage = { readonly kind: 'keygate:start-failed'; readonly message: string }

const isWorkerMessage = (m: unknown): m is WorkerMessage =>
  typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'keygate:start-failed'

export function superviseWorkers(count: number, logger: Logger): Promise<number> {
  let stopping = false
  let resolveExit: (code: number) => void = () => {}
  const exited = new Promise<number>((resolve) => (resolveExit = resolve))
  // Workers' /_keygate/metrics answer with the numbers of all workers, gathered here.
  const metrics = createClusterMetrics()
  const fork = () => {
    const worker = cluster.fork()
    worker.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return
      // Not a crash to restart from: the next worker would fail the same way (a port in use).
      logger.fatal({ worker: worker.process.pid }, `keygate cannot start: ${m.message}`)
      stop(null, 1)
    })
  }
  for (let i = 0; i < count; i++) fork()
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    logger.error({ worker: worker.process.pid, code, signal }, 'worker died; starting another')
    fork()
  })
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP')
  })
  logger.info({ workers: count }, 'keygate primary started')
  function stop(signal: NodeJS.Signals | null, code: number) {
    if (stopping) return
    stopping = true
    if (signal) logger.info({ signal }, 'stopping workers')
    const workers = Object.values(cluster.workers ?? {})
    const done = () => {
      metrics.close()
      resolveExit(code)
    }
    if (workers.length === 0) return done()
    let left = workers.length
    for (const w of workers) {
      w?.once('exit', () => {
        if (--left === 0) done()
      })
      w?.process.kill('SIGTERM')
    }
  }
  process.once('SIGTERM', () => stop('SIGTERM', 0))
  process.once('SIGINT', () => stop('SIGINT', 0))
  return exited
}

/** In a worker: tell the primary this worker cannot start (the primary stops the others and exits 1). */
export function reportStartFailure(message: string): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve()
    process.send({ kind: 'keygate:start-failed', message } satisfies WorkerMessage, () => resolve())
  })
}
