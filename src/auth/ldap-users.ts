import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Client, Filter, InvalidCredentialsError, type Entry } from 'ldapts'
import { LRUCache } from 'lru-cache'
import { StoreUnavailableError } from '../errors.js'
import { readPem } from '../tokens/keyring.js'
import type { LdapUsersConfig, UserConfig } from '../config/schema.js'

// Users from an LDAP directory, with the same shape as `users` entries. The password is checked by
// binding as the user (keygate never reads a password attribute); searches go through a small pool
// of connections bound as `bindDn`. A directory that cannot be reached answers nothing: the caller
// gets StoreUnavailableError, so a login or a token that needs the directory is E1006 (fail closed).

export interface LdapUsers {
  /** the user when the password binds and the user is allowed; null for a wrong password or an unknown user */
  checkPassword(username: string, password: string): Promise<UserConfig | null>
  /** the user as the directory has it now (cached for cacheTtl), or null when gone or not allowed */
  find(username: string): Promise<UserConfig | null>
  close(): Promise<void>
}

const text = (entry: Entry, attribute: string | undefined): string => {
  if (!attribute) return ''
  const v = entry[attribute]
  const first = Array.isArray(v) ? v[0] : v
  return first === undefined ? '' : Buffer.isBuffer(first) ? first.toString('utf8') : first
}
/** A number attribute (uid, epoch seconds); 0 when absent or not a positive integer. */
const positiveInt = (entry: Entry, attribute: string | undefined): number => {
  const n = Number(text(entry, attribute))
  return Number.isSafeInteger(n) && n > 0 ? n : 0
}

/** Where the directory could not be reached (connection, timeout, server busy): not an answer about the user. */
const unavailable = (err: unknown) => new StoreUnavailableError({ cause: err })

export function createLdapUsers(cfg: LdapUsersConfig): LdapUsers {
  const clientOptions = {
    url: cfg.url,
    timeout: cfg.timeout,
    connectTimeout: cfg.timeout,
    // read once, at start-up or reload: a missing CA file stops those, never a login
    tlsOptions: cfg.ca ? { ca: readPem(cfg.ca, (path) => readFileSync(path, 'utf8')) } : undefined,
  }
  const a = cfg.attributes
  const wanted = [a.username, a.name, a.email, a.uid, a.role, a.comment, a.notBefore, a.notAfter, a.expires, a.disabled]
  const attributes = [...new Set(wanted.filter((x): x is string => x !== undefined))]

  // The pool: connections bound as bindDn (or anonymous), handed out round robin; LDAP multiplexes
  // requests on one connection, so a few serve many logins. A broken one is replaced on next use.
  const pool: Array<Promise<Client> | null> = Array.from({ length: cfg.poolSize }, () => null)
  let next = 0
  const connect = async (): Promise<Client> => {
    const client = new Client(clientOptions)
    if (cfg.bindDn !== undefined) await client.bind(cfg.bindDn, cfg.bindPassword ?? '')
    return client
  }
  /** The slot's connection, or a new one when it was closed (a directory restart, an idle timeout). */
  async function pooled(slot: number): Promise<Client> {
    const current = pool[slot]
    if (current) {
      const client = await current.catch(() => null)
      if (client?.isConnected) return client
      if (pool[slot] === current) pool[slot] = null
    }
    return (pool[slot] ??= connect())
  }
  async function withSearchClient<T>(use: (client: Client) => Promise<T>): Promise<T> {
    const slot = next++ % pool.length
    try {
      return await use(await pooled(slot))
    } catch (err) {
      // Any failure may have left the connection unusable: drop it, and report the directory down.
      const broken = pool[slot]
      pool[slot] = null
      void broken?.then((c) => c.unbind()).catch(() => undefined)
      throw unavailable(err)
    }
  }

  const userFilter = (username: string) => cfg.userFilter.replaceAll('{username}', Filter.escape(username))

  async function lookup(username: string): Promise<{ dn: string; user: UserConfig } | null> {
    return withSearchClient(async (client) => {
      const { searchEntries } = await client.search(cfg.baseDn, {
        scope: 'sub',
        filter: userFilter(username),
        attributes,
        sizeLimit: 2,
      })
      // Two entries for one name is a directory mistake: no one logs in as either.
      if (searchEntries.length !== 1) return null
      const entry = searchEntries[0]!
      if (text(entry, a.username) !== username) return null
      const groups = cfg.groupBaseDn ? await groupsOf(client, entry.dn, username) : []
      const disabled = ['true', '1'].includes(text(entry, a.disabled).toLowerCase())
      const user: UserConfig = {
        username,
        passwordHash: '', // checked by binding, never read
        uid: positiveInt(entry, a.uid),
        name: text(entry, a.name),
        email: text(entry, a.email),
        groups,
        role: a.role ? text(entry, a.role) : undefined,
        flags: 0,
        comment: text(entry, a.comment),
        attributes: '',
        created: 0,
        notBefore: positiveInt(entry, a.notBefore),
        notAfter: positiveInt(entry, a.notAfter),
        expires: positiveInt(entry, a.expires),
        disabled,
        publicKey: '',
      }
      return { dn: entry.dn, user }
    })
  }

  async function groupsOf(client: Client, dn: string, username: string): Promise<string[]> {
    const filter = cfg.groupFilter
      .replaceAll('{dn}', Filter.escape(dn))
      .replaceAll('{username}', Filter.escape(username))
    const { searchEntries } = await client.search(cfg.groupBaseDn!, {
      scope: 'sub',
      filter,
      attributes: [cfg.groupName],
    })
    return searchEntries.map((g) => text(g, cfg.groupName)).filter((g) => g !== '')
  }

  const allowedGroups = new Set(cfg.allow.groups)
  const allowed = (user: UserConfig) => allowedGroups.size === 0 || user.groups.some((g) => allowedGroups.has(g))

  /** Binds as `dn` on a connection of its own (a bind changes who a connection speaks for). */
  async function bindsAs(dn: string, password: string): Promise<boolean> {
    const client = new Client(clientOptions)
    try {
      await client.bind(dn, password)
      return true
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return false
      throw unavailable(err)
    } finally {
      await client.unbind().catch(() => undefined)
    }
  }

  const cache = new LRUCache<string, { user: UserConfig | null }>({ max: 10_000, ttl: cfg.cacheTtl })
  const remember = (username: string, user: UserConfig | null) => {
    cache.set(username, { user })
    return user
  }

  return {
    async checkPassword(username, password) {
      const found = await lookup(username)
      if (!found) {
        // An unknown user costs a bind too (one that cannot succeed), like a wrong password.
        await bindsAs(`${a.username}=${randomBytes(12).toString('hex')},${cfg.baseDn}`, password)
        return null
      }
      // An empty password would be an anonymous bind, which succeeds: never a login.
      if (!password || !(await bindsAs(found.dn, password))) return null
      return allowed(found.user) ? remember(username, found.user) : null
    },
    async find(username) {
      const cached = cache.get(username)
      if (cached) return cached.user
      const found = await lookup(username)
      return remember(username, found && allowed(found.user) ? found.user : null)
    },
    async close() {
      const open = pool.filter((p): p is Promise<Client> => p !== null)
      for (const i of pool.keys()) pool[i] = null
      await Promise.all(open.map((p) => p.then((c) => c.unbind()).catch(() => undefined)))
    },
  }
}
