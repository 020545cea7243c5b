import { constants, createPrivateKey, createPublicKey, privateDecrypt, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { KeygateError, refused, type Refused } from '../errors.js'
import { readPem } from '../tokens/keyring.js'
import type { GatewayConfig } from '../config/schema.js'

// Suffit's encrypted passwords: with `encrypted: true` the password field is base64 of an RSA-OAEP
// (SHA-256) ciphertext made with keygate's login key, published at GET /api/public-key.
// PKCS#1 v1.5 is not offered: Node refuses to decrypt it since the Marvin attack (CVE-2023-46809),
// and a hand-made unpadding would bring the timing oracle back.

const LOGIN_KEY_ALGORITHM = 'RSA-OAEP-256'
const MIN_MODULUS_BITS = 2048
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

export interface LoginKeys {
  /** the answer of GET /api/public-key (the first key's), or null when no login key is configured */
  readonly published: { public_key: string; jwk: Record<string, unknown>; algorithm: string } | null
  /** the password inside a base64 ciphertext, or null when no configured key decrypts it */
  decrypt(base64: string): string | null
}

/**
 * Imports `secrets.loginKeys` once (start-up and reload: a bad key is refused there, never per request).
 * The first key is published; every listed key decrypts, so a key can be rotated in while clients
 * still hold the old public key.
 */
export function createLoginKeys(
  cfg: GatewayConfig['secrets']['loginKeys'],
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): LoginKeys {
  const keys = cfg.map((k, i) => {
    let key: KeyObject
    try {
      key = createPrivateKey(readPem(k.privateKey, readFile))
    } catch (err) {
      throw new KeygateError('E1023', `secrets.loginKeys[${i}].privateKey cannot be read as a private key`, {
        cause: err,
      })
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
    if (key.asymmetricKeyType !== 'rsa' || bits < MIN_MODULUS_BITS)
      throw new KeygateError(
        'E1023',
        `secrets.loginKeys[${i}].privateKey must be an RSA key of ${MIN_MODULUS_BITS} bits or more`,
      )
    return { key, kid: k.kid ?? `login-${i + 1}`, bytes: bits / 8 }
  })
  const first = keys[0]
  const published = first
    ? (() => {
        const pub = createPublicKey(first.key)
        return {
          public_key: pub.export({ type: 'spki', format: 'pem' }).toString(),
          jwk: { ...pub.export({ format: 'jwk' }), kid: first.kid, alg: LOGIN_KEY_ALGORITHM, use: 'enc' },
          algorithm: LOGIN_KEY_ALGORITHM,
        }
      })()
    : null
  return {
    published,
    decrypt(base64) {
      // `openssl base64` wraps its lines: line breaks are not part of the ciphertext.
      const text = base64.replace(/\r?\n/g, '')
      if (!BASE64.test(text)) return null
      const ciphertext = Buffer.from(text, 'base64')
      for (const k of keys) {
        if (ciphertext.length !== k.bytes) continue
        try {
          const plain = privateDecrypt(
            { key: k.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
            ciphertext,
          )
          return utf8.decode(plain)
        } catch {
          // not this key's: the next one may be
        }
      }
      return null
    },
  }
}

const TRUE = new Set(['true', '1', 'on', 'yes'])
/** Suffit's `encrypted` flag, as JSON true or a form's text. */
export const isEncrypted = (fields: Record<string, string>): boolean => TRUE.has((fields.encrypted ?? '').toLowerCase())

const RSA_DECODE_ERROR = refused('E1023')
const NO_LOGIN_KEY = refused('E1023', undefined, {
  message: 'RSA decode error: no login key is configured (secrets.loginKeys)',
})

/** The password a login sent: as is, or decrypted when the request says `encrypted`. */
export function passwordOf(keys: LoginKeys, fields: Record<string, string>): { ok: true; password: string } | Refused {
  const sent = fields.password ?? ''
  if (!isEncrypted(fields)) return { ok: true, password: sent }
  if (!keys.published) return NO_LOGIN_KEY
  const password = keys.decrypt(sent)
  return password ? { ok: true, password } : RSA_DECODE_ERROR
}
