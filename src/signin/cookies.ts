import type { IncomingHttpHeaders } from 'node:http'
import type { SignInConfig } from '../config/schema.js'
import { HOST_ONLY_PREFIX } from '../util/raw-headers.js'

// The browser's cookies for signing in: the session (CONTRACT §7), the CSRF cookie of the forms,
// and the flow cookie that ties a provider's callback to the browser that started it.

export type CookieSettings = SignInConfig['cookie']

/** Whether the browser reached keygate over https: directly (TLS socket) or per a trusted proxy. */
export function cameOverHttps(headers: IncomingHttpHeaders, encrypted: boolean, peerTrusted: boolean): boolean {
  if (encrypted) return true
  if (!peerTrusted) return false
  const proto = headers['x-forwarded-proto']
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase()
  return first === 'https'
}

export interface CookieJar {
  readonly secure: boolean
  /** the session cookie's name: `__Host-` + name when Secure and no domain */
  readonly sessionName: string
  session(value: string, maxAgeSec: number): string
  /** every name a session cookie of ours may have been set under, each cleared */
  clearSessions(): string[]
  csrf(value: string): string
  flow(value: string, maxAgeSec: number): string
}

export const CSRF_COOKIE = 'keygate_csrf'
export const FLOW_COOKIE = 'keygate_flow'
/** The sign-in form's and flow's cookies under every name they may have. */
export const signInCookieNames: readonly string[] = [CSRF_COOKIE, FLOW_COOKIE].flatMap((n) => [
  n,
  `${HOST_ONLY_PREFIX}${n}`,
])

/** Every name the session cookie can have: `__Host-` + name when Secure without a domain, else the name. */
export const sessionCookieNames = (name: string): string[] => [`${HOST_ONLY_PREFIX}${name}`, name]

export function cookieJar(settings: CookieSettings, https: boolean): CookieJar {
  const secure = settings.secure === 'auto' ? https : settings.secure
  const hostOnly = settings.domain === ''
  const prefixed = (name: string) => (secure && hostOnly ? `${HOST_ONLY_PREFIX}${name}` : name)
  const attributes = (maxAgeSec: number, domain: boolean) =>
    `Path=/; Max-Age=${maxAgeSec}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}${
      domain && !hostOnly ? `; Domain=${settings.domain}` : ''
    }`
  const sessionName = prefixed(settings.name)
  const ownHost = (name: string) => (secure ? `${HOST_ONLY_PREFIX}${name}` : name)
  return {
    secure,
    sessionName,
    session: (value, maxAgeSec) => `${sessionName}=${value}; ${attributes(maxAgeSec, true)}`,
    clearSessions: () =>
      sessionCookieNames(settings.name)
        .filter((n) => n !== sessionName && (secure || !n.startsWith(HOST_ONLY_PREFIX)))
        .map((n) => `${n}=; ${attributes(0, true)}`),
    // The form and flow cookies stay on keygate's own host: only keygate reads them.
    csrf: (value) => `${ownHost(CSRF_COOKIE)}=${value}; ${attributes(60 * 60 * 24, false)}`,
    flow: (value, maxAgeSec) => `${ownHost(FLOW_COOKIE)}=${value}; ${attributes(maxAgeSec, false)}`,
  }
}

/** The value of a cookie sent under its name or its `__Host-` name (the first one found). */
export function readCookie(headers: IncomingHttpHeaders, name: string): string | null {
  const header = headers.cookie
  if (!header) return null
  let plain: string | null = null
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const key = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    if (key === `${HOST_ONLY_PREFIX}${name}` && value) return value
    if (key === name && value) plain ??= value
  }
  return plain
}
