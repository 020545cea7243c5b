import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Refusal } from '../errors.js'
import type { Principal } from '../principal.js'
import type { NormalizedTarget } from '../pipeline/normalize.js'
import type { ClientAddress } from '../pipeline/client-ip.js'

/** What an endpoint of keygate's own gets: the request, the decision that let it through, and replies. */
export interface EndpointContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly requestId: string
  readonly principal: Principal | null
  readonly target: NormalizedTarget
  readonly client: ClientAddress
  /** the body, bounded by OWN_ENDPOINT_MAX_BODY_BYTES (and limits.maxBodyBytes), or E1030 when it is over */
  readBody(): Promise<Buffer | Refusal>
  send(status: number, body: unknown, headers?: Record<string, string | string[]>): void
  refuse(refusal: Refusal, headers?: Record<string, string>): void
}

export type EndpointHandler = (ctx: EndpointContext) => void | Promise<void>
