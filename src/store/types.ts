import type { RateCounter } from './rate-counter.js'

// What keygate keeps: hashed tokens, sessions, revocations and counters.
// Keys are given without the configured prefix; each implementation adds it.
// Every method rejects with StoreUnavailableError when the store cannot be reached,
// so callers fail closed (E1006) instead of treating "unreachable" as "absent".

export interface Counter {
  /** value after the increment */
  count: number
  /** time left in the window, ms */
  ttlMs: number
}

/** Stops one subscription's deliveries (at once; calling it again does nothing). */
export type Unsubscribe = () => void

export interface Store {
  readonly kind: 'memory' | 'redis'
  get(key: string): Promise<string | null>
  /** Sets the value with a TTL in one atomic step. */
  set(key: string, value: string, ttlMs: number): Promise<void>
  /** Sets only when absent (atomic); true when set. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>
  /** Gets and deletes in one atomic step: a single-use value is taken at most once. */
  take(key: string): Promise<string | null>
  /** true when the key existed */
  del(key: string): Promise<boolean>
  /** Moves the expiry (sliding sessions); false when the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>
  /** Remaining TTL in ms, or null when absent. */
  ttl(key: string): Promise<number | null>
  /** Fixed-window counter: the first increment starts the window (atomically with the count). */
  incr(key: string, windowMs: number): Promise<Counter>
  /** Takes back one increment of a live counter (never below 0); an absent counter stays absent. */
  decr(key: string): Promise<void>
  /**
   * Adds to a set (indexes such as tokens by user) and keeps it alive at least ttlMs from now:
   * its expiry only ever moves later, atomically, so an index lives as long as its longest member.
   */
  addToSet(key: string, member: string, ttlMs: number): Promise<void>
  removeFromSet(key: string, member: string): Promise<void>
  members(key: string): Promise<string[]>
  /** Keys under a prefix (without the store prefix); admin use only, never on the request path. */
  keys(prefix: string): Promise<string[]>
  /** Rate-limit counting shared by every instance on this store (one counter per store). */
  rateCounter(): RateCounter
  /** Cross-instance notifications (revocations). */
  publish(channel: string, message: string): Promise<void>
  /** Resolves once subscribed, to the way out: whoever subscribes must call it when done listening. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe>
  /** Rejects when the store is unreachable. */
  ping(): Promise<void>
  close(): Promise<void>
}
