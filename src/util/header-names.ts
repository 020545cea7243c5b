/**
 * The name a PHP/CGI upstream would see: case folded and `_` read as `-`
 * (CGI turns both into HTTP_X_AUTH_USER). Identity headers are matched on this form.
 */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase()
  return lower.includes('_') ? lower.replace(/_/g, '-') : lower
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must never pass on. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** The header names a Connection header lists: hop-by-hop for this message too (RFC 9110 §7.6.1). */
export function connectionListed(connection: string | string[] | undefined): ReadonlySet<string> {
  if (connection === undefined) return EMPTY
  // The usual values name only headers that are hop-by-hop anyway: no Set per message.
  if (typeof connection === 'string' && ONLY_PERSISTENCE.test(connection)) return EMPTY
  return new Set(
    String(connection)
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  )
}
const EMPTY: ReadonlySet<string> = new Set()
const ONLY_PERSISTENCE = /^\s*(?:keep-alive|close)\s*$/i
