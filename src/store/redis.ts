import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { StoreUnavailableError } from '../errors.js'
import type { Counter, Store } from './types.js'
import { checkTtl, deliver } from './common.js'
import { createRedisRateCounter, type RateCounter } from './rate-counter.js'

// The shared store for several gateway instances. It fails closed and fast: while Redis cannot
// be reached every call rejects with StoreUnavailableError within about timeoutMs (never a
// null that would read as "no such token"), and the connection keeps retrying on its own so
// service resumes without a restart.

export type RedisTarget =
  string | { sentinels: string[]; name: string; password?: string } | { cluster: string[]; password?: string }

export interface RedisStoreOptions {
  redis: RedisTarget
  prefix: string
  /** Longest a call may take, waiting for a connection included (default 1000 ms). */
  timeoutMs?: number
  /** Connection errors, for logging; they are never left to escape as unhandled 'error' events. */
  onError?: (err: Error) => void
}

type Connection = Redis | Cluster

/** A connection and how long it has been unusable, so a sustained outage fails at once. */
interface Tracked {
  readonly conn: Connection
  /** null while ready; otherwise when it stopped being ready (or was created) */
  downSinceMs: number | null
  /** calls that arrived during a short gap, started when the connection is ready again */
  readonly waiters: Set<() => void>
}

// INCR and the window's expiry in one atomic step. The expiry is set only when the key is new,
// so the window is fixed; a key found without one (never written by this script) gets one too,
// rather than counting forever.
const INCR_LUA = `
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if n == 1 or t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
`
// SADD and an expiry that only moves later, in one atomic step: two tokens recorded at once for
// one user cannot leave the index with the shorter one's expiry. (PEXPIRE GT is Redis 7 only, and
// treats a set without expiry as never expiring.)
const ADD_TO_SET_LUA = `
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`
// DECR only a counter that still exists and is above 0: a refund that arrives after its window
// ended must not create a key without expiry, nor give the next window a head start below 0.
const DECR_LUA = `
local n = tonumber(redis.call('GET', KEYS[1]))
if n ~= nil and n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
`
interface WithScripts {
  keygateIncr(key: string, windowMs: number): Promise<[number, number]>
  keygateDecr(key: string): Promise<number>
  keygateAddToSet(key: string, member: string, ttlMs: number): Promise<number>
}

const SCAN_COUNT = 1000
const DEFAULT_TIMEOUT_MS = 1000
const MAX_RECONNECT_DELAY_MS = 1000

// Reconnect forever: giving up would leave the gateway refusing everything until a restart.
const reconnectDelay = (attempt: number): number => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS)

