// Where a person goes back to after signing in (or out): the `rd` return address, kept only when
// it names keygate's own origin or a host the operator listed. Everything else becomes '/', so a
// link to the sign-in page can never send a person (with a fresh session) somewhere else.

const MAX_LENGTH = 2048
// Control characters, whitespace and backslashes: browsers strip or reinterpret them (`/\evil`
// is `//evil` to Chromium, a tab inside `java\tscript:` vanishes); no honest return address has them.
// Percent-encoded CR, LF and NUL are refused too, however often encoded, whatever layer would decode them later.
const NEVER = /[\u0000-\u0020\u007f-\u009f\\\u2028\u2029\ufeff]|%(25)*0[0ad]/i
const ABSOLUTE_HTTP = /^https?:\/\/[^/]/i

export interface ReturnPolicy {
  /** keygate's origin as the browser sees it (https://wiki.example.org); null when the Host is unusable */
  readonly ownOrigin: string | null
  /** hosts (exact, or `.example.org` for any subdomain) a return address may name besides ownOrigin */
  readonly allowedHosts: readonly string[]
}

/** The return address to send the person to: `rd` when it is safe, else '/'. */
export function safeReturnAddress(rd: string | null | undefined, policy: ReturnPolicy): string {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > MAX_LENGTH || NEVER.test(rd)) return '/'
  if (rd.startsWith('/')) {
    if (rd.startsWith('//')) return '/'
    // Resolved against a stand-in origin: a path that climbs or encodes its way out stays on it.
    const base = new URL('https://keygate.invalid')
    const u = parse(rd, base)
    if (!u || u.origin !== base.origin) return '/'
    return u.pathname + u.search + u.hash
  }
  if (!ABSOLUTE_HTTP.test(rd)) return '/' // javascript:, data:, https:evil, mailto:, relative paths
  const u = parse(rd)
  if (!u || u.username !== '' || u.password !== '' || !/^https?:$/.test(u.protocol)) return '/'
  if (policy.ownOrigin !== null && u.origin === policy.ownOrigin) return u.href
  // Another host must be listed, on the standard port, and no weaker a scheme than keygate's own.
  if (u.port !== '') return '/'
  if (u.protocol === 'http:' && policy.ownOrigin?.startsWith('https:') !== false) return '/'
  return policy.allowedHosts.some((h) => hostMatches(u.hostname, h)) ? u.href : '/'
}

function hostMatches(host: string, allowed: string): boolean {
  const a = allowed.toLowerCase()
  return a.startsWith('.') ? host.endsWith(a) && host.length > a.length : host === a
}

function parse(text: string, base?: URL): URL | null {
  try {
    return new URL(text, base)
  } catch {
    return null
  }
}

const HOST_HEADER = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:\d{1,5})?$/i

/**
 * keygate's origin as the browser sees it: signIn.publicUrl when set, else the request's Host with
 * the scheme the request came in with (https only when it came straight over TLS or a trusted
 * proxy says so). null for a Host header that is not a plain host[:port].
 */
export function originOf(host: string | undefined, https: boolean, publicUrl: string | undefined): string | null {
  if (publicUrl) return new URL(publicUrl).origin
  if (host === undefined || !HOST_HEADER.test(host)) return null
  try {
    return new URL(`${https ? 'https' : 'http'}://${host}`).origin
  } catch {
    return null
  }
}

/**
 * The `rd` of a query string. keygate's own redirects encode it; nginx's example writes the
 * original URL in raw (`?rd=$scheme://$http_host$request_uri`), so a raw absolute URL or path
 * after `rd=` is taken whole, its own `&` and `?` included.
 */
export function returnAddressOf(query: string): string | null {
  const raw = /(?:^|&)rd=((?:https?:\/\/|\/).*)$/i.exec(query)
  return raw ? raw[1]! : new URLSearchParams(query).get('rd')
}
