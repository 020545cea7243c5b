import cluster from 'node:cluster'
import { randomUUID } from 'node:crypto'
import { AggregatorRegistry, type Registry } from 'prom-client'

// IPC message types between a worker's render() and the primary's aggregation.
const CLUSTER_REQ = 'keygate:metrics-req'
const CLUSTER_RES = 'keygate:metrics-res'

interface ClusterRequest {
  readonly type: typeof CLUSTER_REQ
  readonly id: string
}
interface ClusterResponse {
  readonly type: typeof CLUSTER_RES
  readonly id: string
  readonly text?: string
  readonly error?: string
}

/**
 * Worker side: answers the primary's prom-client aggregation requests with this registry, and
 * render() asks the primary for the sum over every worker (whichever worker the scrape hit).
 */
export function createWorkerSide(
  registry: Registry,
  timeoutMs: number,
): { render: () => Promise<string>; close: () => void } {
  // prom-client's worker listener is process-wide and installed by constructing an
  // AggregatorRegistry; a cluster worker runs exactly one gateway, so this registry is the one.
  AggregatorRegistry.setRegistries([registry])
  new AggregatorRegistry()
  const pending = new Map<string, { resolve(text: string): void; reject(err: Error): void; timer: NodeJS.Timeout }>()
  const onMessage = (message: unknown): void => {
    const m = message as ClusterResponse | null
    if (m?.type !== CLUSTER_RES) return
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    clearTimeout(p.timer)
    if (typeof m.text === 'string') p.resolve(m.text)
    else p.reject(new Error(`cluster metrics: ${m.error ?? 'no answer'}`))
  }
  process.on('message', onMessage)
  return {
    render() {
      return new Promise<string>((resolve, reject) => {
        const id = randomUUID()
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`cluster metrics: the primary did not answer within ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, { resolve, reject, timer })
        const request: ClusterRequest = { type: CLUSTER_REQ, id }
        process.send!(request)
      })
    },
    close() {
      process.off('message', onMessage)
      for (const p of pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error('metrics closed'))
      }
      pending.clear()
    },
  }
}

/**
 * Primary side of cluster mode: when a worker is scraped, it asks here; the primary collects
 * every worker's registry (prom-client AggregatorRegistry: counters and histograms summed,
 * keygate_store_healthy the minimum, keygate_config_info the maximum) and answers that worker.
 */
export function createClusterMetrics(): { close(): void } {
  const aggregator = new AggregatorRegistry()
  const onMessage = (worker: import('node:cluster').Worker, message: unknown): void => {
    const m = message as ClusterRequest | null
    if (m?.type !== CLUSTER_REQ) return
    const reply = (r: Omit<ClusterResponse, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: CLUSTER_RES, id: m.id, ...r } satisfies ClusterResponse)
    }
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: Error) => reply({ error: err.message }),
    )
  }
  cluster.on('message', onMessage)
  return {
    close() {
      cluster.off('message', onMessage)
    },
  }
}
