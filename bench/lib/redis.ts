import { Redis } from 'ioredis'

export interface RedisInfo {
  readonly url: string
  readonly version: string
  /** unique per run, so a bench never reads or deletes anyone else's keys */
  readonly prefix: string
  /** started by the bench (and pinned to the load CPU), or somebody else's server */
  readonly ownProcess: boolean
}

function connect(url: string): Redis {
  // Fail fast instead of ioredis's default endless reconnect: the bench reports and moves on.
  return new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  })
}

/** The server's version, or an error message when nothing answers at `url`. */
export async function checkRedis(url: string): Promise<{ ok: true; version: string } | { ok: false; why: string }> {
  const redis = connect(url)
  redis.on('error', () => {
    /* reported through the rejected command below */
  })
  try {
    await redis.connect()
    await redis.ping()
    const info = await redis.info('server')
    return { ok: true, version: info.match(/redis_version:(\S+)/)?.[1] ?? '?' }
  } catch (err) {
    return { ok: false, why: (err as Error).message }
  } finally {
    redis.disconnect()
  }
}

/** Deletes the keys the gateways of this run wrote under its prefix; returns how many. */
export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const redis = connect(url)
  redis.on('error', () => {
    /* best effort at the end of a run */
  })
  let deleted = 0
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length) deleted += await redis.unlink(...keys)
    } while (cursor !== '0')
  } catch {
    /* Redis went away: nothing more to clean */
  } finally {
    redis.disconnect()
  }
  return deleted
}
