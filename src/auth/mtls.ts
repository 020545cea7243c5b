import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { refuse } from '../errors.js'
import type { CompiledClient } from '../config/compile.js'
import { certificateSubjectKey } from '../util/distinguished-name.js'
import type { AuthResult } from './types.js'
import type { AuditSink } from '../observe.js'
import { fromAllowedNetwork, servicePrincipal } from './service-access.js'

/** The certificate a client presented on its TLS connection, as far as keygate looks at it. */
export interface ClientCertificate {
  /** it chains to tls.clientCa and is within its validity period */
  readonly verified: boolean
  /** subjectAltName entries keygate matches on: URI, DNS, email */
  readonly sans: readonly { readonly type: string; readonly value: string }[]
  readonly subjectKey: string
  /** Envoy's X-Forwarded-Client-Cert element for it (Hash, Subject, URI, DNS) */
  readonly forwardedElement: string
}

// A connection's certificate cannot change (renegotiation is disabled on the listener): it is read once.
const perSocket = new WeakMap<Socket, ClientCertificate | null>()

/** The client certificate of the connection a request came on, or null (plain HTTP, none sent). */
export function clientCertificateOf(req: IncomingMessage): ClientCertificate | null {
  const socket = connectionOf(req)
  if (!(socket as TLSSocket).encrypted) return null
  let cert = perSocket.get(socket)
  if (cert === undefined) {
    cert = readClientCertificate(socket as TLSSocket)
    perSocket.set(socket, cert)
  }
  return cert
}

/**
 * The key of the connection's cache entry. An HTTP/2 request's `req.socket` is a proxy Node makes
 * for each stream, so a cache keyed on it missed on every request (and read the certificate again);
 * its session's `socket` is one per connection.
 */
const connectionOf = (req: IncomingMessage): Socket =>
  req.httpVersionMajor < 2 ? req.socket : ((req as unknown as Http2ServerRequest).stream.session?.socket ?? req.socket)

const SAN_TYPES = new Set(['URI', 'DNS', 'email'])

function readClientCertificate(socket: TLSSocket): ClientCertificate | null {
  const x509 = socket.getPeerX509Certificate()
  if (!x509) return null
  const sans = parseSubjectAltName(x509.subjectAltName ?? '').filter((s) => SAN_TYPES.has(s.type))
  const hash = x509.fingerprint256.replace(/:/g, '').toLowerCase()
  // RFC 2253 order (most specific first), as Envoy writes it
  const subject = x509.subject.split('\n').reverse().join(',')
  const element = [`Hash=${hash}`, `Subject=${quoted(subject)}`]
  for (const san of sans) if (san.type !== 'email') element.push(`${san.type}=${quoted(san.value)}`)
  return {
    verified: socket.authorized,
    sans,
    subjectKey: certificateSubjectKey(x509.subject),
    forwardedElement: element.join(';'),
  }
}

/**
 * node:crypto's subjectAltName: `DNS:a, URI:b`, a value with a comma or quote in it JSON-quoted.
 */
function parseSubjectAltName(text: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = []
  const entry = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g
  for (let m = entry.exec(text); m !== null; m = entry.exec(text)) {
    const raw = m[2]!
    out.push({ type: m[1]!, value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw })
  }
  return out
}

/** A value safe inside the header: quoted when it has a separator, never a control character. */
function quoted(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '')
  return /[",;=]/.test(clean) ? `"${clean.replace(/["\\]/g, '\\$&')}"` : clean
}

export interface ClientCertAuthenticator {
  authenticate(cert: ClientCertificate, clientIp: string): AuthResult
}

const NOT_VALID: AuthResult = {
  kind: 'deny',
  refusal: refuse('E1001', { message: 'Client certificate not valid' }),
}
const NO_ENTRY: AuthResult = { kind: 'deny', refusal: refuse('E1004') }

/**
 * Scheme `mtls`: a verified certificate named by a `clients` entry (one of its URI, DNS or e-mail
 * subjectAltNames, or its subject) is that entry's service principal, limited like an ApiKey.
 * A certificate that does not verify (optional mode lets it through the handshake) or that no
 * entry names is refused: a caller that shows a certificate is judged by it.
 */
export function createClientCertAuthenticator(
  clients: readonly CompiledClient[],
  audit: AuditSink,
): ClientCertAuthenticator {
  const entries = clients.map((client) => ({
    client,
    ok: { kind: 'ok', principal: servicePrincipal('mtls', client) } as const satisfies AuthResult,
  }))
  const matches = (client: CompiledClient, cert: ClientCertificate): boolean =>
    client.san !== null
      ? cert.sans.some((s) =>
          s.type === 'DNS' ? s.value.toLowerCase() === client.san!.toLowerCase() : s.value === client.san,
        )
      : client.subject === cert.subjectKey
  return {
    authenticate(cert, clientIp) {
      if (!cert.verified) return NOT_VALID
      const found = entries.find((e) => matches(e.client, cert))
      if (!found) return NO_ENTRY
      return fromAllowedNetwork(found.client, clientIp, found.ok, audit)
    },
  }
}
