import type { Clock } from '../clock.js'
import { createMemoryStore } from './memory.js'
import { createRedisStore, type RedisTarget } from './redis.js'
import type { Store } from './types.js'

export type { Counter, Store } from './types.js'
export type { RedisTarget } from './redis.js'
export { createMemoryStore } from './memory.js'
export { createRedisStore } from './redis.js'
export { createStoreHealth, type StoreHealth } from './health.js'

/**
 * The configured store: Redis when `redis` is given, else in-memory (one instance only).
 * The clock matters only to the memory store; Redis judges its own TTLs.
 */
export function createStore(
  config: { redis?: RedisTarget; prefix: string },
  clock?: Clock,
  opts: { onError?: (err: Error) => void } = {},
): Store {
  if (config.redis === undefined) return createMemoryStore({ prefix: config.prefix, clock })
  return createRedisStore({ redis: config.redis, prefix: config.prefix, onError: opts.onError })
}
