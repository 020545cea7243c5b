import type { UserConfig } from '../config/schema.js'

// Suffit's user records carry a validity window and a disabled flag; keygate keeps them in one rule.

export type UserWindow = Pick<UserConfig, 'disabled' | 'notBefore' | 'notAfter' | 'expires'>

/**
 * Whether the user may log in, and whether its tokens still speak for it, at `nowMs`. Times are
 * epoch seconds, 0 = no bound: from `notBefore` (inclusive) until the earlier of `notAfter` and
 * `expires` (exclusive).
 */
export function inStanding(user: UserWindow, nowMs: number): boolean {
  if (user.disabled) return false
  const now = nowMs / 1000
  if (user.notBefore > 0 && now < user.notBefore) return false
  if (user.notAfter > 0 && now >= user.notAfter) return false
  return !(user.expires > 0 && now >= user.expires)
}

/** Whether standing can change with time alone (a window is set): such users are re-checked on every request. */
export const hasWindow = (user: UserWindow): boolean => user.notBefore > 0 || user.notAfter > 0 || user.expires > 0
