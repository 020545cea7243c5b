import type { Clock } from '../clock.js'
import type { CompiledConfig } from '../config/compile.js'
import type { AuditSink } from '../observe.js'
import type { JwtKeys } from '../tokens/jwt-keys.js'
import type { JwtClaims } from '../tokens/own-tokens.js'
import type { IssuerVerifier } from '../tokens/issuers.js'
import type { Revocation } from '../tokens/revocation.js'
import type { TokenRegistry } from '../tokens/opaque.js'
import type { IssuedTokens } from '../tokens/issued.js'
import type { RateCounter } from '../store/rate-counter.js'
import { SESSION_COOKIE } from '../principal.js'
import { createApiKeyAuthenticator } from './apikey.js'
import { createClientCertAuthenticator, type ClientCertAuthenticator } from './mtls.js'
import { createAppTokenAuthenticator, type AppTokenRecord } from './apptoken.js'
import { createJwtAuthenticator, createSessionKeeper } from './bearer.js'
import { createUpstreamIdentity } from './upstream.js'
import type { UserDirectory } from './login.js'
import type { Authenticator } from './types.js'

/** The authenticators of one config snapshot, chosen by the scheme word or the kind of credential. */
export interface AuthenticatorChain {
  /** lower-case scheme word → authenticator (apikey, apptoken, bearer) */
  readonly byScheme: ReadonlyMap<string, Authenticator>
  readonly session: Authenticator
  /** the session cookie's name (signIn.cookie.name, else keygate_session), read as is and as __Host- + name */
  readonly sessionCookie: string
  /** identityFromUpstream: the wiki's own cookies */
  readonly upstream: Authenticator | null
  /** tls.clientCa: the client certificate of the connection (scheme mtls) */
  readonly clientCert: ClientCertAuthenticator | null
}

/** The token services of one config snapshot that authentication reads (the gateway builds them). */
export interface ChainServices {
  readonly clock: Clock
  readonly keys: JwtKeys
  readonly revocation: Revocation<JwtClaims>
  readonly issued: IssuedTokens
  readonly appTokens: TokenRegistry<AppTokenRecord>
  readonly issuers: IssuerVerifier | null
  /** the local users and the LDAP directory, when `usersFrom.ldap` is configured; else null */
  readonly directory: UserDirectory | null
  readonly audit: AuditSink
  /** the store's rate counter (the rate limits' own): identityFromUpstream's callLimit is counted there */
  readonly rateCounter: RateCounter
}

/** The registry (Oathkeeper's registry.go): every authenticator of one config, built once. */
export function createAuthenticatorChain(config: CompiledConfig, services: ChainServices): AuthenticatorChain {
  const { clock, issued, audit } = services
  const sessionIdleMs = config.tokens.session.ttl
  const jwtDeps = {
    keys: services.keys,
    clock,
    revocation: services.revocation,
    issued,
    sessionIdleMs,
    sessions: createSessionKeeper({ clock, issued, sessionIdleMs }),
    issuers: services.issuers,
    users: config.users,
    directory: services.directory,
    providers: new Set((config.signIn?.providers ?? []).map((p) => p.id)),
  }
  const upstream = config.identityFromUpstream
  return {
    byScheme: new Map([
      ['apikey', createApiKeyAuthenticator(config.apiKeys, audit)],
      [
        'apptoken',
        createAppTokenAuthenticator({
          registry: services.appTokens,
          salt: config.secrets.salt,
          network: config.appTokenNetwork,
        }),
      ],
      ['bearer', createJwtAuthenticator('bearer', jwtDeps)],
    ]),
    session: createJwtAuthenticator('session', jwtDeps),
    sessionCookie: config.signIn?.cookie.name ?? SESSION_COOKIE,
    upstream: upstream
      ? createUpstreamIdentity({
          url: upstream.url,
          defaultUpstream: config.upstream,
          cacheTtlMs: upstream.cacheTtl,
          timeoutMs: config.limits.upstreamConnectTimeout,
          cookies: upstream.cookies,
          callLimit: { perIp: upstream.callLimit.perIp, windowMs: upstream.callLimit.window },
          counter: services.rateCounter,
        })
      : null,
    clientCert: config.tls?.clientCa ? createClientCertAuthenticator(config.clients, audit) : null,
  }
}
