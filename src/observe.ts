import { channel } from 'node:diagnostics_channel'
import type { ErrorCode } from './errors.js'
import type { Scheme } from './principal.js'

// What keygate decides and does, as events. Each gateway has its own Observer: its metrics and
// its audit trail listen there, so two gateways in one process never count each other's
// requests. Every event is also published on node:diagnostics_channel, a tap for outside
// listeners (tracing, a host app); publishing is guarded by hasSubscribers (as undici does), so
// nobody tapping costs one property read.
// Events carry no secret: jtis and token hashes, never token values.

export interface RequestEvent {
  readonly decision: 'allow' | 'deny'
  readonly code: ErrorCode | null
  readonly scheme: Scheme | 'anonymous'
  /** the configured route name or prefix: bounded */
  readonly route: string
  readonly status: number
  readonly durationMs: number
  /** time spent waiting on the upstream, when the request went there */
  readonly upstreamMs: number | null
  readonly upstreamError: 'unreachable' | 'timeout' | null
  /** the rate limit that applied (a configured, bounded name) and what it decided */
  readonly rateLimit?: { readonly limit: string; readonly result: 'allowed' | 'limited' | 'store-down' } | null
}

export type AuditEvent =
  | {
      readonly kind: 'token.issued'
      readonly type: string
      readonly jti: string
      readonly subject: string
      readonly clientIp: string
    }
  | {
      readonly kind: 'token.revoked'
      readonly type: string
      readonly jti: string
      readonly subject: string
      readonly by: string
    }
  | {
      /** `keygate tokens revoke --all --before`: the issuer's revocation epoch moved */
      readonly kind: 'tokens.revokedBefore'
      readonly issuer: string
      readonly before: string
      readonly by: string
    }
  | { readonly kind: 'login.failed'; readonly username: string; readonly clientIp: string; readonly reason: string }
  | {
      readonly kind: 'login.lockout'
      readonly scope: 'user' | 'ip'
      readonly username: string
      readonly clientIp: string
      readonly retryAfterSec: number
    }
  | {
      readonly kind: 'apikey.refused'
      readonly keyName: string
      readonly clientIp: string
      readonly reason: 'cidr' | 'path' | 'module'
    }
  | {
      /** the first refused request of a window, for an authenticated caller (ApiKey name or user name) */
      readonly kind: 'ratelimit.exceeded'
      readonly limit: string
      readonly subject: string
      readonly clientIp: string
      readonly retryAfterSec: number
    }
  | {
      readonly kind: 'config.reloaded'
      readonly ok: boolean
      readonly hash: string | null
      readonly problems?: readonly string[]
    }

export interface StoreEvent {
  readonly op: string
  readonly ok: boolean
  readonly durationMs: number
}

/** Process-wide taps: every gateway's events, for listeners outside keygate. */
export const requestChannel = channel('keygate:request')
export const auditChannel = channel('keygate:audit')
export const storeChannel = channel('keygate:store')

export type Listener<E> = (event: E) => void
export type Unlisten = () => void

/** One gateway's events. */
export interface Observer {
  readonly request: Listener<RequestEvent>
  readonly audit: Listener<AuditEvent>
  readonly store: Listener<StoreEvent>
  /** false while nobody (listener or tap) wants store round trips, which then go untimed */
  readonly watchingStore: boolean
  readonly onRequest: (listener: Listener<RequestEvent>) => Unlisten
  readonly onAudit: (listener: Listener<AuditEvent>) => Unlisten
  readonly onStore: (listener: Listener<StoreEvent>) => Unlisten
}

/** Where the code that emits one kind of event sends it (an endpoint, a stage): the gateway's observer. */
export type AuditSink = (event: AuditEvent) => void

export function createObserver(): Observer {
  const requests = createFanout<RequestEvent>(requestChannel)
  const audits = createFanout<AuditEvent>(auditChannel)
  const stores = createFanout<StoreEvent>(storeChannel)
  return {
    request: requests.emit,
    audit: audits.emit,
    store: stores.emit,
    get watchingStore() {
      return stores.watched()
    },
    onRequest: requests.listen,
    onAudit: audits.listen,
    onStore: stores.listen,
  }
}

function createFanout<E>(tap: ReturnType<typeof channel>) {
  // Replaced, never mutated: an emit under way keeps the array it started with.
  let listeners: readonly Listener<E>[] = []
  return {
    emit: (event: E): void => {
      for (const listener of listeners) listener(event)
      if (tap.hasSubscribers) tap.publish(event)
    },
    listen: (listener: Listener<E>): Unlisten => {
      listeners = [...listeners, listener]
      return () => {
        listeners = listeners.filter((l) => l !== listener)
      }
    },
    watched: (): boolean => listeners.length > 0 || tap.hasSubscribers,
  }
}
