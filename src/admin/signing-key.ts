import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { EXIT_OK, UsageError, type AdminIo } from './common.js'

// `keygate keys new-signing-key --alg ES256`: a fresh key pair for secrets.jwt.keys, printed as
// the entry to put FIRST in the list (it then signs; the keys after it still verify).

const ALGS = ['ES256', 'EdDSA', 'RS256', 'HS256'] as const
type SigningAlg = (typeof ALGS)[number]

const indent = (pem: string, spaces: number): string =>
  pem
    .trimEnd()
    .split('\n')
    .map((l) => ' '.repeat(spaces) + l)
    .join('\n')

function keyPair(alg: Exclude<SigningAlg, 'HS256'>): { privateKey: string; publicKey: string } {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 3072 })
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }
}

/** The key id: the day it was made and a random tail, so two keys made the same day differ. */
const newKid = (now: Date): string => `${now.toISOString().slice(0, 10)}-${randomBytes(3).toString('hex')}`

export function runNewSigningKey(values: { alg?: string; json?: boolean }, io: AdminIo, now = new Date()): number {
  const alg = (values.alg ?? 'ES256') as SigningAlg
  if (!ALGS.includes(alg)) throw new UsageError(`--alg must be one of ${ALGS.join(', ')}`)
  const kid = newKid(now)
  if (alg === 'HS256') {
    const secret = randomBytes(32).toString('base64url')
    if (values.json) io.out(JSON.stringify({ kid, alg, secret }) + '\n')
    else
      io.out(`# Put this entry FIRST under secrets.jwt.keys in gateway.yaml: it signs from the next reload,
# the keys after it keep verifying the tokens they signed. Keep the secret out of version control
# (e.g. secret: \${KEYGATE_JWT_SECRET_${kid.replace(/-/g, '_').toUpperCase()}}).
    - kid: ${kid}
      alg: HS256
      secret: ${secret}
`)
    return EXIT_OK
  }
  const { privateKey, publicKey } = keyPair(alg)
  if (values.json) {
    io.out(JSON.stringify({ kid, alg, privateKey, publicKey }) + '\n')
    return EXIT_OK
  }
  io.out(`# Put this entry FIRST under secrets.jwt.keys in gateway.yaml: it signs from the next reload,
# and the keys after it keep verifying the tokens they signed. Keep the old entry until its last
# token has expired (then it can keep only its publicKey, or go). The private key may also live in
# a file: privateKey: /etc/keygate/${kid}.pem
    - kid: ${kid}
      alg: ${alg}
      privateKey: |
${indent(privateKey, 8)}

    # Its public half, published at /.well-known/jwks.json (an instance that only verifies needs
    # just this, as publicKey):
${publicKey
  .trimEnd()
  .split('\n')
  .map((l) => `    # ${l}`)
  .join('\n')}
`)
  return EXIT_OK
}
