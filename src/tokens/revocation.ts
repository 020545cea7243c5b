import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import { refused, type Refused } from '../errors.js'
import { isJti } from '../principal.js'
import type { Store, Unsubscribe } from '../store/types.js'

// Revocation of stateless JWTs, and the in-process cache that keeps them cheap.
//
// The store holds a denylist: `revoked:jti:<jti>`, kept until the token's exp (+ clock tolerance),
// after which the token is refused by its own exp. Each instance keeps a bounded LRU of tokens it
// has VERIFIED (signature, claims, not revoked), keyed by the whole token (the string itself: a
// hash of it cost more than the rest of the lookup): a recently seen token then costs a map
// lookup — no signature check and no store round trip.
//
// How a revocation reaches every instance within 1 s:
//  1. revoke() writes the denylist entry, then publishes the jti on a store channel; every instance
//     subscribes when it is created and records the jti in a local "revoked" set that the hot path
//     checks before answering from the cache. This is the normal path: milliseconds.
//  2. Pub/sub alone is not enough. Redis pub/sub is at-most-once: a message published while a
//     subscriber connection is reconnecting, or dropped by Redis for a slow subscriber
//     (client-output-buffer-limit pubsub), is lost for good, and the 1 s health heartbeat runs on the
//     command connection, so it need not notice a blip on the subscriber one. A lost message would
//     otherwise leave a revoked token accepted until its exp (an hour for access tokens).
//     So a cached "not revoked" answer is trusted for at most `recheckMs` (1 s): after that the next
//     request for the token re-reads the denylist with one GET. The signature is never re-checked
//     before exp: it cannot change. Cost: at most one GET per hot token per second per instance,
//     against thousands of requests a second answered from memory. A token in use is re-read
//     ahead, once three quarters of `recheckMs` have passed, while the cache still answers: no
//     request waits for that GET unless it has not come back by `recheckMs` (a revocation is
//     still seen within 1 s, as a read starts at most 0.75 s after it); otherwise every request
//     of that moment would wait for it, once a second, and show in the p99.
//
// A refresh family (every refresh token of one login and the access tokens issued with them, the
// `fam` claim) is revoked the same way: `revoked:fam:<id>`, published as "family <id>" (a jti has no
// space, so the two never mix on the channel), checked with the jti wherever the jti is.
//
// A revocation epoch cuts every token of one issuer issued before it (`keygate tokens revoke --all
// --before <time>`, for when the store lost its denylist): `revoked:epoch:<issuer>`, published as
// "epoch <ms> <issuer>". The epoch is one value per instance, re-read at most every `recheckMs`
// (one GET per instance, shared by every request, ahead of time like a token's), never per
// request; while it is not fresh the cache answers nothing, and a failed read fails the request
// closed like a denylist read.
// The cache is a shortcut, never a fallback (CONTRACT §5): it is used only while `healthy()` says
// the store is, and it is emptied when the store comes back, since revocations may have been missed.

export interface RevocableClaims {
  readonly jti: string
  /** epoch ms */
  readonly expiresAt: number
  /** the refresh family, when the token belongs to one */
  readonly family?: string | undefined
  /** epoch ms: tokens issued before the issuer's revocation epoch are refused */
  readonly issuedAt?: number
}

type CheckedToken<C> = { readonly ok: true; readonly claims: C; readonly cached: boolean } | Refused

/** A full check of the token (signature and claims); called only on a cache miss. */
export type TokenVerifier<C> = (token: string) => Promise<{ readonly ok: true; readonly claims: C } | Refused>

export interface RevocationDeps {
  readonly store: Store
  readonly clock: Clock
  /** true while the store heartbeat (1 s or less) succeeds; the cache is bypassed otherwise */
  readonly healthy: () => boolean
  /** verified tokens kept per instance */
  readonly maxEntries?: number
  /** how long a cached "not revoked" answer stands without re-reading the denylist */
  readonly recheckMs?: number
  /** denylist entries outlive exp by this much, as verification tolerates that much clock skew */
  readonly clockToleranceMs?: number
  readonly channel?: string
  /** the issuer whose revocation epoch applies (secrets.jwt.issuer); none: no epoch */
  readonly issuer?: string
  /** when the first subscribe fails (store down at start), it is retried this often; no caching meanwhile */
  readonly resubscribeMs?: number
}

export interface Revocation<C extends RevocableClaims> {
  /** Hot path, synchronous: the claims of a recently verified, unrevoked token, or undefined. */
  cached(token: string): C | undefined
  /**
   * The whole check: cache, else `verify` and the denylist, then cache the result.
   * Rejects (StoreUnavailableError from the store) when the denylist cannot be read: fail closed.
   */
  check(token: string, verify: TokenVerifier<C>): Promise<CheckedToken<C>>
  /** Denylist lookup; a revocation this instance has heard of answers without the store. */
  isRevoked(jti: string): Promise<boolean>
  /** Whether the token is refused: its jti or its family denylisted. */
  isRefused(claims: RevocableClaims): Promise<boolean>
  /** Denylists the jti until expiresAt (+ tolerance) and tells every instance. */
  revoke(jti: string, expiresAt: number): Promise<void>
  /** Denylists a refresh family until expiresAt (+ tolerance): no token of it may outlive that. */
  revokeFamily(family: string, expiresAt: number): Promise<void>
  /**
   * Moves the issuer's revocation epoch to `before` (never back): every token it issued earlier is
   * refused, until `until` (+ tolerance), when the last of them has expired. The epoch now in force.
   */
  revokeIssuedBefore(before: number, until: number): Promise<number>
  /** for metrics and tests */
  readonly size: number
  readonly subscribed: boolean
  close(): void
}

