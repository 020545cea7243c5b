import { refused, type Refused } from '../errors.js'
import type { AuditSink } from '../observe.js'
import type { Store } from '../store/types.js'
import { sha256Hex } from '../util/secret.js'
import type { UserConfig } from '../config/schema.js'
import { dummyVerify, verifyPassword } from '../tokens/password.js'
import { systemClock, type Clock } from '../clock.js'
import { inStanding } from './user-standing.js'

export interface LoginLimits {
  readonly perUser: number
  readonly perIp: number
  readonly window: number
}

/** A login attempt that may check one password, or the lockout that refused it (E1031, reason: the scope). */
export type LoginAttempt =
  | {
      readonly ok: true
      readonly username: string
      readonly ip: string
      readonly userCount: number
      readonly ipCount: number
    }
  | Refused

const WRONG_CREDENTIALS = refused('E1026')

// Hashed: a key's size does not follow what a client sends as a username.
const userKey = (username: string) => `login:user:${sha256Hex(username.toLowerCase())}`
const ipKey = (ip: string) => `login:ip:${ip}`

/**
 * /api/authorize attempts counted per username and per client IP in the store, so the limit holds
 * across instances. An attempt takes its place in both counters (one atomic increment each) BEFORE
 * its password is checked: parallel attempts cannot all pass a check that runs ahead of the count,
 * so at most perUser passwords of one user (perIp from one address) are checked per window.
 * A place that checks no password (the other counter is full) or that logs in is given back.
 */
export function createLoginLimiter(store: Store, limits: LoginLimits) {
  const retryAfterSec = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs / 1000))
  return {
    async attempt(username: string, ip: string): Promise<LoginAttempt> {
      const byIp = await store.incr(ipKey(ip), limits.window)
      if (byIp.count > limits.perIp) return refused('E1031', 'ip', { retryAfterSec: retryAfterSec(byIp.ttlMs) })
      const byUser = await store.incr(userKey(username), limits.window)
      if (byUser.count > limits.perUser) {
        await store.decr(ipKey(ip))
        return refused('E1031', 'user', { retryAfterSec: retryAfterSec(byUser.ttlMs) })
      }
      return { ok: true, username, ip, userCount: byUser.count, ipCount: byIp.count }
    },
    /** The attempt's password was wrong; returns the scope whose limit this failure reached, if any. */
    failed(attempt: Extract<LoginAttempt, { ok: true }>): 'user' | 'ip' | null {
      return attempt.userCount === limits.perUser ? 'user' : attempt.ipCount === limits.perIp ? 'ip' : null
    },
    /** A login clears the user's failures and does not count against the address. */
    async succeeded(attempt: Extract<LoginAttempt, { ok: true }>): Promise<void> {
      await Promise.all([store.del(userKey(attempt.username)), store.decr(ipKey(attempt.ip))])
    },
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>

/** Unknown users cost the same scrypt work as a wrong password and get the same answer. */
/** Who may log in with a password, and who a token's subject is now (out of standing: unknown). */
export interface UserDirectory {
  checkPassword(username: string, password: string): Promise<UserConfig | null>
  find(username: string): UserConfig | undefined | Promise<UserConfig | undefined>
}

export function createUserDirectory(
  byName: ReadonlyMap<string, UserConfig>,
  clock: Clock = systemClock,
): UserDirectory {
  return {
    async checkPassword(username: string, password: string): Promise<UserConfig | null> {
      const user = byName.get(username)
      if (!user) {
        await dummyVerify(password)
        return null
      }
      // A disabled user, or one outside its validity window, costs and answers like a wrong password.
      const matches = await verifyPassword(password, user.passwordHash)
      return matches && inStanding(user, clock.now()) ? user : null
    },
    find(username: string): UserConfig | undefined {
      const user = byName.get(username)
      return user && inStanding(user, clock.now()) ? user : undefined
    },
  }
}

/**
 * One password login, as /api/authorize and the sign-in page both do it: the attempt is counted
 * (loginLimit) before the password is checked, an unknown user costs and answers the same as a
 * wrong password (E1026), and failures and lockouts are audited.
 */
export async function checkLogin(
  deps: { limiter: LoginLimiter; users: UserDirectory; windowMs: number; audit: AuditSink },
  username: string,
  password: string,
  ip: string,
): Promise<{ ok: true; user: UserConfig } | Refused> {
  const attempt = await deps.limiter.attempt(username, ip)
  if (!attempt.ok) return attempt
  const user = await deps.users.checkPassword(username, password)
  if (!user) {
    const lockout = deps.limiter.failed(attempt)
    deps.audit({ kind: 'login.failed', username, clientIp: ip, reason: 'credentials' })
    if (lockout)
      deps.audit({
        kind: 'login.lockout',
        scope: lockout,
        username,
        clientIp: ip,
        retryAfterSec: Math.ceil(deps.windowMs / 1000),
      })
    return WRONG_CREDENTIALS
  }
  await deps.limiter.succeeded(attempt)
  return { ok: true, user }
}
