// Who a caller is, in the words every layer shares: the schemes a caller can come by, the
// token types keygate issues, and the principal that authentication produces. The lists are
// the single source: the config schema derives its enums from them, checks test against them.

/** The browser session cookie set by /api/authorize with token_type session. */
export const SESSION_COOKIE = 'keygate_session'

export const SCHEMES = ['apikey', 'apptoken', 'bearer', 'session', 'upstream', 'mtls'] as const
export type Scheme = (typeof SCHEMES)[number]

export const TOKEN_TYPES = ['access', 'session', 'refresh', 'api'] as const
export type TokenType = (typeof TOKEN_TYPES)[number]
/** The types that authenticate a request (and that a route may require): a refresh token only buys new tokens. */
export const REQUEST_TOKEN_TYPES = ['access', 'session', 'api'] as const satisfies readonly TokenType[]

export const isTokenType = (value: unknown): value is TokenType =>
  typeof value === 'string' && (TOKEN_TYPES as readonly string[]).includes(value)

const JTI_SHAPE = /^[\x21-\x7e]{1,256}$/
/** What a jti (a token's id) may look like wherever one comes from outside: printable ASCII, bounded. */
export const isJti = (value: string): boolean => JTI_SHAPE.test(value)

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
  /** ApiKey and client-certificate callers: what the entry lists; its name, for logs and rate limits */
  readonly limits?: AccessLimits
  readonly keyName?: string
  /** an external issuer's verified token claims, for identityHeaders.custom's {claim:…} */
  readonly claims?: Readonly<Record<string, unknown>>
}
