import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Refusal } from '../errors.js'
import type { Principal, Scheme } from '../principal.js'
import type { EndpointId, PathMatch, Policy } from '../config/compile.js'
import type { NormalizedTarget } from '../pipeline/normalize.js'
import type { ClientAddress } from '../pipeline/client-ip.js'
import type { BodyRead } from '../http/request-body.js'
import type { Clock } from '../clock.js'
import type { GatewayConfig } from '../config/schema.js'
import type { LoginLimiter, UserDirectory } from '../auth/login.js'
import type { JwtClaims } from '../tokens/own-tokens.js'
import type { JwtKeys } from '../tokens/jwt-keys.js'
import type { Revocation } from '../tokens/revocation.js'
import type { IssuedTokens } from '../tokens/issued.js'
import type { AuditSink } from '../observe.js'
import type { RefusalExtras } from '../http/refusal.js'

/** What an endpoint of keygate's own gets: the request, the decision that let it through, and replies. */
export interface EndpointContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly requestId: string
  readonly principal: Principal | null
  readonly target: NormalizedTarget
  readonly client: ClientAddress
  /** the body, bounded by OWN_ENDPOINT_MAX_BODY_BYTES (and limits.maxBodyBytes), or E1030 when it is over */
  readBody(): Promise<BodyRead>
  send(status: number, body: unknown, headers?: Record<string, string | string[]>): void
  refuse(refusal: Refusal, extras?: RefusalExtras): void
}

export type EndpointHandler = (ctx: EndpointContext) => void | Promise<void>

/** Where one of keygate's own endpoints answers: a path, how it matches, which methods (null: any). */
export interface EndpointPath {
  readonly path: string
  /** exact unless said otherwise */
  readonly match?: PathMatch
  readonly methods: readonly string[] | null
}

/** One endpoint: its paths, who may call it, and its handler, declared together. */
export interface EndpointDeclaration {
  /** none: not served under this config (sign-in without `signIn`) */
  readonly at: readonly EndpointPath[]
  readonly policy: Policy
  readonly schemes?: readonly Scheme[]
  /** counted by the rate limits unless false */
  readonly rateLimited?: boolean
  readonly handler: EndpointHandler
}

/** Every endpoint keygate has: a missing one is a type error, never a 404 at run time. */
export type EndpointTable = Readonly<Record<EndpointId, EndpointDeclaration>>

/**
 * What the two ways of logging in share (/api/authorize and the sign-in page): one password
 * check, one way to issue, record and revoke keygate's JWTs.
 */
export interface LoginDeps {
  readonly config: Pick<GatewayConfig, 'tokens' | 'loginLimit'>
  readonly clock: Clock
  readonly keys: JwtKeys
  readonly issued: IssuedTokens
  readonly revocation: Revocation<JwtClaims>
  readonly users: UserDirectory
  readonly limiter: LoginLimiter
  /** the gateway's observer, told of logins, failures and revocations */
  readonly audit: AuditSink
}
