import type { Store } from '../store/types.js'
import type { UserConfig } from '../config/schema.js'
import { dummyVerify, verifyPassword } from '../tokens/password.js'

export interface LoginLimits {
  readonly perUser: number
  readonly perIp: number
  readonly window: number
}

export type LoginCheck =
  { readonly ok: true } | { readonly ok: false; readonly retryAfterSec: number; readonly scope: 'user' | 'ip' }

const userKey = (username: string) => `login:user:${encodeURIComponent(username.toLowerCase())}`
const ipKey = (ip: string) => `login:ip:${ip}`

/**
 * Failed /api/authorize attempts counted per username and per client IP in the store, so the
 * limit holds across instances. Checked before the password, counted after a failure.
 */
export function createLoginLimiter(store: Store, limits: LoginLimits) {
  async function over(key: string, limit: number): Promise<number | null> {
    const count = Number((await store.get(key)) ?? 0)
    if (count < limit) return null
    const ttl = await store.ttl(key)
    return Math.max(1, Math.ceil((ttl ?? limits.window) / 1000))
  }
  return {
    async check(username: string, ip: string): Promise<LoginCheck> {
      const byUser = await over(userKey(username), limits.perUser)
      if (byUser !== null) return { ok: false, retryAfterSec: byUser, scope: 'user' }
      const byIp = await over(ipKey(ip), limits.perIp)
      if (byIp !== null) return { ok: false, retryAfterSec: byIp, scope: 'ip' }
      return { ok: true }
    },
    /** Counts a failure; returns the scope whose limit this failure reached, if any. */
    async fail(username: string, ip: string): Promise<'user' | 'ip' | null> {
      const [u, i] = await Promise.all([
        store.incr(userKey(username), limits.window),
        store.incr(ipKey(ip), limits.window),
      ])
      return u.count === limits.perUser ? 'user' : i.count === limits.perIp ? 'ip' : null
    },
    async succeed(username: string): Promise<void> {
      await store.del(userKey(username))
    },
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>

/** Unknown users cost the same scrypt work as a wrong password and get the same answer. */
export function createUserDirectory(users: readonly UserConfig[]) {
  const byName = new Map(users.filter((u) => !u.disabled).map((u) => [u.username, u]))
  return {
    async checkPassword(username: string, password: string): Promise<UserConfig | null> {
      const user = byName.get(username)
      if (!user) {
        await dummyVerify(password)
        return null
      }
      return (await verifyPassword(password, user.passwordHash)) ? user : null
    },
    find: (username: string): UserConfig | undefined => byName.get(username),
  }
}

export type UserDirectory = ReturnType<typeof createUserDirectory>
