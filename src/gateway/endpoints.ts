import type { Clock } from '../clock.js'
import { tokenApiMounts, type CompiledConfig, type EndpointMount } from '../config/compile.js'
import type { SignInConfig } from '../config/schema.js'
import type { AuditSink } from '../observe.js'
import type { Store } from '../store/types.js'
import type { Metrics } from '../metrics/catalogue.js'
import type { Decide } from '../pipeline/index.js'
import type { Authenticator } from '../auth/types.js'
import type { LoginLimiter, UserDirectory } from '../auth/login.js'
import type { AppTokenRecord } from '../auth/apptoken.js'
import { publicJwks, type JwtKeys } from '../tokens/jwt-keys.js'
import type { JwtClaims } from '../tokens/own-tokens.js'
import type { Revocation } from '../tokens/revocation.js'
import type { TokenRegistry } from '../tokens/opaque.js'
import type { IssuedTokens } from '../tokens/issued.js'
import { createCsrf } from '../signin/csrf.js'
import type { OidcProvider } from '../signin/oidc.js'
import { createLoginKeys } from '../suffit/login-key.js'
import type { EndpointDeclaration, EndpointPath, EndpointTable } from '../endpoints/types.js'
import { createReady, health, methodNotAllowed } from '../endpoints/ops.js'
import { createMetricsEndpoint } from '../endpoints/metrics.js'
import { createForwardAuth } from '../endpoints/forward-auth.js'
import { createTokenEndpoints, type UserTokenRecord } from '../endpoints/tokens.js'
import { createAuthorizeEndpoints } from '../endpoints/authorize.js'
import { createSignInEndpoints, OAUTH2_CALLBACK_PATH, SIGN_OUT_PATH } from '../endpoints/sign-in.js'

/** What keygate's own endpoints share with authentication: one config snapshot's services. */
export interface EndpointServices {
  readonly store: Store
  readonly clock: Clock
  readonly keys: JwtKeys
  readonly revocation: Revocation<JwtClaims>
  readonly issued: IssuedTokens
  readonly userTokens: TokenRegistry<UserTokenRecord>
  readonly appTokens: TokenRegistry<AppTokenRecord>
  readonly users: UserDirectory
  readonly limiter: LoginLimiter
  /** the session cookie's authenticator (sign-out, and the session a sign-in replaces) */
  readonly session: Authenticator
  readonly providers: readonly OidcProvider[]
  readonly metrics: Metrics | null
  readonly audit: AuditSink
  /** this snapshot's decision (forward-auth answers with it) */
  readonly decide: Decide
}

const GET = ['GET', 'HEAD']
const at = (path: string, methods: readonly string[] | null, match?: EndpointPath['match']): EndpointPath => ({
  path,
  methods,
  match,
})
const NOT_SERVED: EndpointDeclaration = { at: [], policy: 'deny', handler: methodNotAllowed }

