import type { Store } from '../store/types.js'

// Every token keygate keeps a record of (opaque tokens by hash, issued JWTs by jti) is one key
// with a TTL plus one member of its owner's index set, so that an operator can list and revoke a
// user's tokens. This is the one place that keeps the two in step:
//  - the index is written first: a record missing from its owner's index could not be revoked by
//    owner;
//  - the index lives as long as its longest member (Store.addToSet only ever moves its expiry later);
//  - members whose record is gone (expired, used, revoked) are dropped from the index when it is read.

export interface IndexedRecordKeys {
  /** the store key of one record */
  record(member: string): string
  /** the store key of an owner's index */
  index(owner: string): string
}

export interface IndexedEntry {
  readonly member: string
  readonly value: string
}

export function createIndexedRecords(store: Store, keys: IndexedRecordKeys) {
  return {
    /** owner null: a record nobody lists or revokes by owner, kept out of every index. */
    async put(owner: string | null, member: string, value: string, ttlMs: number): Promise<void> {
      if (owner !== null) await store.addToSet(keys.index(owner), member, ttlMs)
      await store.set(keys.record(member), value, ttlMs)
    },
    get: (member: string): Promise<string | null> => store.get(keys.record(member)),
    /** Gets and deletes the record in one atomic step; the caller unindexes it once it knows the owner. */
    take: (member: string): Promise<string | null> => store.take(keys.record(member)),
    unindex: (owner: string, member: string): Promise<void> => store.removeFromSet(keys.index(owner), member),
    /** Rewrites a record still indexed (after expire() said it exists). */
    overwrite: (member: string, value: string, ttlMs: number): Promise<void> =>
      store.set(keys.record(member), value, ttlMs),
    /** Moves a record's expiry; false when it is gone (expire() cannot bring back a deleted record). */
    expire: (member: string, ttlMs: number): Promise<boolean> => store.expire(keys.record(member), ttlMs),
    async remove(owner: string, member: string): Promise<boolean> {
      await store.removeFromSet(keys.index(owner), member)
      return store.del(keys.record(member))
    },
    /** The owner's live records (one store read each); stale index members are dropped. */
    async list(owner: string): Promise<IndexedEntry[]> {
      const index = keys.index(owner)
      const out: IndexedEntry[] = []
      for (const member of await store.members(index)) {
        const value = await store.get(keys.record(member))
        if (value !== null) out.push({ member, value })
        else await store.removeFromSet(index, member)
      }
      return out
    },
  }
}
