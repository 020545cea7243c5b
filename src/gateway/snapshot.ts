import cluster from 'node:cluster'
import { systemClock } from '../clock.js'
import type { Logger } from '../log.js'
import { createObserver, type Observer } from '../observe.js'
import { compileConfig, compileEndpointRoutes, type CompiledConfig, type CompiledRoute } from '../config/compile.js'
import type { GatewayConfig } from '../config/schema.js'
import { createStore, instrumentStore } from '../store/index.js'
import { createStoreHealth, type StoreHealth } from '../store/health.js'
import { createLocalRateCounter, type RateCounter } from '../store/rate-counter.js'
import type { Store } from '../store/types.js'
import { createMetrics, type Metrics } from '../metrics/catalogue.js'
import { createAudit, type Audit } from '../audit.js'
import { createJwtKeys } from '../tokens/jwt-keys.js'
import type { JwtClaims } from '../tokens/own-tokens.js'
import { createIssuerVerifier } from '../tokens/issuers.js'
import { createRevocation } from '../tokens/revocation.js'
import { createTokenRegistry } from '../tokens/opaque.js'
import { createIssuedTokens } from '../tokens/issued.js'
import { createAssertionSigner } from '../tokens/assertion.js'
import { createAuthenticatorChain } from '../auth/index.js'
import type { AppTokenRecord } from '../auth/apptoken.js'
import { createLoginLimiter } from '../auth/login.js'
import { createLdapUsers } from '../auth/ldap-users.js'
import { createUserSources } from '../auth/user-sources.js'
import { createIdentityHeaders, ownCookiesPattern } from '../pipeline/identity.js'
import { createRateLimit } from '../pipeline/rate-limit.js'
import { createForwarder, type Forwarder } from '../pipeline/forward.js'
import { createDecide, type Decide } from '../pipeline/index.js'
import { sessionCookieNames, signInCookieNames } from '../signin/cookies.js'
import { createOidcProvider } from '../signin/oidc.js'
import type { EndpointTable } from '../endpoints/types.js'
import type { UserTokenRecord } from '../endpoints/tokens.js'
import { declareEndpoints, endpointMounts } from './endpoints.js'

// Where a gateway is built. The parts that live as long as the gateway (store, its health,
// observer, metrics, audit trail) are made once; everything that one config decides is a
// Snapshot, and a reload builds the next one beside it and swaps one reference.

/** One gateway's lasting parts: kept across reloads. */
export interface GatewayParts {
  readonly logger: Logger
  readonly store: Store
  readonly storeHealth: StoreHealth
  /** this gateway's events: its metrics and audit trail hear these alone */
  readonly observer: Observer
  readonly metrics: Metrics | null
  /** the `audit` config's trail of this gateway's audit events (writes nothing when off) */
  readonly auditTrail: Audit
  /** `rateLimits.onStoreDown: local`: this instance's own count while the store is unreachable */
  readonly rateFallback: RateCounter
  /** stops the heartbeat, the metrics and the audit trail; closes the store when it is ours */
  close(): Promise<void>
}

export function createGatewayParts(
  initial: GatewayConfig,
  logger: Logger,
  configHash: () => string,
  givenStore?: Store,
): GatewayParts {
  const observer = createObserver()
  const store = instrumentStore(
    givenStore ?? createStore({ redis: initial.store.redis, prefix: initial.store.prefix }),
    observer,
  )
  const storeHealth = createStoreHealth(store, { logger })
  storeHealth.start()
  const metrics = initial.metrics.enabled
    ? createMetrics({ configHash, storeHealthy: () => storeHealth.healthy, cluster: cluster.isWorker, observer })
    : null
  const auditTrail = createAudit({ audit: initial.audit, observer })
  return {
    logger,
    store,
    storeHealth,
    observer,
    metrics,
    auditTrail,
    rateFallback: createLocalRateCounter(),
    async close() {
      storeHealth.stop()
      metrics?.close()
      auditTrail.close()
      if (givenStore === undefined) await store.close()
    },
  }
}

/** Everything built from one config. */
export interface Snapshot {
  readonly compiled: CompiledConfig
  /** keygate's own endpoints, then the configured routes and the fallback: what decide() matches */
  readonly routes: readonly CompiledRoute[]
  readonly decide: Decide
  readonly forwarder: Forwarder
  readonly endpoints: EndpointTable
  /** the cookies that are keygate's alone (kept from the upstream) */
  readonly ownCookies: RegExp
  /** requests (and upgrades until their tunnel opens) still being answered with this snapshot */
  inFlight: number
  /** replaced by a newer one: closed as soon as nothing is in flight on it */
  retired: boolean
  /** lets go of the store (the revocation subscription) and the directory at once */
  detach(): void
}

