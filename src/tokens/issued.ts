import type { Clock } from '../clock.js'
import type { Store } from '../store/types.js'
import type { TokenType } from '../auth/types.js'

// Every JWT keygate issues is recorded by jti (never the token itself) until it expires:
// session, api and refresh tokens are valid only while their record exists (revocation deletes
// it), access tokens are stateless and the record only lets an operator list and revoke them.

export interface IssuedRecord {
  readonly jti: string
  readonly type: TokenType
  readonly sub: string
  readonly uid: number
  readonly clientId: string
  readonly clientIp: string
  /** epoch ms */
  readonly issuedAt: number
  /** epoch ms; sliding sessions move it */
  readonly expiresAt: number
}

/** Types whose validity depends on their record. */
export const RECORDED_TYPES: ReadonlySet<TokenType> = new Set(['session', 'api', 'refresh'])

const recordKey = (jti: string) => `jwt:${jti}`
const userIndexKey = (sub: string) => `jwtidx:${encodeURIComponent(sub)}`

export function createIssuedTokens(deps: { store: Store; clock: Clock }) {
  const { store, clock } = deps
  const ttlOf = (expiresAt: number) => Math.max(1, expiresAt - clock.now())
  const parse = (text: string | null): IssuedRecord | null => {
    if (text === null) return null
    try {
      return JSON.parse(text) as IssuedRecord
    } catch {
      return null
    }
  }

  return {
    async record(r: IssuedRecord): Promise<void> {
      await store.set(recordKey(r.jti), JSON.stringify(r), ttlOf(r.expiresAt))
      await store.addToSet(userIndexKey(r.sub), r.jti, ttlOf(r.expiresAt))
    },
    get: async (jti: string): Promise<IssuedRecord | null> => parse(await store.get(recordKey(jti))),
    /** Single use (refresh rotation): the record is gone after the first take. */
    take: async (jti: string): Promise<IssuedRecord | null> => parse(await store.take(recordKey(jti))),
    /** Sliding expiry; null when the record is gone (revoked or expired). */
    async slide(jti: string, ttlMs: number): Promise<IssuedRecord | null> {
      const r = parse(await store.get(recordKey(jti)))
      if (!r) return null
      const moved = { ...r, expiresAt: clock.now() + ttlMs }
      // expire() cannot resurrect a record deleted meanwhile; set() after it keeps the new expiry.
      if (!(await store.expire(recordKey(jti), ttlMs))) return null
      await store.set(recordKey(jti), JSON.stringify(moved), ttlMs)
      return moved
    },
    async remove(r: Pick<IssuedRecord, 'jti' | 'sub'>): Promise<boolean> {
      await store.removeFromSet(userIndexKey(r.sub), r.jti)
      return store.del(recordKey(r.jti))
    },
    async listByUser(sub: string): Promise<IssuedRecord[]> {
      const jtis = await store.members(userIndexKey(sub))
      const records = await Promise.all(jtis.map(async (jti) => parse(await store.get(recordKey(jti)))))
      return records.filter((r): r is IssuedRecord => r !== null)
    },
    async listAll(): Promise<IssuedRecord[]> {
      const keys = await store.keys('jwt:')
      const records = await Promise.all(keys.map(async (k) => parse(await store.get(k))))
      return records.filter((r): r is IssuedRecord => r !== null)
    },
  }
}

export type IssuedTokens = ReturnType<typeof createIssuedTokens>
