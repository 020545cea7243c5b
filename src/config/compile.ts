import { compileCidrs, type IpMatcher } from '../util/cidr.js'
import { canonicalHeaderName } from '../util/header-names.js'
import { sha256Hex } from '../util/secret.js'
import type { AccessLimits, Scheme, TokenType } from '../principal.js'
import type {
  ApiKeyConfig,
  ClientConfig,
  GatewayConfig,
  RateLimitConfig,
  UpstreamTlsConfig,
  UserConfig,
} from './schema.js'
import { subjectKey } from '../util/distinguished-name.js'
import { compileMapping, type HeaderMapping } from '../identity/mapping.js'

/** anonymous: no authentication at all · optional: credentials used when sent · authenticated · deny */
export type Policy = 'anonymous' | 'optional' | 'authenticated' | 'deny'

/** keygate's own endpoints; the gateway's endpoint table declares each one's paths, policy and handler. */
export type EndpointId =
  | 'health'
  | 'ready'
  | 'metrics'
  | 'jwks'
  | 'public-key'
  | 'forward-auth'
  | 'user-token-generate'
  | 'user-token-verify'
  | 'app-token-generate'
  | 'app-token-verify'
  | 'app-token-revoke'
  | 'authorize'
  | 'revoke'
  | 'refresh'
  | 'method-not-allowed'
  | 'sign-in'
  | 'sign-out'
  | 'oauth2-callback'

/**
 * How a route's path covers a request path. Configured routes are segment-aware prefixes; keygate's
 * own endpoints are exact paths (or the path and one token segment), so nothing under them is theirs.
 */
export type PathMatch = 'prefix' | 'exact' | 'token-segment'

export interface CompiledRoute {
  /** bounded label for logs and metrics: the configured name, else the prefix */
  readonly name: string
  readonly prefix: string
  readonly match: PathMatch
  readonly methods: ReadonlySet<string> | null
  readonly policy: Policy
  /** any one of these groups is enough; empty = no group needed */
  readonly groups: readonly string[]
  readonly schemes: ReadonlySet<Scheme> | null
  readonly tokenType: TokenType | null
  /** origin (http://host:port) or 'demo' */
  readonly upstream: string
  /** how to reach an https:// upstream (the route's upstreamTls, or the top-level one) */
  readonly upstreamTls: UpstreamTlsConfig | null
  readonly passCredentials: boolean
  /** upgrade protocols besides WebSocket tunnelled on this route (lower case) */
  readonly upgrades: ReadonlySet<string>
  readonly endpoint: EndpointId | null
  /** routes[].rateLimit: applies before the key's and the default limits */
  readonly rateLimit: RateLimitConfig | null
  /** the `aud` of the identity assertion sent on this route; null: no assertion */
  readonly assertionAudience: string | null
  /** identityHeaders.custom with this route's overrides (one shared object for routes without any) */
  readonly headerMapping: HeaderMapping
  /** a browser's page load without credentials is sent to the sign-in page (when signIn is configured) */
  readonly signIn: boolean
  /** counted by the rate limits; keygate's probes, scrapes and forward-auth are not */
  readonly rateLimited: boolean
}

/** A service caller (an ApiKey, a client certificate): where it may come from, what it may reach, who it is. */
export interface CompiledServiceAccess {
  readonly name: string
  readonly fromAllowedNetwork: IpMatcher | null
  readonly limits: AccessLimits
  readonly user: { name: string; id: number; email: string; groups: readonly string[] }
  readonly rateLimit: RateLimitConfig | null
}

export interface CompiledApiKey extends CompiledServiceAccess {
  /** sha256 hex of each accepted key */
  readonly keyHashes: readonly string[]
}

export interface CompiledClient extends CompiledServiceAccess {
  readonly san: string | null
  /** the subject's attributes as TYPE=value, sorted (clientSubjectKey) */
  readonly subject: string | null
}

