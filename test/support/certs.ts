import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Certificates are made by the openssl CLI in a test's temp dir: none is checked in.

export interface KeyPair {
  readonly cert: string
  readonly key: string
  /** the PEM texts */
  readonly certPem: string
  readonly keyPem: string
}

const openssl = (args: readonly string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: 'pipe' })

/** `openssl req`'s arguments for a new key, written unencrypted to `key`: EC P-256, fast to make and to handshake with. */
const newKey = (key: string) => ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key]

/** A self-signed CA. */
export function makeCa(dir: string, name: string): KeyPair {
  const cert = join(dir, `${name}.pem`)
  const key = join(dir, `${name}.key`)
  openssl(
    [
      'req',
      '-x509',
      ...newKey(key),
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  )
  return pair(cert, key)
}

export interface CertOptions {
  /** the subject, like /CN=billing/O=Example */
  readonly subject: string
  /** subjectAltName entries: DNS:localhost, IP:127.0.0.1, URI:spiffe://…, email:… */
  readonly san?: readonly string[]
  readonly usage: 'server' | 'client'
  /** negative: already expired */
  readonly days?: number
}

/** A certificate signed by `ca`, written beside it as <name>.pem and <name>.key. */
export function issueCert(dir: string, ca: KeyPair, name: string, options: CertOptions): KeyPair {
  const cert = join(dir, `${name}.pem`)
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  const lines = [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${options.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
  ]
  if (options.san?.length) lines.push(`subjectAltName=${options.san.join(',')}`)
  writeFileSync(ext, `${lines.join('\n')}\n`)
  openssl(['req', ...newKey(key), '-out', csr, '-subj', options.subject], dir)
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-days',
      String(options.days ?? 1),
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    dir,
  )
  return pair(cert, key)
}

/** A server certificate for 127.0.0.1 and localhost. */
export const serverCert = (dir: string, ca: KeyPair, name: string) =>
  issueCert(dir, ca, name, { subject: `/CN=${name}`, san: ['DNS:localhost', 'IP:127.0.0.1'], usage: 'server' })

const pair = (cert: string, key: string): KeyPair => ({
  cert,
  key,
  certPem: readFileSync(cert, 'utf8'),
  keyPem: readFileSync(key, 'utf8'),
})
