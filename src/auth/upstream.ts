import { request } from 'undici'
import { LRUCache } from 'lru-cache'
import { sha256Hex } from '../util/secret.js'
import { isCleanName, isCleanText } from '../util/identity-value.js'
import type { MaybePromise } from '../util/maybe-promise.js'
import { StoreUnavailableError } from '../errors.js'
import type { RateCount, RateCounter, RateWindow } from '../store/rate-counter.js'
import type { Authenticator, AuthResult } from './types.js'
import { SESSION_COOKIE, type Principal } from '../principal.js'

export interface UpstreamIdentityOptions {
  /** upstream path (joined to the default upstream) or a full URL */
  readonly url: string
  readonly defaultUpstream: string
  readonly cacheTtlMs: number
  readonly timeoutMs: number
  /** the wiki's session cookie names, '*' for any characters */
  readonly cookies: readonly string[]
  /** calls to the wiki per client address and window */
  readonly callLimit: { readonly perIp: number; readonly windowMs: number }
  /** the store's rate counter: callLimit is counted there, so every instance on the store shares it */
  readonly counter: RateCounter
}

/** The rate counter's limit name for callLimit (beside the rate limits' anonymous, key:…, route:…). */
const CALL_LIMIT_NAME = 'upstream-identity'

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
function principalFromUserInfo(body: unknown): Principal | null {
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
 * identityFromUpstream: a request carrying the wiki's session cookies is asked about upstream
 * (MediaWiki meta=userinfo), with those cookies only. Answers are cached per cookie set (by its
 * hash) for cacheTtl; calls to the wiki are bounded per client address in the store's rate
 * counter (shared by every instance on Redis), so cookies made up to miss the cache cannot make
 * keygate flood the wiki. No wiki cookie, an unreachable or odd answer, a client over its bound,
 * or a store that cannot count the call: no identity, the request stays unauthenticated.
 */
export function createUpstreamIdentity(opts: UpstreamIdentityOptions): Authenticator {
  const url = /^https?:\/\//.test(opts.url) ? opts.url : new URL(opts.url, opts.defaultUpstream).toString()
  const isWikiCookie = cookieNameMatcher(opts.cookies)
  const cache = new LRUCache<string, { principal: Principal | null }>({ max: 10_000, ttl: opts.cacheTtlMs })
  // one call per cookie set at a time: requests with the same cookies wait for it (and its count)
  const asking = new Map<string, Promise<Principal | null>>()
  const mayCall = createCallLimit(opts.counter, opts.callLimit)
  const result = (principal: Principal | null): AuthResult => (principal ? { kind: 'ok', principal } : SKIP)
  const call = (key: string, cookies: string): Promise<Principal | null> =>
    ask(url, cookies, opts.timeoutMs).then((principal) => {
      cache.set(key, { principal })
      return principal
    })
  return {
    scheme: 'upstream',
    authenticate({ token: cookieHeader, clientIp }) {
      const cookies = wikiCookies(cookieHeader, isWikiCookie)
      if (!cookies) return SKIP
      const key = sha256Hex(cookies)
      const hit = cache.get(key)
      if (hit) return result(hit.principal)
      let pending = asking.get(key)
      if (!pending) {
        const allowed = mayCall(clientIp)
        if (allowed === false) return SKIP
        // a refused call caches nothing: once the window ends, these cookies may be asked about
        const asked = allowed === true ? call(key, cookies) : allowed.then((ok) => (ok ? call(key, cookies) : null))
        pending = asked.finally(() => asking.delete(key))
        asking.set(key, pending)
      }
      return pending.then(result)
    },
  }
}

/** One matcher for the configured names; keygate's own session cookie is never the wiki's. */
function cookieNameMatcher(patterns: readonly string[]): (name: string) => boolean {
  const alternatives = patterns.map((p) => p.split('*').map(escapeRegExp).join('.*'))
  const re = new RegExp(`^(?:${alternatives.join('|')})$`)
  return (name) => name !== SESSION_COOKIE && re.test(name)
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The wiki's cookies out of a Cookie header, as one header value; '' when there are none. */
function wikiCookies(header: string, isWikiCookie: (name: string) => boolean): string {
  const kept: string[] = []
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq !== -1 && isWikiCookie(pair.slice(0, eq).trim())) kept.push(pair.trim())
  }
  return kept.join('; ')
}

/**
 * Counts one wiki call of a client address under callLimit, in the store's rate counter (a fixed
 * window; Redis's needs whole seconds, so the window is rounded up to them). A store that cannot
 * be reached fails closed: no call, so no identity, and the route's policy judges the request as
 * unauthenticated; never a 5xx. Bounded memory: the counter keeps MAX_BUCKETS addresses at most.
 */
function createCallLimit(
  counter: RateCounter,
  limit: { perIp: number; windowMs: number },
): (clientIp: string) => MaybePromise<boolean> {
  const window: RateWindow = { points: limit.perIp, windowMs: Math.max(1, Math.ceil(limit.windowMs / 1000)) * 1000 }
  const storeDown = (err: unknown): false => {
    if (err instanceof StoreUnavailableError) return false
    throw err
  }
  return (clientIp) => {
    let counted: MaybePromise<RateCount>
    try {
      counted = counter.consume(CALL_LIMIT_NAME, window, `ip:${clientIp}`)
    } catch (err) {
      return storeDown(err)
    }
    return counted instanceof Promise ? counted.then((c) => c.allowed, storeDown) : counted.allowed
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
