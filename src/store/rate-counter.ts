import { LRUCache } from 'lru-cache'
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { Cluster, Redis } from 'ioredis'
import { systemClock, type Clock } from '../clock.js'
import { StoreUnavailableError } from '../errors.js'
import type { MaybePromise } from '../util/maybe-promise.js'

// Rate-limit counting: a fixed window of `points` requests per `windowMs`, started by a bucket's
// first request. In Redis (rate-limiter-flexible's atomic INCR + expiry script, one key per
// bucket, so Redis Cluster works) every instance counts one shared limit; the in-memory store
// counts in this process.
//
// Both keep at most MAX_BUCKETS buckets per limit, least recently used first out, so a flood from
// many addresses holds memory flat. rate-limiter-flexible's own in-memory parts do not fit a flood
// of distinct addresses: RateLimiterMemory keeps a timer per key (85 MiB for 200k addresses), and
// its in-memory block list sweeps every entry on each add once it holds 1000 (20k blocked keys:
// 7 s of CPU).

/** One limit's window, as the pipeline compiled it (windowMs is whole seconds). */
export interface RateWindow {
  readonly points: number
  readonly windowMs: number
}

export interface RateCount {
  readonly allowed: boolean
  /** requests left in this window after this one */
  readonly remaining: number
  /** ms until the window ends and the bucket starts afresh */
  readonly resetMs: number
  /** the first refused request of its window: audited once per window, fleet-wide */
  readonly firstRefusal: boolean
}

export interface RateCounter {
  /**
   * Counts one request of `bucket` under the limit `limitName`. Synchronous when no round trip is
   * needed (the memory store; a bucket known to be blocked); rejects with StoreUnavailableError
   * when the store cannot be reached.
   */
  consume(limitName: string, limit: RateWindow, bucket: string): MaybePromise<RateCount>
}

export const MAX_BUCKETS = 100_000

const count = (limit: RateWindow, used: number, resetMs: number): RateCount => ({
  allowed: used <= limit.points,
  remaining: Math.max(0, limit.points - used),
  resetMs: Math.max(0, resetMs),
  firstRefusal: used === limit.points + 1,
})

interface LocalWindow {
  used: number
  endsAtMs: number
}

/** Counts in this process: the memory store's counter, and the fallback of `onStoreDown: local`. */
export function createLocalRateCounter(clock: Clock = systemClock): RateCounter {
  const byLimit = new Map<string, LRUCache<string, LocalWindow>>()
  return {
    consume(limitName, limit, bucket) {
      let windows = byLimit.get(limitName)
      if (windows === undefined) {
        windows = new LRUCache<string, LocalWindow>({ max: MAX_BUCKETS })
        byLimit.set(limitName, windows)
      }
      const now = clock.now()
      let window = windows.get(bucket)
      if (window === undefined || window.endsAtMs <= now) {
        window = { used: 0, endsAtMs: now + limit.windowMs }
        windows.set(bucket, window)
      }
      window.used++
      return count(limit, window.used, window.endsAtMs - now)
    },
  }
}

/** Most requests one lease from Redis covers: a round trip per this many requests at most. */
const MAX_LEASE = 100
/** A lease is at most this share of a limit, so instances that lease and never spend cost little. */
const LEASE_SHARE = 16

/** One bucket's lease on this instance: requests it may admit without asking Redis. */
interface Lease {
  left: number
  endsAtMs: number
  /** what the fleet had left after this lease was taken, for the RateLimit header */
  fleetLeft: number
  /** the store refused the last lease: refuse locally until the window ends */
  blocked: boolean
  /** this instance's lease took the fleet's count over the limit: its next refusal is the window's first */
  crossed: boolean
  /** the round trip under way; concurrent requests of the bucket wait for it instead of sending their own */
  pending: Promise<void> | null
}

