import type { CompiledConfig, EndpointId } from '../config/compile.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Store } from '../store/types.js'
import type { Logger } from '../log.js'
import type { AuthenticatorChain } from '../pipeline/authenticate.js'
import type { Decide } from '../pipeline/index.js'
import type { EndpointHandler } from '../endpoints/types.js'
import { createApiKeyAuthenticator } from './apikey.js'
import { createForwardAuth } from '../endpoints/forward-auth.js'
import { createReady, health, methodNotAllowed } from '../endpoints/ops.js'

export interface AuthDeps {
  readonly store: Store
  readonly storeHealth: { readonly healthy: boolean }
  readonly logger: Logger
}

/** The authenticators of one config snapshot and the endpoints that share their services. */
export interface Auth {
  readonly chain: AuthenticatorChain
  endpoints(decide: () => Decide, config: () => GatewayConfig): Partial<Record<EndpointId, EndpointHandler>>
  close(): void
}

/** The registry (Oathkeeper's registry.go): builds every authenticator once per config. */
export async function createAuth(compiled: CompiledConfig, deps: AuthDeps): Promise<Auth> {
  const byScheme = new Map([['apikey', createApiKeyAuthenticator(compiled.apiKeys)]])
  return {
    chain: { byScheme, session: null, upstream: null },
    endpoints: (decide, config) => ({
      health,
      ready: createReady(() => deps.store.ping()),
      'method-not-allowed': methodNotAllowed,
      'forward-auth': createForwardAuth(decide, config),
    }),
    close() {},
  }
}
