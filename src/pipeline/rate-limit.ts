import type { CompiledConfig, CompiledRoute } from '../config/compile.js'
import type { RateLimitConfig } from '../config/schema.js'
import type { Principal } from '../principal.js'
import type { RateCount, RateCounter, RateWindow } from '../store/rate-counter.js'
import { refuse, refusalFor, type Refusal } from '../errors.js'
import type { AuditSink } from '../observe.js'
import type { MaybePromise } from '../util/maybe-promise.js'

// Rate limits (the most specific one applies: route > ApiKey > anonymous / authenticated), each a
// fixed window counted in the store. `burst` is the window's size in requests and the window
// lasts burst / rate (rounded up to whole seconds), so the long-run rate is the configured one.

export type LimitedBy = 'ip' | 'user' | 'key' | 'route'

interface CompiledLimit extends RateWindow {
  /** bounded label for metrics, audit and the RateLimit headers */
  readonly name: string
  readonly by: LimitedBy
  readonly policyHeader: string
  readonly quotedName: string
}

/** The limit that applied to a request, and what the response tells the client about it. */
export interface RateLimitOutcome {
  readonly limit: string
  readonly result: 'allowed' | 'limited' | 'store-down'
  /** RateLimit-Policy and RateLimit; null when the store could not say (E1006) */
  readonly headers: Readonly<Record<string, string>> | null
  /** set when the request is refused: 429 E1031 with Retry-After, or E1006 */
  readonly refusal: Refusal | null
}

/** null when no limit applies to the request (synchronously: no cost beyond a lookup). */
export type RateLimitCheck = (
  route: CompiledRoute,
  principal: Principal | null,
  clientIp: string,
) => MaybePromise<RateLimitOutcome> | null

export interface RateLimitDeps {
  /** the store's counter (shared by every instance on it) */
  readonly counter: RateCounter
  /** `rateLimits.onStoreDown: local`: counts in this process while the store is unreachable */
  readonly fallback: RateCounter | null
  /** the gateway's observer, told of the first refusal of a window */
  readonly audit: AuditSink
}

/** Built once per config; null when the config sets no limit at all. */
export function createRateLimit(config: CompiledConfig, deps: RateLimitDeps): RateLimitCheck | null {
  const defaults = config.rateLimits
  const anonymous = defaults.anonymous ? compileLimit('anonymous', defaults.anonymous, 'ip') : null
  const authenticated = defaults.authenticated ? compileLimit('authenticated', defaults.authenticated, 'user') : null
  const byRoute = new Map<CompiledRoute, CompiledLimit>()
  for (const route of config.routes)
    if (route.rateLimit) byRoute.set(route, compileLimit(`route:${route.name}`, route.rateLimit, 'user'))
  const byKey = new Map<string, CompiledLimit>()
  for (const key of [...config.apiKeys, ...config.clients])
    if (key.rateLimit) byKey.set(key.name, compileLimit(`key:${key.name}`, key.rateLimit, 'key'))
  if (!anonymous && !authenticated && byRoute.size === 0 && byKey.size === 0) return null

  const limitFor = (route: CompiledRoute, principal: Principal | null): CompiledLimit | null => {
    if (!route.rateLimited) return null
    const onRoute = byRoute.get(route)
    if (onRoute) return onRoute
    if (principal === null) return anonymous
    const ofKey = principal.keyName === undefined ? undefined : byKey.get(principal.keyName)
    return ofKey ?? authenticated
  }

  return (route, principal, clientIp) => {
    const limit = limitFor(route, principal)
    if (limit === null) return null
    const bucket = bucketOf(limit.by, route, principal, clientIp)
    const judged = (c: RateCount) => outcome(limit, c, principal, clientIp, deps.audit)
    let counted: MaybePromise<RateCount>
    try {
      counted = deps.counter.consume(limit.name, limit, bucket)
    } catch (err) {
      return storeDown(limit, bucket, err, judged)
    }
    if (!(counted instanceof Promise)) return judged(counted)
    return counted.then(judged, (err: unknown) => storeDown(limit, bucket, err, judged))
  }

  function storeDown(
    limit: CompiledLimit,
    bucket: string,
    err: unknown,
    judged: (c: RateCount) => RateLimitOutcome,
  ): MaybePromise<RateLimitOutcome> {
    const refusal = refusalFor(err)
    if (!refusal) throw err
    if (deps.fallback) return judged(deps.fallback.consume(limit.name, limit, bucket) as RateCount)
    return { limit: limit.name, result: 'store-down', headers: null, refusal }
  }
}

/** What is counted: `ip` the client address; `user` and `key` the caller (users as their user, ApiKeys as their key, anonymous callers as their address); `route` the route. */
function bucketOf(by: LimitedBy, route: CompiledRoute, principal: Principal | null, clientIp: string): string {
  if (by === 'route') return `route:${route.name}`
  if (by === 'ip' || principal === null) return `ip:${clientIp}`
  return principal.keyName === undefined ? `user:${principal.username}` : `key:${principal.keyName}`
}

function outcome(
  limit: CompiledLimit,
  c: RateCount,
  principal: Principal | null,
  clientIp: string,
  audit: AuditSink,
): RateLimitOutcome {
  const resetSec = Math.ceil(c.resetMs / 1000)
  const headers = {
    'ratelimit-policy': limit.policyHeader,
    ratelimit: `${limit.quotedName};r=${c.remaining};t=${resetSec}`,
  }
  if (c.allowed) return { limit: limit.name, result: 'allowed', headers, refusal: null }
  const retryAfterSec = Math.max(1, resetSec)
  // Once per window and bucket across the fleet (the store's count says which request crossed).
  if (c.firstRefusal && principal !== null)
    audit({
      kind: 'ratelimit.exceeded',
      limit: limit.name,
      subject: principal.keyName ?? principal.username,
      clientIp,
      retryAfterSec,
    })
  return { limit: limit.name, result: 'limited', headers, refusal: refuse('E1031', { retryAfterSec }) }
}

function compileLimit(name: string, config: RateLimitConfig, defaultBy: LimitedBy): CompiledLimit {
  const points = config.burst ?? config.rate.count
  // The window holds `points` requests at the configured rate; whole seconds, rounded up so that
  // the long-run rate never exceeds the configured one.
  const windowSec = Math.max(1, Math.ceil((config.rate.periodMs * points) / config.rate.count / 1000))
  const quotedName = sfString(name)
  return {
    name,
    by: config.by ?? defaultBy,
    points,
    windowMs: windowSec * 1000,
    quotedName,
    policyHeader: `${quotedName};q=${points};w=${windowSec}`,
  }
}

/** A structured-field string (RFC 9651): printable ASCII, with `"` and `\` escaped. */
const sfString = (text: string): string => `"${text.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`