/**
 * Counts in Redis with rate-limiter-flexible, in leases: an instance takes up to
 * min(MAX_LEASE, points / 16) requests of a bucket's window in one atomic INCRBY and admits them
 * locally, so a request under a limit costs a round trip only once per lease (one round trip per
 * request cost more than the 10 % of the bare proxy's rate the budget allows). The fleet never
 * admits more than the limit: a lease that crosses it is cut to what was left. An instance may
 * hold up to one unspent lease per bucket when the window ends, so a caller spread over N
 * instances can be refused up to N × lease requests early; a caller that keeps coming spends them.
 * A bucket over its limit is remembered until its window ends: a blocked client costs no round trip.
 */
export function createRedisRateCounter(
  client: Redis | Cluster,
  prefix: string,
  /** the store's time budget: waits out a short gap (start-up, failover), fails fast in an outage */
  withinBudget: <T>(op: () => Promise<T>) => Promise<T>,
): RateCounter {
  const limiters = new Map<string, RateLimiterRedis>()
  const leases = new LRUCache<string, Lease>({ max: MAX_BUCKETS })

  const limiterFor = (limitName: string, limit: RateWindow): RateLimiterRedis => {
    const id = `${limitName}\n${limit.points}\n${limit.windowMs}`
    let limiter = limiters.get(id)
    if (limiter === undefined) {
      limiter = new RateLimiterRedis({
        storeClient: client,
        keyPrefix: `${prefix}rl:${limitName}`,
        points: limit.points,
        duration: limit.windowMs / 1000,
      })
      limiters.set(id, limiter)
    }
    return limiter
  }

  /** Takes the bucket's next lease; the store's reply says how much of it is within the limit. */
  const renew = (lease: Lease, limitName: string, limit: RateWindow, bucket: string): Promise<void> => {
    const size = Math.max(1, Math.min(MAX_LEASE, Math.floor(limit.points / LEASE_SHARE)))
    const took = (res: RateLimiterRes) => {
      const before = res.consumedPoints - size
      if (before <= 0) lease.crossed = false // a new window
      lease.left = Math.max(0, Math.min(size, limit.points - before))
      lease.blocked = lease.left === 0
      lease.fleetLeft = Math.max(0, limit.points - res.consumedPoints)
      lease.endsAtMs = Date.now() + res.msBeforeNext
      // Exactly one lease per window takes the fleet's count over the limit (INCRBY is atomic):
      // that instance's first refusal is the one audited.
      lease.crossed ||= res.consumedPoints > limit.points && before <= limit.points
    }
    return withinBudget(() => limiterFor(limitName, limit).consume(bucket, size))
      .then(took, (err: unknown) => {
        // over the limit is an answer, not a failure (the budget wrapper reports every rejection as one)
        const overLimit = err instanceof StoreUnavailableError ? err.cause : err
        if (!(overLimit instanceof RateLimiterRes)) throw err
        took(overLimit)
      })
      .finally(() => {
        lease.pending = null
      })
  }

  const spend = (lease: Lease): RateCount | null => {
    const resetMs = lease.endsAtMs - Date.now()
    if (resetMs <= 0) return null
    if (lease.left > 0) {
      lease.left--
      return { allowed: true, remaining: lease.left + lease.fleetLeft, resetMs, firstRefusal: false }
    }
    if (!lease.blocked) return null // spent: ask the store for more
    const firstRefusal = lease.crossed
    lease.crossed = false
    return { allowed: false, remaining: 0, resetMs, firstRefusal }
  }

  const consume = (limitName: string, limit: RateWindow, bucket: string): MaybePromise<RateCount> => {
    const key = `${limitName}\n${bucket}`
    let lease = leases.get(key)
    if (lease === undefined) {
      lease = { left: 0, endsAtMs: 0, fleetLeft: 0, blocked: false, crossed: false, pending: null }
      leases.set(key, lease)
    }
    const now = spend(lease)
    if (now !== null) return now
    const current = lease
    current.pending ??= renew(current, limitName, limit, bucket)
    return current.pending.then(() => spend(current) ?? consume(limitName, limit, bucket))
  }

  return { consume }
}
