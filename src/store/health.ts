import { systemClock, type Clock } from '../clock.js'
import type { Logger } from '../log.js'
import type { Store } from './types.js'

// In-process caches are a shortcut only while the store is KNOWN to be healthy (CONTRACT §5):
// a heartbeat that has succeeded recently. A failed ping, or a ping that has not come back
// within two intervals (a hung connection), ends that knowledge; a later success restores it.
// An outage is logged twice, whatever its length: one warning when it starts, one info line
// with its duration when the store answers again (the request lines only show E1006s).

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

export interface StoreHealthOptions {
  readonly intervalMs?: number
  readonly clock?: Clock
  /** where the start and the end of an outage are told */
  readonly logger?: Pick<Logger, 'warn' | 'info'>
}

export function createStoreHealth(store: Store, opts: StoreHealthOptions = {}): StoreHealth {
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
  /** when the first failed ping of the current outage came back */
  let downSinceMs: number | null = null

  const noteOutcome = (err: unknown): void => {
    const now = clock.now()
    if (err === null) {
      if (downSinceMs !== null)
        opts.logger?.info({ store: store.kind, outageMs: now - downSinceMs }, 'store reachable again')
      downSinceMs = null
    } else if (downSinceMs === null) {
      downSinceMs = now
      opts.logger?.warn(
        { store: store.kind, err: reasonOf(err) },
        'store unreachable: requests that need it are refused (E1006) until it answers',
      )
    }
  }

  const isHealthy = (): boolean => !isFailing && lastOkAtMs !== null && clock.now() - lastOkAtMs <= 2 * intervalMs

  const check = (): Promise<boolean> => {
    // One ping at a time: a hung store must not pile up pings; staleness covers the wait.
    if (inFlight !== null) return inFlight
    inFlight = store
      .ping()
      .then(
        () => null,
        (err: unknown) => err ?? new Error('ping failed'),
      )
      .then((err) => {
        inFlight = null
        isFailing = err !== null
        if (err === null) lastOkAtMs = clock.now()
        noteOutcome(err)
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

/** The innermost message of a store error: what failed, never a credential (ioredis errors carry none). */
function reasonOf(err: unknown): string {
  let e = err
  while (e instanceof Error && e.cause !== undefined) e = e.cause
  return e instanceof Error ? e.message : String(e)
}
