import { systemClock, type Clock } from '../clock.js'
import { StoreUnavailableError } from '../errors.js'
import type { Counter, Store } from './types.js'
import { checkTtl, deliver } from './common.js'
import { createLocalRateCounter, type RateCounter } from './rate-counter.js'

// One process, one instance: the in-memory store behaves like the Redis store (same TTL,
// single-use and window semantics, asynchronous pub/sub) so the contract suite runs against both.
// Expiry is judged by the injected clock, so tests move a manual clock instead of sleeping.

type Entry =
  { kind: 'string'; value: string; expiresAtMs: number } | { kind: 'set'; members: Set<string>; expiresAtMs: number }

export interface MemoryStoreOptions {
  /** Accepted for symmetry with Redis; an in-process store shares its keyspace with nobody. */
  prefix?: string
  clock?: Clock
}

// Each write examines this many entries for expiry, so memory stays bounded under a steady write
// load without ever pausing for a full scan; the idle timer reclaims what a quiet period leaves.
const SWEEP_PER_WRITE = 16
const SWEEP_PER_TICK = 10_000
const SWEEP_INTERVAL_MS = 5_000

export function createMemoryStore(opts: MemoryStoreOptions = {}): Store {
  const clock = opts.clock ?? systemClock
  const entries = new Map<string, Entry>()
  const channels = new Map<string, Set<(message: string) => void>>()
  // A Map iterator stays valid while the map changes, so the sweep resumes where it stopped.
  let cursor: Iterator<[string, Entry]> = entries.entries()
  let closed = false

  const sweep = (budget: number): void => {
    const now = clock.now()
    for (let i = 0; i < budget; i++) {
      const next = cursor.next()
      if (next.done) {
        cursor = entries.entries()
        return
      }
      const [key, entry] = next.value
      if (entry.expiresAtMs <= now) entries.delete(key)
    }
  }
  const timer = setInterval(() => sweep(SWEEP_PER_TICK), SWEEP_INTERVAL_MS)
  timer.unref()

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAtMs <= clock.now()) {
      entries.delete(key)
      return undefined
    }
    return entry
  }
  const open = (): void => {
    if (closed) throw new StoreUnavailableError({ cause: new Error('store closed') })
  }
  const write = (key: string, entry: Entry): void => {
    sweep(SWEEP_PER_WRITE)
    entries.set(key, entry)
  }

  let rateCounter: RateCounter | null = null

  return {
    kind: 'memory',

    rateCounter: () => (rateCounter ??= createLocalRateCounter(clock)),

    async get(key) {
      open()
      const entry = live(key)
      if (entry === undefined) return null
      return stringValue(entry)
    },

    async set(key, value, ttlMs) {
      open()
      write(key, { kind: 'string', value, expiresAtMs: clock.now() + checkTtl(ttlMs) })
    },

    async setIfAbsent(key, value, ttlMs) {
      open()
      const ms = checkTtl(ttlMs)
      if (live(key) !== undefined) return false
      write(key, { kind: 'string', value, expiresAtMs: clock.now() + ms })
      return true
    },

    async take(key) {
      open()
      const entry = live(key)
      if (entry === undefined) return null
      const value = stringValue(entry)
      entries.delete(key)
      return value
    },

    async del(key) {
      open()
      const existed = live(key) !== undefined
      entries.delete(key)
      return existed
    },

    async expire(key, ttlMs) {
      open()
      const ms = checkTtl(ttlMs)
      const entry = live(key)
      if (entry === undefined) return false
      entry.expiresAtMs = clock.now() + ms
      return true
    },

    async ttl(key) {
      open()
      const entry = live(key)
      return entry === undefined ? null : entry.expiresAtMs - clock.now()
    },

    async incr(key, windowMs): Promise<Counter> {
      open()
      const ms = checkTtl(windowMs)
      const entry = live(key)
      if (entry === undefined) {
        write(key, { kind: 'string', value: '1', expiresAtMs: clock.now() + ms })
        return { count: 1, ttlMs: ms }
      }
      const current = Number(stringValue(entry))
      // Same refusal as Redis INCR on a non-integer value: a caller bug, not an outage.
      if (entry.kind !== 'string' || !Number.isSafeInteger(current)) throw new TypeError('value is not an integer')
      entry.value = String(current + 1)
      return { count: current + 1, ttlMs: entry.expiresAtMs - clock.now() }
    },

    async decr(key) {
      open()
      const entry = live(key)
      if (entry === undefined) return
      const current = Number(stringValue(entry))
      if (entry.kind !== 'string' || !Number.isSafeInteger(current)) throw new TypeError('value is not an integer')
      if (current > 0) entry.value = String(current - 1)
    },

    async addToSet(key, member, ttlMs) {
      open()
      const expiresAtMs = clock.now() + checkTtl(ttlMs)
      const entry = live(key)
      if (entry === undefined) {
        write(key, { kind: 'set', members: new Set([member]), expiresAtMs })
        return
      }
      setMembers(entry).add(member)
      entry.expiresAtMs = Math.max(entry.expiresAtMs, expiresAtMs)
    },

    async removeFromSet(key, member) {
      open()
      const entry = live(key)
      if (entry === undefined) return
      const members = setMembers(entry)
      members.delete(member)
      // Redis drops an empty set; so do we, so that del/ttl agree across stores.
      if (members.size === 0) entries.delete(key)
    },

    async members(key) {
      open()
      const entry = live(key)
      return entry === undefined ? [] : [...setMembers(entry)]
    },

    async keys(prefix) {
      open()
      const now = clock.now()
      const found: string[] = []
      for (const [key, entry] of entries) {
        if (entry.expiresAtMs > now && key.startsWith(prefix)) found.push(key)
      }
      return found
    },

    async publish(channel, message) {
      open()
      const handlers = channels.get(channel)
      if (handlers === undefined) return
      // Delivered after publish() resolves, as over Redis, so callers cannot come to rely on
      // a subscriber having run before their own next line.
      for (const handler of handlers) setImmediate(deliver, handler, message)
    },

    async subscribe(channel, onMessage) {
      open()
      let handlers = channels.get(channel)
      if (handlers === undefined) {
        handlers = new Set()
        channels.set(channel, handlers)
      }
      handlers.add(onMessage)
      const subscribed = handlers
      return () => {
        subscribed.delete(onMessage)
        if (subscribed.size === 0 && channels.get(channel) === subscribed) channels.delete(channel)
      }
    },

    async ping() {
      open()
    },

    async close() {
      closed = true
      clearInterval(timer)
      entries.clear()
      channels.clear()
    },
  }
}

// A key used both as a value and as a set is a caller bug; Redis answers WRONGTYPE, so do we.
function stringValue(entry: Entry): string {
  if (entry.kind !== 'string') throw new TypeError('WRONGTYPE: key holds a set')
  return entry.value
}
function setMembers(entry: Entry): Set<string> {
  if (entry.kind !== 'set') throw new TypeError('WRONGTYPE: key holds a value')
  return entry.members
}
