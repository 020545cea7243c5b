import { systemClock } from '../clock.js'
import type { CompiledConfig, EndpointId } from '../config/compile.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Store } from '../store/types.js'
import type { Logger } from '../log.js'
import type { AuditSink } from '../observe.js'
import type { AuthenticatorChain } from '../pipeline/authenticate.js'
import type { Decide } from '../pipeline/index.js'
import type { EndpointHandler } from '../endpoints/types.js'
import { createJwtKeys, publicJwks } from '../tokens/jwt-keys.js'
import type { JwtClaims } from '../tokens/own-tokens.js'
import { createIssuerVerifier } from '../tokens/issuers.js'
import { createRevocation } from '../tokens/revocation.js'
import { createTokenRegistry } from '../tokens/opaque.js'
import { createIssuedTokens } from '../tokens/issued.js'
import { createApiKeyAuthenticator } from './apikey.js'
import { createClientCertAuthenticator } from './mtls.js'
import { createAppTokenAuthenticator, type AppTokenRecord } from './apptoken.js'
import { createJwtAuthenticator, createSessionKeeper } from './bearer.js'
import { createUpstreamIdentity } from './upstream.js'
import { createLoginLimiter } from './login.js'
import { createLdapUsers } from './ldap-users.js'
import { createUserSources } from './user-sources.js'
import { createForwardAuth } from '../endpoints/forward-auth.js'
import { createIdentityHeaders, type IdentityOf } from '../pipeline/identity.js'
import { createAssertionSigner } from '../identity/assertion.js'
import { createReady, health, methodNotAllowed } from '../endpoints/ops.js'
import { createTokenEndpoints, type UserTokenRecord } from '../endpoints/tokens.js'
import { createAuthorizeEndpoints } from '../endpoints/authorize.js'
import { createLoginKeys, createPublicKeyEndpoint } from '../suffit/login-key.js'
import { createSignInEndpoints } from '../endpoints/sign-in.js'
import { sessionCookieNames, signInCookieNames } from '../signin/cookies.js'
import { createCsrf } from '../signin/csrf.js'
import { createOidcProvider } from '../signin/oidc.js'
import { SESSION_COOKIE } from '../principal.js'

export interface AuthDeps {
  readonly store: Store
  readonly storeHealth: { readonly healthy: boolean }
  readonly logger: Logger
  /** the gateway's observer, told of audit events */
  readonly audit: AuditSink
  /** extra endpoint handlers made by the server (metrics) */
  readonly extraEndpoints?: Partial<Record<EndpointId, EndpointHandler>>
}

/** The authenticators of one config snapshot and the endpoints that share their services. */
export interface Auth {
  readonly chain: AuthenticatorChain
  /** the caller's identity headers, the signed assertion among them when configured */
  readonly identityOf: IdentityOf
  /** every cookie name that is keygate's alone (kept from the upstream) */
  readonly ownCookies: readonly string[]
  /** the snapshot's endpoints; forward-auth decides with this snapshot's own decide() */
  endpoints(decide: Decide, config: GatewayConfig): Partial<Record<EndpointId, EndpointHandler>>
  close(): void
}

