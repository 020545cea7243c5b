import type { Clock } from '../clock.js'
import type { Store } from '../store/types.js'
import type { TokenType } from '../principal.js'
import { refused } from '../errors.js'
import { createIndexedRecords } from './indexed-records.js'
import { issueJwt, type JwtIssueClaims, type JwtIssueResult } from './own-tokens.js'
import type { JwtKeys } from './jwt-keys.js'

// Every JWT keygate issues is recorded by jti (never the token itself) until it expires:
// session, api and refresh tokens are valid only while their record exists (revocation deletes
// it), access tokens are stateless and the record only lets an operator list and revoke them.
// Verification accepts a token up to clockSkew past its exp, so a record outlives exp by as much:
// an operator can then find (and revoke) every token a gateway would still accept.

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

export function createIssuedTokens(deps: { store: Store; clock: Clock; /** secrets.jwt.clockSkew */ graceMs: number }) {
  const { store, clock, graceMs } = deps
  const records = createIndexedRecords(store, {
    record: (jti) => `jwt:${jti}`,
    index: (sub) => `jwtidx:${encodeURIComponent(sub)}`,
  })
  const parse = (text: string | null): IssuedRecord | null => {
    if (text === null) return null
    try {
      return JSON.parse(text) as IssuedRecord
    } catch {
      return null
    }
  }

  return {
    record: (r: IssuedRecord): Promise<void> =>
      records.put(r.sub, r.jti, JSON.stringify(r), Math.max(1, r.expiresAt + graceMs - clock.now())),
    get: async (jti: string): Promise<IssuedRecord | null> => parse(await records.get(jti)),
    /** Single use (refresh rotation): the record is gone after the first take. */
    async take(jti: string): Promise<IssuedRecord | null> {
      const r = parse(await records.take(jti))
      if (r) await records.unindex(r.sub, jti)
      return r
    },
    /** Sliding expiry; null when the record is gone (revoked or expired). */
    async slide(jti: string, ttlMs: number): Promise<IssuedRecord | null> {
      const r = parse(await records.get(jti))
      if (!r) return null
      const moved = { ...r, expiresAt: clock.now() + ttlMs }
      // expire() cannot resurrect a record deleted meanwhile; set() after it keeps the new expiry.
      if (!(await records.expire(jti, ttlMs))) return null
      await records.overwrite(jti, JSON.stringify(moved), ttlMs)
      return moved
    },
    remove: (r: Pick<IssuedRecord, 'jti' | 'sub'>): Promise<boolean> => records.remove(r.sub, r.jti),
    async listByUser(sub: string): Promise<IssuedRecord[]> {
      return (await records.list(sub)).map((e) => parse(e.value)).filter((r): r is IssuedRecord => r !== null)
    },
    async listAll(): Promise<IssuedRecord[]> {
      const keys = await store.keys('jwt:')
      const found = await Promise.all(keys.map(async (k) => parse(await store.get(k))))
      return found.filter((r): r is IssuedRecord => r !== null)
    },
  }
}

export type IssuedTokens = ReturnType<typeof createIssuedTokens>

/**
 * Issues a keygate JWT and records it (by jti) in one step: /api/authorize and the sign-in page
 * make their tokens, sessions above all, the same way. E1024 when it cannot be signed, E1025 when
 * it cannot be recorded (a session that is not recorded would be refused at once).
 */
export async function issueRecorded(
  deps: { keys: JwtKeys; issued: IssuedTokens; clock: Clock },
  claims: JwtIssueClaims,
  meta: { clientId: string; clientIp: string },
): Promise<JwtIssueResult> {
  const made = await issueJwt(deps.keys, claims, deps.clock)
  if (!made.ok) return made
  try {
    await deps.issued.record({
      jti: made.jti,
      type: claims.type,
      sub: claims.sub,
      uid: claims.uid,
      clientId: meta.clientId,
      clientIp: meta.clientIp,
      issuedAt: made.issuedAt,
      expiresAt: made.expiresAt,
    })
  } catch {
    return refused('E1025')
  }
  return made
}