export function createRedisStore(opts: RedisStoreOptions): Store {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const onError = opts.onError ?? (() => {})
  const prefix = opts.prefix
  const isCluster = typeof opts.redis === 'object' && 'cluster' in opts.redis
  const client = connect(opts.redis, timeoutMs)
  client.defineCommand('keygateIncr', { numberOfKeys: 1, lua: INCR_LUA })
  client.defineCommand('keygateAddToSet', { numberOfKeys: 1, lua: ADD_TO_SET_LUA })
  client.defineCommand('keygateDecr', { numberOfKeys: 1, lua: DECR_LUA })
  const main = track(client, onError)
  const handlers = new Map<string, Set<(message: string) => void>>()
  const subscriptions = new Map<string, Promise<void>>()
  let subscriber: Tracked | null = null
  let closed = false
  let rateCounter: RateCounter | null = null

  const k = (key: string) => prefix + key

  /**
   * Runs one command within the time budget. A connection that has been down for longer than
   * the budget fails the call at once; a short gap (start-up, a failover) is waited out.
   */
  const run = <T>(t: Tracked, op: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (closed) return reject(new StoreUnavailableError({ cause: new Error('store closed') }))
      const isReady = t.conn.status === 'ready'
      if (!isReady && t.downSinceMs !== null && Date.now() - t.downSinceMs >= timeoutMs) {
        return reject(
          new StoreUnavailableError({ cause: new Error(`redis unreachable for ${Date.now() - t.downSinceMs} ms`) }),
        )
      }
      let settled = false
      const timer = setTimeout(() => {
        t.waiters.delete(start)
        if (settled) return
        settled = true
        reject(new StoreUnavailableError({ cause: new Error(`no answer from redis within ${timeoutMs} ms`) }))
      }, timeoutMs)
      function start(): void {
        if (settled) return
        if (closed) {
          settled = true
          clearTimeout(timer)
          return reject(new StoreUnavailableError({ cause: new Error('store closed') }))
        }
        const fail = (err: unknown) => {
          if (!settled) {
            settled = true
            clearTimeout(timer)
            reject(new StoreUnavailableError({ cause: err }))
          }
        }
        let pending: Promise<T>
        try {
          pending = op()
        } catch (err) {
          return fail(err)
        }
        pending.then((value) => {
          if (!settled) {
            settled = true
            clearTimeout(timer)
            resolve(value)
          }
        }, fail)
      }
      if (isReady) start()
      else t.waiters.add(start)
    })

  const getSubscriber = (): Tracked => {
    if (subscriber !== null) return subscriber
    // A connection in subscriber mode cannot run other commands, hence its own. ioredis
    // re-subscribes its channels after a reconnect (autoResubscribe; the outage test checks it).
    const conn = client.duplicate()
    conn.on('message', (channel: string, message: string) => {
      const set = handlers.get(channel)
      if (set !== undefined) for (const handler of set) deliver(handler, message)
    })
    subscriber = track(conn, onError)
    return subscriber
  }

  return {
    kind: 'redis',

    rateCounter: () => (rateCounter ??= createRedisRateCounter(client, prefix, (op) => run(main, op))),

    get: (key) => run(main, () => client.get(k(key))),

    async set(key, value, ttlMs) {
      const ms = checkTtl(ttlMs)
      await run(main, () => client.set(k(key), value, 'PX', ms))
    },

    async setIfAbsent(key, value, ttlMs) {
      const ms = checkTtl(ttlMs)
      return (await run(main, () => client.set(k(key), value, 'PX', ms, 'NX'))) === 'OK'
    },

    take: (key) => run(main, () => client.getdel(k(key))),

    del: async (key) => (await run(main, () => client.del(k(key)))) > 0,

    async expire(key, ttlMs) {
      const ms = checkTtl(ttlMs)
      return (await run(main, () => client.pexpire(k(key), ms))) === 1
    },

    async ttl(key) {
      const ms = await run(main, () => client.pttl(k(key)))
      if (ms === -2) return null
      // -1: a key without expiry, which this store never writes; report it as never expiring.
      return ms === -1 ? Number.POSITIVE_INFINITY : ms
    },

    async incr(key, windowMs): Promise<Counter> {
      const ms = checkTtl(windowMs)
      const [count, ttlMs] = await run(main, () => (client as unknown as WithScripts).keygateIncr(k(key), ms))
      return { count, ttlMs }
    },

    async decr(key) {
      await run(main, () => (client as unknown as WithScripts).keygateDecr(k(key)))
    },

    async addToSet(key, member, ttlMs) {
      const ms = checkTtl(ttlMs)
      await run(main, () => (client as unknown as WithScripts).keygateAddToSet(k(key), member, ms))
    },

    async removeFromSet(key, member) {
      await run(main, () => client.srem(k(key), member))
    },

    members: (key) => run(main, () => client.smembers(k(key))),

    async keys(keyPrefix) {
      const pattern = escapeGlob(k(keyPrefix)) + '*'
      // A cluster spreads keys over its masters; SCAN walks one node's keyspace. The node list
      // is read once the cluster is ready: an empty list would pass for "no keys".
      const nodes = await run(main, async (): Promise<Redis[]> =>
        isCluster ? (client as Cluster).nodes('master') : [client as Redis],
      )
      if (nodes.length === 0) throw new StoreUnavailableError({ cause: new Error('no cluster master known') })
      const found = new Set<string>() // SCAN may return a key twice
      for (const node of nodes) {
        let cursor = '0'
        do {
          const [next, batch] = await run(main, () => node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT))
          for (const key of batch) found.add(key.slice(prefix.length))
          cursor = next
        } while (cursor !== '0')
      }
      return [...found]
    },

    async publish(channel, message) {
      await run(main, () => client.publish(k(channel), message))
    },

    async subscribe(channel, onMessage) {
      const full = k(channel)
      let set = handlers.get(full)
      if (set === undefined) {
        set = new Set()
        handlers.set(full, set)
      }
      set.add(onMessage)
      let pending = subscriptions.get(full)
      if (pending === undefined) {
        const sub = getSubscriber()
        pending = run(sub, () => sub.conn.subscribe(full)).then(() => undefined)
        subscriptions.set(full, pending)
        // Forget a failed SUBSCRIBE so that the next subscribe() tries again.
        pending.catch(() => {
          if (subscriptions.get(full) === pending) subscriptions.delete(full)
        })
      }
      const subscribed = set
      let disposed = false
      const unsubscribe = (): void => {
        if (disposed) return
        disposed = true
        subscribed.delete(onMessage)
        if (subscribed.size > 0 || handlers.get(full) !== subscribed) return
        // The last listener of the channel: the connection stops receiving it too. A later
        // subscribe() sends its SUBSCRIBE after this UNSUBSCRIBE, on the same connection.
        handlers.delete(full)
        subscriptions.delete(full)
        const sub = subscriber
        if (sub !== null && !closed) run(sub, () => sub.conn.unsubscribe(full)).catch(() => {})
      }
      try {
        await pending
      } catch (err) {
        unsubscribe()
        throw err
      }
      return unsubscribe
    },

    async ping() {
      if (!isCluster) return void (await run(main, () => client.ping()))
      // A cluster node answers PING during CLUSTERDOWN, and the survivors keep serving their own
      // slots while a dead master's keys fail. Healthy means every slot is served: each master
      // ioredis knows reports cluster_state:ok, and they are as many as serve slots (a master
      // that went away is dropped from ioredis's list, but still counted by the others).
      const masters = await run(main, async () => (client as Cluster).nodes('master'))
      const infos = await Promise.all(masters.map((node) => run(main, () => node.cluster('INFO'))))
      const down = clusterDown(masters.length, infos)
      if (down !== null) throw new StoreUnavailableError({ cause: new Error(down) })
    },

    async close() {
      if (closed) return
      closed = true
      const conns = subscriber === null ? [main] : [main, subscriber]
      // Calls waiting for a connection learn at once that none is coming.
      for (const t of conns) {
        for (const start of [...t.waiters]) start()
        t.waiters.clear()
      }
      await Promise.all(conns.map(({ conn }) => quit(conn, timeoutMs)))
    },
  }
}

