import { randomBytes } from 'node:crypto'

/**
 * Request ids: a random prefix per process (72 bits, so processes and restarts never share one)
 * and a counter. Unique, and not guessable beyond "the next one of this process", which is all a
 * log and support id needs; a UUID per request cost several times more.
 */
export function createRequestIds(): () => string {
  const prefix = `${randomBytes(9).toString('base64url')}-`
  let counter = 0
  return () => `${prefix}${(++counter).toString(36)}`
}