interface Entry<C> {
  readonly claims: C
  /** clock ms when the denylist was last read for this token */
  checkedAt: number
  /** the denylist read under way for it: requests that find it due share one round trip */
  recheck?: Promise<boolean> | undefined
}

const FAMILY_MESSAGE = 'family '
const EPOCH_MESSAGE = 'epoch '
const REVOKED = refused('E1002', 'revoked')

export const revokedJtiKey = (jti: string): string => `revoked:jti:${jti}`
const revokedFamilyKey = (family: string): string => `revoked:fam:${family}`
export const revocationEpochKey = (issuer: string): string => `revoked:epoch:${encodeURIComponent(issuer)}`

export async function createRevocation<C extends RevocableClaims>(deps: RevocationDeps): Promise<Revocation<C>> {
  const { store, clock, healthy } = deps
  const maxEntries = deps.maxEntries ?? 10_000
  const recheckMs = deps.recheckMs ?? 1000
  const toleranceMs = deps.clockToleranceMs ?? 60_000
  const channel = deps.channel ?? 'revocations'
  const resubscribeMs = deps.resubscribeMs ?? 1000
  const readAheadMs = recheckMs * 0.75

  const verified = new LRUCache<string, Entry<C>>({ max: maxEntries })
  // Jtis this instance heard revoked. A positive answer is always safe to keep (a revoked token
  // stays revoked until it expires anyway), so only size bounds it.
  const revokedHere = new LRUCache<string, true>({ max: maxEntries })
  const familiesRevokedHere = new LRUCache<string, true>({ max: maxEntries })
  const { issuer } = deps
  /** the epoch in force: the larger of the last one read and any heard since */
  let epoch = 0
  let epochReadAt = -Infinity
  let epochRead: Promise<number> | undefined
  let unsubscribe: Unsubscribe | null = null
  let closed = false
  let wasHealthy = true
  let retryTimer: NodeJS.Timeout | undefined

  const onMessage = (message: string) => {
    if (closed) return
    if (message.startsWith(EPOCH_MESSAGE)) {
      const [ms, ...rest] = message.slice(EPOCH_MESSAGE.length).split(' ')
      const heard = Number(ms)
      if (issuer !== undefined && rest.join(' ') === issuer && Number.isSafeInteger(heard))
        epoch = Math.max(epoch, heard)
    } else if (message.startsWith(FAMILY_MESSAGE)) {
      const family = message.slice(FAMILY_MESSAGE.length)
      if (isJti(family)) familiesRevokedHere.set(family, true)
    } else if (isJti(message)) revokedHere.set(message, true)
  }

  async function subscribe(): Promise<void> {
    try {
      const stop = await store.subscribe(channel, onMessage)
      // Closed while the SUBSCRIBE was under way: the store must not keep this instance alive.
      if (closed) stop()
      else unsubscribe = stop
    } catch {
      // Until subscribed, this instance would not hear revocations: it caches nothing meanwhile.
      if (!closed) {
        retryTimer = setTimeout(() => {
          retryTimer = undefined
          void subscribe()
        }, resubscribeMs)
        retryTimer.unref()
      }
    }
  }
  await subscribe()

  /** Whether the cache may be used now; empties it when the store has just come back. */
  function cacheUsable(): boolean {
    const ok = unsubscribe !== null && !closed && healthy()
    if (ok && !wasHealthy) verified.clear()
    wasHealthy = ok
    return ok
  }

  async function isRevokedInStore(jti: string): Promise<boolean> {
    return revokedHere.has(jti) || (await store.get(revokedJtiKey(jti))) !== null
  }

  const epochFresh = (now: number): boolean => issuer === undefined || now - epochReadAt < recheckMs

  /** The epoch, re-read when stale; rejects when the store cannot answer (fail closed). */
  function currentEpoch(): Promise<number> | number {
    if (epochFresh(clock.now())) return epoch
    return readEpoch()
  }

  function readEpoch(): Promise<number> {
    return (epochRead ??= (async () => {
      const startedAt = clock.now()
      const stored = Number(await store.get(revocationEpochKey(issuer!)))
      if (Number.isSafeInteger(stored)) epoch = Math.max(epoch, stored)
      epochReadAt = startedAt
      return epoch
    })().finally(() => {
      epochRead = undefined
    }))
  }

  const beforeEpoch = (c: RevocableClaims): boolean => c.issuedAt !== undefined && c.issuedAt < epoch

  const heardRefused = (c: RevocableClaims): boolean =>
    revokedHere.has(c.jti) || (c.family !== undefined && familiesRevokedHere.has(c.family)) || beforeEpoch(c)

  async function isRefusedInStore(c: RevocableClaims): Promise<boolean> {
    await currentEpoch()
    if (heardRefused(c)) return true
    const [jti, family] = await Promise.all([
      store.get(revokedJtiKey(c.jti)),
      c.family !== undefined ? store.get(revokedFamilyKey(c.family)) : null,
    ])
    return jti !== null || family !== null
  }

  /** Writes a denylist entry until expiresAt (+ tolerance) and publishes it. */
  async function denylist(key: string, message: string, expiresAt: number): Promise<void> {
    const ttlMs = expiresAt + toleranceMs - clock.now()
    // Past exp + tolerance the token is refused by its own exp: nothing to keep.
    if (ttlMs <= 0) return
    await store.set(key, '1', ttlMs)
    await store.publish(channel, message)
  }

  /**
   * The reads that keep a cached answer standing, started in the background once three quarters
   * of `recheckMs` have passed; a failed one changes nothing, and by `recheckMs` requests wait
   * for a read of their own (which fails closed).
   */
  function readAhead(token: string, e: Entry<C>, now: number): void {
    if (issuer !== undefined && now - epochReadAt >= readAheadMs && epochRead === undefined) readEpoch().catch(() => {})
    if (now - e.checkedAt < readAheadMs || e.recheck !== undefined) return
    recheck(e).then(
      (revoked) => {
        if (revoked) verified.delete(token)
        // as of when the read started: what was revoked before then, it has seen
        else e.checkedAt = Math.max(e.checkedAt, now)
      },
      () => {},
    )
  }

  /** One denylist read per entry at a time, shared by whoever needs it. */
  const recheck = (e: Entry<C>): Promise<boolean> =>
    (e.recheck ??= isRefusedInStore(e.claims).finally(() => {
      e.recheck = undefined
    }))

  /** A cached entry still valid as of now, or undefined (dropping it when it is past exp or revoked). */
  function lookup(token: string, now: number): Entry<C> | undefined {
    const e = verified.get(token)
    if (!e) return undefined
    if (now >= e.claims.expiresAt || heardRefused(e.claims)) {
      verified.delete(token)
      return undefined
    }
    return e
  }

  return {
    get size() {
      return verified.size
    },
    get subscribed() {
      return unsubscribe !== null
    },

    cached(token) {
      if (!cacheUsable()) return undefined
      const now = clock.now()
      if (!epochFresh(now)) return undefined
      const e = lookup(token, now)
      if (!e || now - e.checkedAt >= recheckMs) return undefined
      readAhead(token, e, now)
      return e.claims
    },

    async check(token, verify) {
      const useCache = cacheUsable()
      await currentEpoch()
      if (useCache) {
        const now = clock.now()
        const e = lookup(token, now)
        if (e) {
          if (now - e.checkedAt < recheckMs) return { ok: true, claims: e.claims, cached: true }
          const revoked = await recheck(e)
          if (revoked) {
            verified.delete(token)
            return REVOKED
          }
          e.checkedAt = now
          return { ok: true, claims: e.claims, cached: true }
        }
      }
      const r = await verify(token)
      if (!r.ok) return r
      const checkedAt = clock.now()
      // A revocation heard while the GET was in flight wins over the GET's (older) answer.
      if ((await isRefusedInStore(r.claims)) || heardRefused(r.claims)) return REVOKED
      if (useCache && cacheUsable() && checkedAt < r.claims.expiresAt)
        verified.set(token, { claims: r.claims, checkedAt })
      return { ok: true, claims: r.claims, cached: false }
    },

    isRevoked: isRevokedInStore,
    isRefused: isRefusedInStore,

    async revoke(jti, expiresAt) {
      revokedHere.set(jti, true)
      await denylist(revokedJtiKey(jti), jti, expiresAt)
    },

    async revokeFamily(family, expiresAt) {
      familiesRevokedHere.set(family, true)
      await denylist(revokedFamilyKey(family), FAMILY_MESSAGE + family, expiresAt)
    },

    async revokeIssuedBefore(before, until) {
      if (issuer === undefined) throw new Error('revocation epoch: no issuer configured')
      const key = revocationEpochKey(issuer)
      const inForce = Math.max(before, Number(await store.get(key)) || 0)
      epoch = Math.max(epoch, inForce)
      const ttlMs = until + toleranceMs - clock.now()
      if (ttlMs <= 0) return inForce
      await store.set(key, String(inForce), ttlMs)
      await store.publish(channel, `${EPOCH_MESSAGE}${inForce} ${issuer}`)
      return inForce
    },

    close() {
      closed = true
      if (retryTimer) clearTimeout(retryTimer)
      unsubscribe?.()
      unsubscribe = null
      verified.clear()
      revokedHere.clear()
      familiesRevokedHere.clear()
    },
  }
}
