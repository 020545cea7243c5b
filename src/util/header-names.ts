/**
 * The name a PHP/CGI upstream would see, or something stricter: case folded and every character
 * other than a letter or digit read as `-`. CGI turns `-` and `_` into `_`, and PHP's
 * $_SERVER turns `.` (and space, `[`) into `_` as well, so X-Auth.User, X-Auth_User and
 * X-Auth-User all become HTTP_X_AUTH_USER. Identity headers are matched on this form.
 */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase()
  return PLAIN_NAME.test(lower) ? lower : lower.replace(NOT_ALNUM, '-')
}
const PLAIN_NAME = /^[a-z0-9-]*$/
const NOT_ALNUM = /[^a-z0-9]/g

/** Headers keygate sets on every forwarded request itself, so a client's copy is never believed. */
export const SET_BY_GATEWAY: ReadonlySet<string> = new Set([
  'x-request-id',
  'x-real-ip',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-client-cert',
  'expect',
  'host',
])

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
  // the h2c upgrade's settings (RFC 9113 §3.2.1 calls it hop-by-hop): never tunnelled on
  'http2-settings',
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
