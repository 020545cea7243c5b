import type { Clock } from '../clock.js'
import { createMemoryStore } from './memory.js'
import { createRedisStore, type RedisTarget } from './redis.js'
import type { Store } from './types.js'
import type { Observer } from '../observe.js'

export type { Store } from './types.js'
export type { RedisTarget } from './redis.js'
export { createMemoryStore } from './memory.js'

/**
 * The configured store: Redis when `redis` is given, else in-memory (one instance only).
 * The clock matters only to the memory store; Redis judges its own TTLs.
 */
export function createStore(
  config: { redis?: RedisTarget; prefix: string },
  clock?: Clock,
  opts: { onError?: (err: Error) => void } = {},
): Store {
  return config.redis === undefined
    ? createMemoryStore({ prefix: config.prefix, clock })
    : createRedisStore({ redis: config.redis, prefix: config.prefix, onError: opts.onError })
}

const ROUND_TRIPS = [
  'get',
  'set',
  'setIfAbsent',
  'take',
  'del',
  'expire',
  'ttl',
  'incr',
  'decr',
  'addToSet',
  'removeFromSet',
  'members',
  'keys',
  'publish',
  'ping',
] as const

/** Every round trip told to the observer (metrics); nothing is measured while nobody listens. */
export function instrumentStore(store: Store, observer: Observer): Store {
  const wrapped: Record<string, unknown> = { ...store }
  for (const op of ROUND_TRIPS) {
    const call = (store[op] as (...args: unknown[]) => Promise<unknown>).bind(store)
    wrapped[op] = async (...args: unknown[]) => {
      if (!observer.watchingStore) return call(...args)
      const started = performance.now()
      try {
        const result = await call(...args)
        observer.store({ op, ok: true, durationMs: performance.now() - started })
        return result
      } catch (err) {
        observer.store({ op, ok: false, durationMs: performance.now() - started })
        throw err
      }
    }
  }
  return wrapped as unknown as Store
}