/** The config's sections that compiling leaves as they are: the stages read them as the compiled config's own. */
type UncompiledSections = Readonly<Omit<GatewayConfig, 'routes' | 'apiKeys' | 'clients' | 'users'>>

export interface CompiledConfig extends UncompiledSections {
  readonly routes: readonly CompiledRoute[]
  /** canonical (lower-case, '_' as '-') names of every identity header, stripped from every client request */
  readonly identityHeaderNames: ReadonlySet<string>
  readonly apiKeys: readonly CompiledApiKey[]
  readonly clients: readonly CompiledClient[]
  readonly appTokenNetwork: IpMatcher | null
  readonly metricsAllowed: IpMatcher
  /** enabled local users by name: a token of a user not in here (removed, disabled) is refused */
  readonly users: ReadonlyMap<string, UserConfig>
}

/** One of keygate's own endpoints at one path (the gateway's endpoint table declares them). */
export interface EndpointMount {
  readonly endpoint: EndpointId
  readonly path: string
  /** exact unless said otherwise */
  readonly match?: PathMatch
  /** null: any method */
  readonly methods: readonly string[] | null
  readonly policy: Policy
  readonly schemes?: readonly Scheme[]
  /** true unless said otherwise */
  readonly rateLimited?: boolean
}

const LOOPBACK = ['127.0.0.0/8', '::1/128']

/** Everything that depends only on the config, built once per load and frozen; a reload builds a new one. */
const NO_UPGRADES: ReadonlySet<string> = new Set()

export function compileConfig(config: GatewayConfig): CompiledConfig {
  const mounts = tokenApiMounts(config)
  const defaultAudience = config.identityAssertion?.audience ?? null
  const globalMapping = compileMapping(config.identityHeaders.custom)
  const routeMapping = (r: GatewayConfig['routes'][number]): HeaderMapping =>
    r.identityHeaders
      ? compileMapping({ ...config.identityHeaders.custom, ...r.identityHeaders.custom })
      : globalMapping
  const configured = config.routes.map((r): CompiledRoute => ({
    name: r.name ?? r.path,
    prefix: r.path,
    match: 'prefix',
    methods: r.methods ? new Set(r.methods) : null,
    policy: r.deny ? 'deny' : r.anonymous ? 'anonymous' : 'authenticated',
    groups: r.require.groups,
    schemes: r.require.schemes ? new Set(r.require.schemes) : null,
    tokenType: r.require.tokenType ?? null,
    upstream: r.upstream ?? config.upstream,
    upstreamTls: r.upstreamTls ?? config.upstreamTls ?? null,
    passCredentials: r.passCredentials,
    upgrades: new Set(r.upgrades),
    endpoint: null,
    rateLimit: r.rateLimit ?? null,
    assertionAudience: r.assertionAudience ?? defaultAudience,
    headerMapping: routeMapping(r),
    signIn: r.signIn,
    rateLimited: true,
  }))
  const fallback: CompiledRoute = {
    name: 'default',
    prefix: '/',
    match: 'prefix',
    methods: null,
    groups: [],
    schemes: null,
    tokenType: null,
    policy: config.defaultPolicy,
    upstream: config.upstream,
    upstreamTls: config.upstreamTls ?? null,
    passCredentials: false,
    upgrades: NO_UPGRADES,
    endpoint: null,
    rateLimit: null,
    assertionAudience: defaultAudience,
    headerMapping: globalMapping,
    signIn: true,
    rateLimited: true,
  }

  const h = config.identityHeaders
  const service = config.serviceUser
  const serviceAccess = (entry: ApiKeyConfig | ClientConfig): CompiledServiceAccess => ({
    name: entry.name,
    fromAllowedNetwork: entry.cidr.length > 0 ? compileCidrs(entry.cidr) : null,
    limits: { paths: acrossMounts(entry.allow.paths, mounts), actionModules: new Set(entry.allow.actionModules) },
    user: entry.user ?? service,
    rateLimit: entry.rateLimit ?? null,
  })
  return deepFreeze({
    // the sections below replace the config's own of the same names
    ...config,
    routes: [...configured, fallback],
    identityHeaderNames: new Set(
      [
        h.user,
        h.userId,
        h.email,
        h.groups,
        h.scheme,
        ...(config.identityAssertion ? [config.identityAssertion.header] : []),
        // every mapped name, of every route: stripped from every request, whatever route it takes
        ...Object.keys(h.custom),
        ...config.routes.flatMap((r) => Object.keys(r.identityHeaders?.custom ?? {})),
      ].map(canonicalHeaderName),
    ),
    apiKeys: config.apiKeys.map((k): CompiledApiKey => ({
      ...serviceAccess(k),
      keyHashes: [...(k.keyHash ?? []).map((v) => v.slice('sha256:'.length)), ...(k.key ?? []).map(sha256Hex)],
    })),
    clients: config.clients.map((c): CompiledClient => ({
      ...serviceAccess(c),
      san: c.san ?? null,
      subject: c.subject === undefined ? null : subjectKey(c.subject),
    })),
    appTokenNetwork: config.tokens.appToken.cidr.length > 0 ? compileCidrs(config.tokens.appToken.cidr) : null,
    metricsAllowed: compileCidrs(config.metrics.allow ?? [...LOOPBACK, ...config.trustedProxies]),
    users: new Map(config.users.filter((u) => !u.disabled).map((u) => [u.username, u])),
  })
}

