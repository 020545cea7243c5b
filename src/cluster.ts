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

export function superviseWorkers(count: number, logger: Logger): Promise<number> {
  let stopping = false
  // Workers' /_keygate/metrics answer with the numbers of all workers, gathered here.
  const metrics = createClusterMetrics()
  const fork = () => cluster.fork()
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
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      stopping = true
      logger.info({ signal }, 'stopping workers')
      const workers = Object.values(cluster.workers ?? {})
      const done = () => {
        metrics.close()
        resolve(0)
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
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
