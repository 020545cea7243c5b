import type { Refusal } from '../errors.js'

/** The browser session cookie set by /api/authorize with token_type session. */
export const SESSION_COOKIE = 'keygate_session'
/**
 * Its name when Secure (no Domain, Path=/): a browser accepts a __Host- cookie only from this very
 * host over HTTPS, so a sibling subdomain cannot plant one (cookie tossing).
 */
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`

export type Scheme = 'apikey' | 'apptoken' | 'bearer' | 'session' | 'upstream'

export type TokenType = 'access' | 'session' | 'refresh' | 'api'

/** What a caller may reach beyond the routes: set for ApiKey callers, absent for full access. */
export interface AccessLimits {
  /** segment-aware path prefixes */
  readonly paths: readonly string[]
  /** Action API modules: "opensearch", or "query+search" for a query submodule */
  readonly actionModules: ReadonlySet<string>
}

/** Who the caller is, after authentication. */
export interface Principal {
  readonly scheme: Scheme
  readonly username: string
  readonly uid: number
  readonly realName: string
  readonly email: string
  readonly groups: readonly string[]
  /** for Bearer and session callers */
  readonly tokenType?: TokenType
  readonly jti?: string
  /** set for tokens of an external issuer (`issuers:`): their jti is the issuer's, not keygate's */
  readonly issuer?: string
  /** epoch ms */
  readonly expiresAt?: number
  /** keygate JWTs of a refresh chain: the family that logout ends */
  readonly family?: string
  /** ApiKey callers: what the key lists; the key's name, for logs */
  readonly limits?: AccessLimits
  readonly keyName?: string
  /** an external issuer's verified token claims, for identityHeaders.custom's {claim:…} */
  readonly claims?: Readonly<Record<string, unknown>>
}

/** What an authenticator sees of the request: already normalised, never the raw socket. */
export interface Credentials {
  /** the value after the scheme word of the single Authorization header */
  readonly token: string
  readonly clientIp: string
}

export type AuthResult =
  | { readonly kind: 'skip' } // not my kind of credential: try the next
  | { readonly kind: 'ok'; readonly principal: Principal }
  | { readonly kind: 'deny'; readonly refusal: Refusal } // mine, and wrong: stop

export interface Authenticator {
  readonly scheme: Scheme
  /** Rejects with StoreUnavailableError when the store cannot be reached. */
  authenticate(credentials: Credentials): AuthResult | Promise<AuthResult>
}
