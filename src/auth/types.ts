import type { Refusal } from '../errors.js'
import type { Principal, Scheme } from '../principal.js'

/** What an authenticator sees of the request: already normalised, never the raw socket. */
interface Credentials {
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
