// What both stores enforce the same way, so that the contract suite holds for either.

/** A TTL is a positive number of ms; Redis PX wants an integer, so a fraction rounds up. */
export function checkTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttl must be a positive number of ms, got ${ttlMs}`)
  return Math.ceil(ttlMs)
}

/**
 * Hands a published message to one subscriber. A throwing subscriber must not stop delivery to
 * the others, crash the process, nor break the Redis connection's parser: it becomes a warning.
 */
export function deliver(handler: (message: string) => void, message: string): void {
  try {
    handler(message)
  } catch (err) {
    process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'StoreSubscriberWarning')
  }
}