/** The single place where one config becomes authenticators, decide(), the forwarder and the endpoints. */
export async function buildSnapshot(config: GatewayConfig, parts: GatewayParts): Promise<Snapshot> {
  const compiled = compileConfig(config)
  const clock = systemClock
  const { store, observer } = parts
  const audit = observer.audit
  const keys = await createJwtKeys(config.secrets.jwt)
  if (keys.ephemeral)
    parts.logger.warn('no secrets.jwt.secret configured: using an ephemeral key, tokens die with the process')
  const revocation = await createRevocation<JwtClaims>({
    store,
    clock,
    healthy: () => parts.storeHealth.healthy,
    clockToleranceMs: config.secrets.jwt.clockSkew,
    issuer: keys.issuer,
  })
  const issued = createIssuedTokens({ store, clock, graceMs: config.secrets.jwt.clockSkew })
  const appTokens = createTokenRegistry<AppTokenRecord>({
    store,
    clock,
    kind: 'app',
    ttlMs: config.tokens.appToken.ttl,
  })
  const ldap = config.usersFrom.ldap ? createLdapUsers(config.usersFrom.ldap) : null
  const users = createUserSources(compiled.users, ldap, clock)
  const chain = createAuthenticatorChain(compiled, {
    clock,
    keys,
    revocation,
    issued,
    appTokens,
    issuers:
      config.issuers.length > 0
        ? await createIssuerVerifier(config.issuers, {
            ownIssuer: keys.issuer,
            clock,
            clockToleranceSec: config.secrets.jwt.clockSkew / 1000,
          })
        : null,
    directory: ldap ? users : null,
    audit,
    rateCounter: store.rateCounter(),
  })
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
  const endpoints = declareEndpoints(compiled, {
    store,
    clock,
    keys,
    revocation,
    issued,
    userTokens: createTokenRegistry<UserTokenRecord>({
      store,
      clock,
      kind: 'user',
      ttlMs: config.tokens.userToken.ttl,
      singleUse: config.tokens.userToken.singleUse,
    }),
    appTokens,
    users,
    limiter: createLoginLimiter(store, config.loginLimit),
    session: chain.session,
    // each provider's discovery is fetched on first use and kept for this config
    providers: (config.signIn?.providers ?? []).map(createOidcProvider),
    metrics: parts.metrics,
    audit,
    decide: (request) => decide(request),
  })
  const routes = [...compileEndpointRoutes(compiled, endpointMounts(endpoints)), ...compiled.routes]
  const decide = createDecide(compiled, {
    routes,
    chain,
    identityOf,
    audit,
    rateLimit: createRateLimit(compiled, {
      counter: store.rateCounter(),
      fallback: config.rateLimits.onStoreDown === 'local' ? parts.rateFallback : null,
      audit,
    }),
  })
  const upstreams = compiled.routes
    .filter((r) => r.upstream !== 'demo')
    .map((r) => ({ origin: r.upstream, tls: r.upstreamTls }))
  return {
    compiled,
    routes,
    decide,
    forwarder: createForwarder(upstreams, {
      connectTimeoutMs: config.limits.upstreamConnectTimeout,
      timeoutMs: config.limits.upstreamTimeout,
    }),
    endpoints,
    ownCookies: ownCookiesPattern([...sessionCookieNames(chain.sessionCookie), ...signInCookieNames]),
    inFlight: 0,
    retired: false,
    detach() {
      revocation.close()
      void ldap?.close()
    },
  }
}

/** Taken by each request (and each upgrade until its tunnel opens) answered with this snapshot. */
export function acquireSnapshot(snap: Snapshot): Snapshot {
  snap.inFlight++
  return snap
}

export function releaseSnapshot(snap: Snapshot): void {
  if (--snap.inFlight === 0 && snap.retired) void snap.forwarder.close()
}

/**
 * A replaced snapshot lets go of the store (its revocation subscription) and its caches at once;
 * its upstream pools close when the last request answered with it is done, so that no request
 * that started before the swap finds its pool closed.
 */
export async function retireSnapshot(snap: Snapshot): Promise<void> {
  snap.retired = true
  snap.detach()
  if (snap.inFlight === 0) await snap.forwarder.close()
}