function connect(target: RedisTarget, timeoutMs: number): Connection {
  const common: RedisOptions = {
    // Fail fast instead of queueing: a command sent while disconnected rejects at once, and one
    // in flight when the connection drops is rejected rather than resent later (retries: 0).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    retryStrategy: reconnectDelay,
    // The subscriber connection (a duplicate) must come back with its channels.
    autoResubscribe: true,
  }
  if (typeof target === 'string') return new Redis(target, common)
  if ('sentinels' in target) {
    return new Redis({
      ...common,
      sentinels: target.sentinels.map((s) => hostPort(s, 26379)),
      name: target.name,
      password: target.password,
      sentinelRetryStrategy: reconnectDelay,
    })
  }
  const { enableOfflineQueue, retryStrategy, ...nodeOptions } = common
  return new Cluster(
    target.cluster.map((s) => hostPort(s, 6379)),
    {
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      redisOptions: { ...nodeOptions, password: target.password },
      slotsRefreshTimeout: timeoutMs,
      // Bounded by the call's time budget anyway; retry a moving slot a few times within it.
      retryDelayOnClusterDown: 100,
      retryDelayOnFailover: 100,
      retryDelayOnTryAgain: 100,
    },
  )
}

function track(conn: Connection, onError: (err: Error) => void): Tracked {
  const t: Tracked = { conn, downSinceMs: Date.now(), waiters: new Set() }
  conn.on('error', onError)
  if (conn instanceof Cluster) conn.on('node error', onError)
  conn.on('ready', () => {
    t.downSinceMs = null
    const waiting = [...t.waiters]
    t.waiters.clear()
    for (const start of waiting) start()
  })
  conn.on('close', () => {
    t.downSinceMs ??= Date.now()
  })
  return t
}

/** Why a cluster cannot serve every slot, from its masters' CLUSTER INFO; null when it can. */
function clusterDown(masterCount: number, infos: readonly string[]): string | null {
  if (masterCount === 0) return 'no cluster master known'
  let serving = 0
  for (const info of infos) {
    const state = /^cluster_state:(\w+)/m.exec(info)?.[1]
    if (state !== 'ok') return `cluster_state:${state ?? 'unknown'}`
    serving = Math.max(serving, Number(/^cluster_size:(\d+)/m.exec(info)?.[1] ?? 0))
  }
  return masterCount < serving ? `${serving - masterCount} of ${serving} masters unreachable` : null
}

/** QUIT politely; a connection that cannot say goodbye (Redis down) is dropped. */
async function quit(conn: Connection, timeoutMs: number): Promise<void> {
  if (conn.status === 'ready') {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      conn.quit().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs)
      }),
    ])
    clearTimeout(timer)
  }
  conn.disconnect()
}

/** "host:port", "host" or "redis://host:port" (IPv6 in brackets). */
function hostPort(text: string, defaultPort: number): { host: string; port: number } {
  if (/^rediss?:\/\//.test(text)) {
    const url = new URL(text)
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? defaultPort : Number(url.port) }
  }
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text)
  if (m === null) throw new TypeError(`expected host:port, got ${text}`)
  return { host: m[1]!, port: m[2] === undefined ? defaultPort : Number(m[2]) }
}

/** SCAN MATCH treats * ? [ ] \ as glob syntax; a key prefix is literal. */
const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&')
