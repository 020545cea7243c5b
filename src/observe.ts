import { channel } from 'node:diagnostics_channel'
import type { ErrorCode } from './errors.js'
import type { Scheme } from './auth/types.js'

// What keygate decides and does, published on node:diagnostics_channel so that metrics, the
// audit trail and tracing subscribe without the request path knowing them. Publishing is
// guarded by hasSubscribers (as undici does): nobody listening costs one property read.
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

export const requestChannel = channel('keygate:request')
export const auditChannel = channel('keygate:audit')
export const storeChannel = channel('keygate:store')

export function publishAudit(event: AuditEvent): void {
  if (auditChannel.hasSubscribers) auditChannel.publish(event)
}

export function publishRequest(event: RequestEvent): void {
  if (requestChannel.hasSubscribers) requestChannel.publish(event)
}
