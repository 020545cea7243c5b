import type { Clock } from '../clock.js'
import type { Store } from '../store/types.js'
import { randomToken, sha256Hex } from '../util/secret.js'
import { createIndexedRecords } from './indexed-records.js'

// One implementation for every opaque stored token: user tokens and app tokens.
// The store key is sha256(token): a dump of the store gives nobody a usable token. The raw token
// exists only in the issue() result and in the caller's request.

type TokenKind = 'user' | 'app'

/** What a token stands for; extra members (lang, meta, clientid …) are kept as given. */
export interface TokenRecord {
  readonly username: string
  readonly uid: number
  readonly groups: readonly string[]
  readonly [key: string]: unknown
}

export interface StoredToken<R extends TokenRecord = TokenRecord> {
  readonly kind: TokenKind
  /** sha256 hex of the token: what admin listing and revokeByHash use */
  readonly hash: string
  readonly record: R
  /** epoch ms */
  readonly issuedAt: number
  /** epoch ms */
  readonly expiresAt: number
}

interface IssuedToken {
  readonly token: string
  readonly hash: string
  /** epoch ms */
  readonly expiresAt: number
}

export interface TokenRegistry<R extends TokenRecord = TokenRecord> {
  readonly kind: TokenKind
  /**
   * indexed false: not listed under its username (anonymous callers, named by their address: an
   * index per address would grow with every request and serve nobody).
   */
  issue(record: R, opts?: { ttlMs?: number; indexed?: boolean }): Promise<IssuedToken>
  /** The record, or null when unknown, expired, revoked, malformed, or (single-use) already used. */
  verify(token: string): Promise<StoredToken<R> | null>
  /** As verify(), but says 'revoked' for a token revoked before its expiry (E1002 rather than E1001). */
  find(token: string): Promise<StoredToken<R> | 'revoked' | null>
  revoke(token: string): Promise<boolean>
  revokeByHash(hash: string): Promise<boolean>
  /** Live tokens of a user (admin use; one store read per token). */
  listByUser(username: string): Promise<StoredToken<R>[]>
  /** Revokes every token of a user; the count revoked. */
  revokeUser(username: string): Promise<number>
  hashOf(token: string): string
}

export interface TokenRegistryDeps {
  readonly store: Store
  readonly clock: Clock
  readonly kind: TokenKind
  readonly ttlMs: number
  readonly singleUse?: boolean
}

// 32 bytes of CSPRNG output per token, as lowercase hex.
const TOKEN_BYTES = 32
// Tokens we issue are lowercase hex; checking the shape first spares the store a round trip for junk.
const TOKEN_SHAPE = /^[0-9a-f]{32,256}$/
const HASH_SHAPE = /^[0-9a-f]{64}$/

interface StoredValue {
  v: 1
  kind: TokenKind
  issuedAt: number
  expiresAt: number
  record: TokenRecord
}

// A revoked token's record is replaced by this until the token would have expired, so that its
// holder is told "revoked" rather than "invalid", at no extra store read.
const REVOKED = JSON.stringify({ v: 1, revoked: true })

export function createTokenRegistry<R extends TokenRecord = TokenRecord>(deps: TokenRegistryDeps): TokenRegistry<R> {
  const { store, clock, kind, ttlMs } = deps
  const singleUse = deps.singleUse ?? false
  if (!(ttlMs > 0)) throw new RangeError(`token registry ${kind}: ttlMs must be positive`)

  const records = createIndexedRecords(store, {
    record: (hash) => `tok:${kind}:${hash}`,
    // Usernames may hold any character; encoding keeps them from forging another key's shape.
    index: (username) => `tokidx:${kind}:${encodeURIComponent(username)}`,
  })

  function parse(hash: string, raw: string | null): StoredToken<R> | null {
    if (raw === null || raw === REVOKED) return null
    try {
      const v = JSON.parse(raw) as StoredValue
      if (v?.v !== 1 || v.kind !== kind || typeof v.record?.username !== 'string') return null
      return { kind, hash, record: v.record as R, issuedAt: v.issuedAt, expiresAt: v.expiresAt }
    } catch {
      return null
    }
  }

  async function revokeByHash(hash: string): Promise<boolean> {
    if (!HASH_SHAPE.test(hash)) return false
    const raw = await records.get(hash)
    if (raw === null || raw === REVOKED) return false
    // take() is the one step that decides which of two racing revocations did it.
    const taken = await records.take(hash)
    if (taken === null) return false
    const found = parse(hash, taken)
    if (found) {
      await records.unindex(found.record.username, hash)
      const left = found.expiresAt - clock.now()
      if (left > 0) await records.overwrite(hash, REVOKED, left)
    }
    return true
  }

  async function find(token: string): Promise<StoredToken<R> | 'revoked' | null> {
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return null
    const hash = sha256Hex(token)
    // The store's TTL is the expiry (both stores honour it); single-use is one atomic take.
    const raw = singleUse ? await records.take(hash) : await records.get(hash)
    if (raw === REVOKED) return 'revoked'
    const found = parse(hash, raw)
    if (found && singleUse) await records.unindex(found.record.username, hash)
    return found
  }

  return {
    kind,
    hashOf: sha256Hex,

    async issue(record, opts) {
      const ttl = opts?.ttlMs ?? ttlMs
      if (!(ttl > 0)) throw new RangeError(`token registry ${kind}: ttlMs must be positive`)
      const token = randomToken(TOKEN_BYTES)
      const hash = sha256Hex(token)
      const issuedAt = clock.now()
      const expiresAt = issuedAt + ttl
      const value: StoredValue = { v: 1, kind, issuedAt, expiresAt, record }
      await records.put(opts?.indexed === false ? null : record.username, hash, JSON.stringify(value), ttl)
      return { token, hash, expiresAt }
    },

    async verify(token) {
      const found = await find(token)
      return found === 'revoked' ? null : found
    },

    find,

    async revoke(token) {
      if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) return false
      return revokeByHash(sha256Hex(token))
    },

    revokeByHash,

    async listByUser(username) {
      const found = (await records.list(username)).map(({ member, value }) => parse(member, value))
      return found.filter((t): t is StoredToken<R> => t !== null)
    },

    async revokeUser(username) {
      let n = 0
      for (const { member } of await records.list(username)) if (await revokeByHash(member)) n++
      return n
    },
  }
}
