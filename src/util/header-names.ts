/**
 * The name a PHP/CGI upstream would see: case folded and `_` read as `-`
 * (CGI turns both into HTTP_X_AUTH_USER). Identity headers are matched on this form.
 */
export const canonicalHeaderName = (name: string): string => name.toLowerCase().replace(/_/g, '-')

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must never pass on. */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
])

/** The header names a Connection header lists: hop-by-hop for this message too (RFC 9110 §7.6.1). */
export function connectionListed(connection: string | string[] | undefined): ReadonlySet<string> {
  if (connection === undefined) return EMPTY
  return new Set(String(connection).split(',').map((t) => t.trim().toLowerCase()).filter(Boolean))
}
const EMPTY: ReadonlySet<string> = new Set()