/** keygate's own endpoints under one config: each one's paths, policy and handler in one place. */
export function declareEndpoints(config: CompiledConfig, s: EndpointServices): EndpointTable {
  const mounts = tokenApiMounts(config)
  const under = (suffix: string, methods: readonly string[], match?: EndpointPath['match']) =>
    mounts.map((m) => at(`${m}${suffix}`, methods, match))
  const authorizePaths = config.tokenApi.authorize.map((a) => a.path)
  const tokens = createTokenEndpoints({ config, userTokens: s.userTokens, appTokens: s.appTokens, audit: s.audit })
  const authorize = createAuthorizeEndpoints({
    config,
    clock: s.clock,
    keys: s.keys,
    issued: s.issued,
    revocation: s.revocation,
    loginKeys: createLoginKeys(config.secrets.loginKeys),
    users: s.users,
    limiter: s.limiter,
    audit: s.audit,
  })

  return {
    // Envoy ext_authz appends the original path to it: a prefix; the endpoint answers, it never proxies.
    // Not rate limited: its caller is the proxy, and the request it describes is limited instead.
    'forward-auth': {
      at: [at(config.forwardAuth.path, null, 'prefix')],
      policy: 'anonymous',
      rateLimited: false,
      handler: createForwardAuth(s.decide, config),
    },
    // probes and scrapes must never see 429
    health: { at: [at('/_keygate/health', GET)], policy: 'anonymous', rateLimited: false, handler: health },
    ready: {
      at: [at('/_keygate/ready', GET)],
      policy: 'anonymous',
      rateLimited: false,
      handler: createReady(() => s.store.ping()),
    },
    metrics: {
      at: [at('/_keygate/metrics', ['GET'])],
      policy: 'anonymous',
      rateLimited: false,
      handler: createMetricsEndpoint(s.metrics, config.metricsAllowed),
    },
    jwks: {
      at: [at('/.well-known/jwks.json', GET)],
      policy: 'anonymous',
      rateLimited: false,
      handler: (ctx) => ctx.send(200, publicJwks(s.keys)),
    },
    'public-key': {
      at: [at('/api/public-key', GET)],
      policy: 'anonymous',
      handler: authorize['public-key'],
    },
    // Each of `tokenApi.authorize`'s paths logs in (POST) and revokes (DELETE), as /api/authorize does.
    authorize: { at: authorizePaths.map((p) => at(p, ['POST'])), policy: 'anonymous', handler: authorize.authorize },
    // optional: a refresh token in the body is enough (a refresh token is no credential for the pipeline)
    revoke: {
      at: [at('/api/logout', ['POST']), ...authorizePaths.map((p) => at(p, ['DELETE']))],
      policy: 'optional',
      handler: authorize.revoke,
    },
    refresh: { at: [at('/api/refresh', ['POST'])], policy: 'anonymous', handler: authorize.refresh },
    'user-token-generate': {
      at: under('/user-token/generate', ['GET', 'POST']),
      policy: 'optional',
      handler: tokens['user-token-generate'],
    },
    // GET …/verify/{token}; POST …/verify with the token in the body
    'user-token-verify': {
      at: [...under('/user-token/verify', ['GET'], 'token-segment'), ...under('/user-token/verify', ['POST'])],
      policy: 'authenticated',
      handler: tokens['user-token-verify'],
    },
    'app-token-generate': {
      at: under('/app-token/generate', ['POST']),
      policy: 'authenticated',
      schemes: ['apikey'],
      handler: tokens['app-token-generate'],
    },
    'app-token-verify': {
      at: [...under('/app-token/verify', ['GET'], 'token-segment'), ...under('/app-token/verify', ['POST'])],
      policy: 'authenticated',
      schemes: ['apikey'],
      handler: tokens['app-token-verify'],
    },
    'app-token-revoke': {
      at: under('/app-token', ['DELETE'], 'token-segment'),
      policy: 'authenticated',
      schemes: ['apikey', 'apptoken'],
      handler: tokens['app-token-revoke'],
    },
    ...(config.signIn
      ? signInEndpoints(config.signIn, config, s)
      : { 'sign-in': NOT_SERVED, 'sign-out': NOT_SERVED, 'oauth2-callback': NOT_SERVED }),
    // at every path above, any other method: added by compileEndpointRoutes
    'method-not-allowed': { at: [], policy: 'anonymous', handler: methodNotAllowed },
  }
}

/** The browser's way in, when `signIn` is configured. */
function signInEndpoints(
  signIn: SignInConfig,
  config: CompiledConfig,
  s: EndpointServices,
): Pick<EndpointTable, 'sign-in' | 'sign-out' | 'oauth2-callback'> {
  const handlers = createSignInEndpoints({
    config,
    signIn,
    store: s.store,
    clock: s.clock,
    keys: s.keys,
    issued: s.issued,
    revocation: s.revocation,
    users: s.users,
    limiter: s.limiter,
    audit: s.audit,
    csrf: createCsrf(s.store),
    session: s.session,
    providers: s.providers,
  })
  const page = ['GET', 'HEAD', 'POST']
  return {
    'sign-in': { at: [at(signIn.path, page)], policy: 'anonymous', handler: handlers['sign-in'] },
    'sign-out': { at: [at(SIGN_OUT_PATH, page)], policy: 'anonymous', handler: handlers['sign-out'] },
    'oauth2-callback': {
      at: [at(OAUTH2_CALLBACK_PATH, ['GET'], 'token-segment')],
      policy: 'anonymous',
      handler: handlers['oauth2-callback'],
    },
  }
}

/** The table's paths, in the order the route table tries them. */
export const endpointMounts = (table: EndpointTable): EndpointMount[] =>
  (Object.keys(table) as (keyof EndpointTable)[]).flatMap((endpoint) => {
    const { at: paths, policy, schemes, rateLimited } = table[endpoint]
    return paths.map((p): EndpointMount => ({ endpoint, ...p, policy, schemes, rateLimited }))
  })
