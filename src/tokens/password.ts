import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

// Password hashes in the config: `scrypt$N$r$p$saltB64$hashB64` (what `keygate hash-password` prints).
// node:crypto's async scrypt runs on the libuv pool, so a login does not stall the event loop.

export interface ScryptParams {
  readonly N: number
  readonly r: number
  readonly p: number
}

/** ~50–100 ms on the project's machines: costly for a guesser, bearable for a login. */
const DEFAULT_SCRYPT: ScryptParams = Object.freeze({ N: 2 ** 15, r: 8, p: 1 })

const SALT_BYTES = 16
const KEY_BYTES = 32
// Hashes come from config, but an absurd N would still stall every login: refuse it instead.
const MAX_MEMORY_BYTES = 256 * 1024 * 1024
const MAX_P = 16
const FORMAT = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/

/**
 * Stands in for the stored hash of a user who does not exist, so that "unknown user" costs one
 * scrypt at the default parameters, the same as "wrong password" (CONTRACT §6, E1026).
 * Its salt and hash are arbitrary: no password verifies against it in practice.
 */
export const DUMMY_PASSWORD_HASH =
  'scrypt$32768$8$1$a2V5Z2F0ZS1kdW1teS1zYWx0$a2V5Z2F0ZSBkdW1teSBoYXNoOiBubyBwYXNzd29yZCA='

// What OpenSSL's scrypt allocates: V (128·r·(N+2)) plus B (128·r·p).
const memoryOf = ({ N, r, p }: ScryptParams): number => 128 * r * (N + 2) + 128 * r * p

function derive(password: string, salt: Buffer, keyLen: number, params: ScryptParams): Promise<Buffer> {
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: memoryOf(params) + 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

interface ParsedHash {
  readonly params: ScryptParams
  readonly salt: Buffer
  readonly hash: Buffer
}

function parseHash(text: string): ParsedHash | null {
  const m = FORMAT.exec(text)
  if (!m) return null
  const N = Number(m[1])
  const r = Number(m[2])
  const p = Number(m[3])
  if (N < 2 || (N & (N - 1)) !== 0 || r < 1 || p < 1 || p > MAX_P || memoryOf({ N, r, p }) > MAX_MEMORY_BYTES)
    return null
  const salt = Buffer.from(m[4]!, 'base64')
  const hash = Buffer.from(m[5]!, 'base64')
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return null
  return { params: { N, r, p }, salt, hash }
}

/** Passwords are NFC-normalised first, so the same word typed on two systems hashes the same. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const hash = await derive(password, salt, KEY_BYTES, params)
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Constant-time comparison; false (never a throw) for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored)
  if (!parsed) {
    // A broken hash in the config must not answer faster than a wrong password.
    await dummyVerify(password)
    return false
  }
  let key: Buffer
  try {
    key = await derive(password, parsed.salt, parsed.hash.length, parsed.params)
  } catch {
    return false
  }
  return timingSafeEqual(key, parsed.hash)
}

/** The work of verifying a password for a user who does not exist; always false. */
export async function dummyVerify(password: string): Promise<false> {
  const parsed = parseHash(DUMMY_PASSWORD_HASH)!
  const key = await derive(password, parsed.salt, parsed.hash.length, parsed.params)
  timingSafeEqual(key, parsed.hash)
  return false
}