/** The token API's mounts, without a trailing slash. */
export const tokenApiMounts = (config: Pick<GatewayConfig, 'tokenApi'>): string[] =>
  config.tokenApi.mounts.map((m) => m.replace(/\/$/, ''))

/**
 * keygate's own endpoints as routes, ahead of the configured ones: each mount in order, then at
 * every path they own a 405 for any other method (never a trip upstream).
 */
export function compileEndpointRoutes(compiled: CompiledConfig, mounts: readonly EndpointMount[]): CompiledRoute[] {
  const headerMapping = compiled.routes.at(-1)!.headerMapping // the fallback route's: the global mapping
  const route = (m: EndpointMount): CompiledRoute => ({
    name: m.endpoint,
    prefix: m.path,
    match: m.match ?? 'exact',
    methods: m.methods ? new Set(m.methods) : null,
    policy: m.policy,
    groups: [],
    schemes: m.schemes ? new Set(m.schemes) : null,
    tokenType: null,
    upstream: compiled.upstream,
    upstreamTls: compiled.upstreamTls ?? null,
    passCredentials: false,
    upgrades: NO_UPGRADES,
    endpoint: m.endpoint,
    rateLimit: null,
    assertionAudience: null,
    headerMapping,
    signIn: false,
    rateLimited: m.rateLimited ?? true,
  })
  const owned = new Map(mounts.filter((m) => m.methods !== null).map((m) => [`${m.match ?? 'exact'} ${m.path}`, m]))
  const ownedPaths = [...owned.values()].map((m): EndpointMount => ({
    path: m.path,
    match: m.match,
    methods: null,
    policy: 'anonymous',
    endpoint: 'method-not-allowed',
    // a 405 costs nothing and tells nothing: never counted against a caller's limit
    rateLimited: false,
  }))
  return deepFreeze([...mounts, ...ownedPaths].map(route))
}

/**
 * The token endpoints answer under every mount (/mws/v1 and the wiki's /w/rest.php/mws/v1), so a
 * key allowed one of them under one mount is allowed it under all: old clients keep working.
 */
function acrossMounts(paths: readonly string[], mounts: readonly string[]): string[] {
  const out = new Set(paths)
  for (const p of paths) {
    const mount = mounts.find((m) => p === m || p.startsWith(`${m}/`))
    if (mount) for (const other of mounts) out.add(other + p.slice(mount.length))
  }
  return [...out]
}

function deepFreeze<T>(value: T): T {
  if (
    value &&
    typeof value === 'object' &&
    !Object.isFrozen(value) &&
    !(value instanceof Set) &&
    typeof value !== 'function'
  ) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
