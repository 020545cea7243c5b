import { systemClock, type Clock } from '../clock.js'
import type { Store } from './types.js'

// In-process caches are a shortcut only while the store is KNOWN to be healthy (CONTRACT §5):
// a heartbeat that has succeeded recently. A failed ping, or a ping that has not come back
// within two intervals (a hung connection), ends that knowledge; a later success restores it.

export interface StoreHealth {
  /** true only when a ping succeeded within the last two intervals and none failed since */
  readonly healthy: boolean
  start(): void
  stop(): void
  /** Pings now; resolves to the new state (never rejects). */
  check(): Promise<boolean>
}

const DEFAULT_INTERVAL_MS = 500
const MAX_INTERVAL_MS = 1000

export function createStoreHealth(store: Store, opts: { intervalMs?: number; clock?: Clock } = {}): StoreHealth {
  const intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS
  if (!Number.isFinite(intervalMs) || intervalMs <= 0 || intervalMs > MAX_INTERVAL_MS) {
    throw new RangeError(`intervalMs must be in (0, ${MAX_INTERVAL_MS}], got ${intervalMs}`)
  }
  const clock = opts.clock ?? systemClock
  // Unknown until the first ping answers: a cache must not trust a store it has never reached.
  let lastOkAtMs: number | null = null
  let isFailing = false
  let inFlight: Promise<boolean> | null = null
  let timer: NodeJS.Timeout | null = null

  const isHealthy = (): boolean => !isFailing && lastOkAtMs !== null && clock.now() - lastOkAtMs <= 2 * intervalMs

  const check = (): Promise<boolean> => {
    // One ping at a time: a hung store must not pile up pings; staleness covers the wait.
    if (inFlight !== null) return inFlight
    inFlight = store
      .ping()
      .then(
        () => true,
        () => false,
      )
      .then((ok) => {
        inFlight = null
        isFailing = !ok
        if (ok) lastOkAtMs = clock.now()
        return isHealthy()
      })
    return inFlight
  }

  return {
    get healthy() {
      return isHealthy()
    },
    start() {
      if (timer !== null) return
      void check()
      timer = setInterval(() => {
        void check()
      }, intervalMs)
      timer.unref()
    },
    stop() {
      if (timer !== null) clearInterval(timer)
      timer = null
    },
    check,
  }
}
