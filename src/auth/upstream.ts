import { request } from 'undici'
import { LRUCache } from 'lru-cache'
import { sha256Hex } from '../util/secret.js'
import { isCleanName, isCleanText } from '../util/identity-value.js'
import type { Authenticator, AuthResult, Principal } from './types.js'

export interface UpstreamIdentityOptions {
  /** upstream path (joined to the default upstream) or a full URL */
  readonly url: string
  readonly defaultUpstream: string
  readonly cacheTtlMs: number
  readonly timeoutMs: number
}

const SKIP: AuthResult = { kind: 'skip' }

interface UserInfo {
  id?: unknown
  name?: unknown
  groups?: unknown
  email?: unknown
  realname?: unknown
  anon?: unknown
}

/**
 * MediaWiki's meta=userinfo answer → a principal; anonymous (id 0) gives none, and so does an
 * answer with a control character or a space at either end of the name or a group, or a
 * control character in the e-mail or real name: refused, never cleaned into another user.
 */
export function principalFromUserInfo(body: unknown): Principal | null {
  const info = (body as { query?: { userinfo?: UserInfo } } | null)?.query?.userinfo
  if (
    !info ||
    typeof info.id !== 'number' ||
    !Number.isSafeInteger(info.id) ||
    info.id <= 0 ||
    typeof info.name !== 'string' ||
    !isCleanName(info.name) ||
    info.anon !== undefined
  )
    return null
  const groups = Array.isArray(info.groups) ? info.groups.filter((g): g is string => typeof g === 'string') : []
  const realName = typeof info.realname === 'string' ? info.realname : ''
  const email = typeof info.email === 'string' ? info.email : ''
  if (!groups.every(isCleanName) || !isCleanText(realName) || !isCleanText(email)) return null
  return { scheme: 'upstream', username: info.name, uid: info.id, realName, email, groups }
}

/**
 * identityFromUpstream: a request carrying only the wiki's own cookies is asked about upstream
 * (MediaWiki meta=userinfo). Answers are cached per Cookie value (by its hash) for cacheTtl.
 * An unreachable or odd answer gives no identity: the request stays unauthenticated.
 */
export function createUpstreamIdentity(opts: UpstreamIdentityOptions): Authenticator {
  const url = /^https?:\/\//.test(opts.url) ? opts.url : new URL(opts.url, opts.defaultUpstream).toString()
  const cache = new LRUCache<string, { principal: Principal | null }>({ max: 10_000, ttl: opts.cacheTtlMs })
  return {
    scheme: 'upstream',
    async authenticate({ token: cookies }) {
      const key = sha256Hex(cookies)
      let hit = cache.get(key)
      if (!hit) {
        hit = { principal: await ask(url, cookies, opts.timeoutMs) }
        cache.set(key, hit)
      }
      return hit.principal ? { kind: 'ok', principal: hit.principal } : SKIP
    },
  }
}

async function ask(url: string, cookies: string, timeoutMs: number): Promise<Principal | null> {
  try {
    const res = await request(url, {
      headers: { cookie: cookies, accept: 'application/json' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return null
    }
    return principalFromUserInfo(await res.body.json())
  } catch {
    return null
  }
}
