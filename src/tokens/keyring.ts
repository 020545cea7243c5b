import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { readFileSync } from 'node:fs'
import { calculateJwkThumbprint, errors, exportJWK, importPKCS8, importSPKI, type CryptoKey, type JWK } from 'jose'
import { KeygateError } from '../errors.js'
import type { GatewayConfig } from '../config/schema.js'

// The keys keygate signs with and verifies its own JWTs (and identity assertions) with.
// `secrets.jwt.keys` lists them for rotation: the first signs, every listed one verifies, and
// the public halves are published at /.well-known/jwks.json. The single-key form
// (`alg` + `secret` / `privateKey` / `publicKey`) is a keyring of one.

type JwtConfig = GatewayConfig['secrets']['jwt']
export type JwtAlg = JwtConfig['alg']

/** The key new tokens are signed with: a WebCrypto key for jose, a KeyObject for synchronous signing. */
export interface SigningKey {
  readonly kid: string
  readonly alg: JwtAlg
  readonly cryptoKey: CryptoKey
  readonly nodeKey: KeyObject
}

export interface Keyring {
  /** null when the first key has only its public half: such an instance verifies but cannot issue */
  readonly signing: SigningKey | null
  /** every algorithm of the ring: jose refuses any other before a key is looked at */
  readonly algorithms: readonly JwtAlg[]
  /** The verifying key a token's header names; a token without `kid` (issued before rotation) gets the first key of its algorithm. */
  readonly keyFor: (header: { alg?: string; kid?: string }) => CryptoKey
  /** true when HS256 had no secret and a random one was made: tokens die with the process */
  readonly ephemeral: boolean
  /** the public keys, as /.well-known/jwks.json serves them (HS256 secrets are never published) */
  readonly jwks: Readonly<{ keys: readonly JWK[] }>
}

const HS256_MIN_SECRET_BYTES = 32

/** PEM text as is; anything else is a file path. */
export function readPem(value: string, readFile: (path: string) => string): string {
  return value.includes('-----BEGIN') ? value : readFile(value)
}

export const spkiPem = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }).toString()

function assertKeyFitsAlg(alg: JwtAlg, key: KeyObject, where: string): void {
  const t = key.asymmetricKeyType
  const d = key.asymmetricKeyDetails
  const fits =
    alg === 'RS256'
      ? t === 'rsa' && (d?.modulusLength ?? 0) >= 2048
      : alg === 'ES256'
        ? t === 'ec' && d?.namedCurve === 'prime256v1'
        : alg === 'EdDSA'
          ? t === 'ed25519'
          : false
  if (!fits) throw new KeygateError('E1023', `${where}: the key does not fit ${alg}`)
}

interface RingKey {
  readonly kid: string
  /** the kid the single-key form gave this key (thumbprint, or a tagged hash of an HS256 secret) */
  readonly implicitKid: string
  readonly alg: JwtAlg
  readonly verifyKey: CryptoKey
  readonly signing: SigningKey | null
  readonly published: JWK | null
}

/** A stable kid for an HS256 secret that says nothing about it (a tagged hash, not the thumbprint of the secret). */
const hsKid = (secret: Buffer): string =>
  'hs-' + createHash('sha256').update('keygate hs256 kid\0').update(secret).digest('base64url').slice(0, 16)

