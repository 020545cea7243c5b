import type { IncomingHttpHeaders } from 'node:http'

// Which refused requests are a person's page load (sent to the sign-in page) and which are an
// API client's (kept on 401 JSON). Anything that is not clearly a browser navigation is an API client.

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/** The quality the Accept header gives a media type (its exact entry, or the best wildcard that covers it). */
function qualityOf(accept: string, type: string): number {
  const [major] = type.split('/')
  let exact: number | null = null
  let wildcard = 0
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase())
    const qParam = params.find((p) => p.startsWith('q='))
    const q = qParam ? Number(qParam.slice(2)) : 1
    if (!Number.isFinite(q)) continue
    if (range === type) exact = Math.max(exact ?? 0, q)
    else if (range === `${major}/*` || range === '*/*') wildcard = Math.max(wildcard, q)
  }
  return exact ?? wildcard
}

/**
 * GET or HEAD, with no Authorization and no X-Requested-With, not a script's fetch
 * (Sec-Fetch-Mode other than navigate), whose Accept names text/html and prefers it to JSON.
 */
export function isPageLoad(method: string, headers: IncomingHttpHeaders): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false
  if (headers.authorization !== undefined || headers['x-requested-with'] !== undefined) return false
  const mode = first(headers['sec-fetch-mode'])
  if (mode !== undefined && mode !== 'navigate') return false
  const accept = first(headers.accept)
  if (!accept || !/text\/html/i.test(accept)) return false
  const html = qualityOf(accept, 'text/html')
  return html > 0 && html >= qualityOf(accept, 'application/json')
}

/** Where the 302 sends the person: the sign-in page (on publicUrl when set) with the original URL as `rd`. */
export function signInLocation(signInPath: string, publicUrl: string | undefined, originalUrl: string): string {
  return `${publicUrl ?? ''}${signInPath}?rd=${encodeURIComponent(originalUrl)}`
}

/** The URL the browser asked for, from the Host it sent and the scheme it used; just the target when the Host is unusable. */
export function originalUrlOf(scheme: string, host: string | undefined, target: string): string {
  return host && /^[A-Za-z0-9.:[\]-]+$/.test(host) ? `${scheme}://${host}${target}` : target
}

/** The 302 for a page load the decision sent to sign in, as keygate's proxy answers it. */
export function signInRedirectLocation(
  signIn: { readonly path: string; readonly publicUrl?: string | undefined },
  headers: IncomingHttpHeaders,
  https: boolean,
  target: string,
): string {
  return signInLocation(
    signIn.path,
    signIn.publicUrl,
    originalUrlOf(https ? 'https' : 'http', first(headers.host), target),
  )
}