/** The registry (Oathkeeper's registry.go): builds every authenticator and token service once per config. */
export async function createAuth(compiled: CompiledConfig, deps: AuthDeps): Promise<Auth> {
  const config = compiled.raw
  const clock = systemClock
  const { store } = deps
  const keys = await createJwtKeys(config.secrets.jwt)
  if (keys.ephemeral)
    deps.logger.warn('no secrets.jwt.secret configured: using an ephemeral key, tokens die with the process')
  const revocation = await createRevocation<JwtClaims>({
    store,
    clock,
    healthy: () => deps.storeHealth.healthy,
    clockToleranceMs: config.secrets.jwt.clockSkew,
    issuer: keys.issuer,
  })
  const issued = createIssuedTokens({ store, clock, graceMs: config.secrets.jwt.clockSkew })
  const userTokens = createTokenRegistry<UserTokenRecord>({
    store,
    clock,
    kind: 'user',
    ttlMs: config.tokens.userToken.ttl,
    singleUse: config.tokens.userToken.singleUse,
  })
  const appTokens = createTokenRegistry<AppTokenRecord>({
    store,
    clock,
    kind: 'app',
    ttlMs: config.tokens.appToken.ttl,
  })
  const issuers =
    config.issuers.length > 0
      ? await createIssuerVerifier(config.issuers, {
          ownIssuer: keys.issuer,
          clock,
          clockToleranceSec: config.secrets.jwt.clockSkew / 1000,
        })
      : null
  const loginKeys = createLoginKeys(config.secrets.loginKeys)
  const ldap = config.usersFrom.ldap ? createLdapUsers(config.usersFrom.ldap) : null
  const users = createUserSources(compiled.users, ldap, clock)
  const assertion = config.identityAssertion
  const identityOf = createIdentityHeaders(
    config.identityHeaders,
    assertion && keys.ring.signing
      ? {
          header: assertion.header,
          sign: createAssertionSigner({ key: keys.ring.signing, issuer: keys.issuer, ttlMs: assertion.ttl, clock }),
        }
      : null,
  )
  const sessionIdleMs = config.tokens.session.ttl
  const jwtDeps = {
    keys,
    clock,
    revocation,
    issued,
    sessionIdleMs,
    sessions: createSessionKeeper({ clock, issued, sessionIdleMs }),
    issuers,
    users: compiled.users,
    directory: ldap ? users : null,
    providers: new Set((config.signIn?.providers ?? []).map((p) => p.id)),
  }

  const byScheme = new Map([
    ['apikey', createApiKeyAuthenticator(compiled.apiKeys, deps.audit)],
    [
      'apptoken',
      createAppTokenAuthenticator({
        registry: appTokens,
        salt: config.secrets.salt,
        network: compiled.appTokenNetwork,
      }),
    ],
    ['bearer', createJwtAuthenticator('bearer', jwtDeps)],
  ])
  const upstream = config.identityFromUpstream
    ? createUpstreamIdentity({
        url: config.identityFromUpstream.url,
        defaultUpstream: config.upstream,
        cacheTtlMs: config.identityFromUpstream.cacheTtl,
        timeoutMs: config.limits.upstreamConnectTimeout,
        cookies: config.identityFromUpstream.cookies,
        callLimit: {
          perIp: config.identityFromUpstream.callLimit.perIp,
          windowMs: config.identityFromUpstream.callLimit.window,
        },
      })
    : null

  const session = createJwtAuthenticator('session', jwtDeps)
  const limiter = createLoginLimiter(store, {
    perUser: config.loginLimit.perUser,
    perIp: config.loginLimit.perIp,
    window: config.loginLimit.window,
  })
  // Built once per config: each provider's discovery is fetched on first use and kept.
  const providers = (config.signIn?.providers ?? []).map(createOidcProvider)
  const sessionCookie = config.signIn?.cookie.name ?? SESSION_COOKIE
  return {
    ownCookies: [...sessionCookieNames(sessionCookie), ...signInCookieNames],
    chain: {
      byScheme,
      session,
      sessionCookie,
      upstream,
      clientCert: config.tls?.clientCa ? createClientCertAuthenticator(compiled.clients, deps.audit) : null,
    },
    identityOf,
    endpoints: (decide, snapshotConfig) => ({
      health,
      ready: createReady(() => store.ping()),
      jwks: (ctx) => ctx.send(200, publicJwks(keys)),
      'public-key': createPublicKeyEndpoint(loginKeys),
      'method-not-allowed': methodNotAllowed,
      'forward-auth': createForwardAuth(decide, snapshotConfig),
      ...createTokenEndpoints({ config, userTokens, appTokens, audit: deps.audit }),
      ...createAuthorizeEndpoints({
        config,
        clock,
        keys,
        issued,
        revocation,
        loginKeys,
        users,
        limiter,
        audit: deps.audit,
      }),
      ...(config.signIn
        ? createSignInEndpoints({
            config,
            signIn: config.signIn,
            store,
            clock,
            keys,
            issued,
            revocation,
            users,
            limiter,
            audit: deps.audit,
            csrf: createCsrf(store),
            session,
            providers,
          })
        : {}),
      ...deps.extraEndpoints,
    }),
    close() {
      revocation.close()
      void ldap?.close()
    },
  }
}
