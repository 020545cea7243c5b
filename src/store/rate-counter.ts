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

/**
 * Counts in Redis with rate-limiter-flexible. A bucket refused once is remembered here until its
 * window ends, so a blocked client costs no round trip (the fleet's count is already over).
 */
export function createRedisRateCounter(client: Redis | Cluster, prefix: string): RateCounter {
  const limiters = new Map<string, RateLimiterRedis>()
  const blockedUntil = new LRUCache<string, number>({ max: MAX_BUCKETS })

  const limiterFor = (limitName: string, limit: RateWindow): RateLimiterRedis => {
    const id = `${limitName}\n${limit.points}\n${limit.windowMs}`
    let limiter = limiters.get(id)
    if (limiter === undefined) {
      limiter = new RateLimiterRedis({
        storeClient: client,
        keyPrefix: `${prefix}rl:${limitName}`,
        points: limit.points,
        duration: limit.windowMs / 1000,
        // fail at once while the connection is down (the caller answers E1006) instead of waiting
        rejectIfRedisNotReady: true,
      })
      limiters.set(id, limiter)
    }
    return limiter
  }

  return {
    consume(limitName, limit, bucket) {
      const blockedKey = `${limitName}\n${bucket}`
      const until = blockedUntil.get(blockedKey)
      if (until !== undefined) {
        const left = until - Date.now()
        if (left > 0) return { allowed: false, remaining: 0, resetMs: left, firstRefusal: false }
        blockedUntil.delete(blockedKey)
      }
      return limiterFor(limitName, limit)
        .consume(bucket)
        .then(
          (res) => count(limit, res.consumedPoints, res.msBeforeNext),
          (err: unknown) => {
            if (!(err instanceof RateLimiterRes)) throw new StoreUnavailableError({ cause: err })
            if (err.msBeforeNext > 0) blockedUntil.set(blockedKey, Date.now() + err.msBeforeNext)
            return count(limit, err.consumedPoints, err.msBeforeNext)
          },
        )
    },
  }
}
