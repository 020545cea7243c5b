import type { UserConfig } from '../config/schema.js'
import type { Clock } from '../clock.js'
import { createUserDirectory, type UserDirectory } from './login.js'
import type { LdapUsers } from './ldap-users.js'
import { inStanding } from './user-standing.js'

/**
 * The users of `users` / `usersFile`, then those of the directory (`usersFrom.ldap`): a name
 * configured locally is always the local user. Directory users obey the same standing rule
 * (disabled, validity window) and the same login lockout as local ones.
 */
export function createUserSources(
  local: ReadonlyMap<string, UserConfig>,
  directory: LdapUsers | null,
  clock: Clock,
): UserDirectory {
  const own = createUserDirectory(local, clock)
  if (!directory) return own
  const standing = (user: UserConfig | null) => (user && inStanding(user, clock.now()) ? user : null)
  return {
    async checkPassword(username, password) {
      if (local.has(username)) return own.checkPassword(username, password)
      return standing(await directory.checkPassword(username, password))
    },
    async find(username) {
      if (local.has(username)) return own.find(username)
      return standing(await directory.find(username)) ?? undefined
    },
  }
}