async function importEntry(
  entry: { kid?: string; alg: JwtAlg; secret?: string; privateKey?: string; publicKey?: string },
  where: string,
  readFile: (path: string) => string,
): Promise<RingKey & { ephemeral: boolean }> {
  if (entry.alg === 'HS256') {
    const ephemeral = entry.secret === undefined || entry.secret === ''
    const secret = ephemeral ? randomBytes(32) : Buffer.from(entry.secret!, 'utf8')
    if (secret.length < HS256_MIN_SECRET_BYTES)
      throw new KeygateError('E1023', `${where}.secret is shorter than ${HS256_MIN_SECRET_BYTES} bytes`)
    // A non-extractable WebCrypto key: jose would re-import a raw secret (or a secret KeyObject) on every call.
    const key = await globalThis.crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ])
    const kid = entry.kid ?? hsKid(secret)
    return {
      kid,
      implicitKid: hsKid(secret),
      alg: 'HS256',
      verifyKey: key,
      signing: { kid, alg: 'HS256', cryptoKey: key, nodeKey: createSecretKey(secret) },
      published: null,
      ephemeral,
    }
  }
  if (!entry.privateKey && !entry.publicKey)
    throw new KeygateError('E1023', `${where}.privateKey is required for ${entry.alg}`)
  // node:crypto reads every PEM flavour (PKCS#8, PKCS#1, SEC1, SPKI, X.509); jose then gets normalised PKCS#8/SPKI.
  const priv = entry.privateKey ? createPrivateKey(readPem(entry.privateKey, readFile)) : null
  if (priv) assertKeyFitsAlg(entry.alg, priv, where)
  const pub = entry.publicKey ? createPublicKey(readPem(entry.publicKey, readFile)) : createPublicKey(priv!)
  assertKeyFitsAlg(entry.alg, pub, where)
  if (priv && entry.publicKey && spkiPem(createPublicKey(priv)) !== spkiPem(pub))
    throw new KeygateError('E1023', `${where}.publicKey is not the public half of privateKey`)
  const verifyKey = await importSPKI(spkiPem(pub), entry.alg, { extractable: true })
  const jwk = await exportJWK(verifyKey)
  const thumbprint = await calculateJwkThumbprint(jwk)
  const kid = entry.kid ?? thumbprint
  const signing: SigningKey | null = priv
    ? {
        kid,
        alg: entry.alg,
        cryptoKey: await importPKCS8(priv.export({ type: 'pkcs8', format: 'pem' }).toString(), entry.alg),
        nodeKey: priv,
      }
    : null
  return {
    kid,
    implicitKid: thumbprint,
    alg: entry.alg,
    verifyKey,
    signing,
    published: Object.freeze({ ...jwk, kid, alg: entry.alg, use: 'sig' }),
    ephemeral: false,
  }
}

/**
 * Imports every configured key once. Throws KeygateError E1023 (start-up only) when a key cannot
 * be decoded or does not fit its algorithm, so a bad key never surfaces as a per-request failure.
 */
export async function createKeyring(
  cfg: JwtConfig,
  opts: { readFile?: (path: string) => string } = {},
): Promise<Keyring> {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'))
  const entries: Array<{ where: string; entry: Parameters<typeof importEntry>[0] }> = cfg.keys
    ? cfg.keys.map((entry, i) => ({ where: `secrets.jwt.keys.${i}`, entry }))
    : [{ where: 'secrets.jwt', entry: cfg }]
  const ring: Array<RingKey & { ephemeral: boolean }> = []
  for (const { where, entry } of entries) {
    try {
      ring.push(await importEntry(entry, where, readFile))
    } catch (err) {
      if (err instanceof KeygateError) throw err
      throw new KeygateError('E1023', `${where}: cannot decode the key`, { cause: err })
    }
  }
  // Tokens signed before the switch to `keys` name the key by its implicit kid: they keep verifying.
  const byKid = new Map<string, RingKey>(ring.map((k) => [k.implicitKid, k]))
  for (const k of ring) byKid.set(k.kid, k)
  const firstOfAlg = new Map<string, RingKey>()
  for (const k of ring) if (!firstOfAlg.has(k.alg)) firstOfAlg.set(k.alg, k)
  return Object.freeze({
    signing: ring[0]!.signing,
    algorithms: Object.freeze([...firstOfAlg.keys()] as JwtAlg[]),
    keyFor(header: { alg?: string; kid?: string }) {
      const key = header.kid === undefined ? firstOfAlg.get(header.alg ?? '') : byKid.get(header.kid)
      // A kid is bound to its algorithm: a token naming an RS256 key with alg HS256 finds nothing.
      if (!key || key.alg !== header.alg) throw new errors.JWKSNoMatchingKey()
      return key.verifyKey
    },
    ephemeral: ring[0]!.ephemeral,
    jwks: Object.freeze({ keys: Object.freeze(ring.flatMap((k) => (k.published ? [k.published] : []))) }),
  })
}
