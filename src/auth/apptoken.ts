import { refuse } from '../errors.js'
import type { IpMatcher } from '../util/cidr.js'
import { openEnvelope } from '../tokens/envelope.js'
import type { TokenRecord, TokenRegistry } from '../tokens/opaque.js'
import type { Authenticator, AuthResult } from './types.js'

export interface AppTokenRecord extends TokenRecord {
  readonly realName: string
  readonly email: string
  /** the ApiKey that generated it, for the audit trail */
  readonly issuedBy: string
}

const HEX = /^[0-9a-f]+$/

/**
 * `Authorization: AppToken <token>`: the service user with full (sysop) access, for as long as
 * the token's record lives. The inner hex token is expected; a whole salted envelope is
 * accepted too, after its signature is checked.
 */
export function createAppTokenAuthenticator(deps: {
  registry: TokenRegistry<AppTokenRecord>
  salt: string | undefined
  network: IpMatcher | null
}): Authenticator {
  const invalid: AuthResult = { kind: 'deny', refusal: refuse('E1001') }
  const revoked: AuthResult = { kind: 'deny', refusal: refuse('E1002') }
  return {
    scheme: 'apptoken',
    async authenticate({ token, clientIp }) {
      if (deps.network && !deps.network(clientIp)) return { kind: 'deny', refusal: refuse('E1004') }
      let inner = token
      if (!HEX.test(token)) {
        if (!deps.salt) return invalid
        const opened = openEnvelope(deps.salt, token)
        if (!opened.ok) return invalid
        inner = opened.token
      }
      const found = await deps.registry.find(inner)
      if (found === 'revoked') return revoked
      if (!found) return invalid
      const r = found.record
      return {
        kind: 'ok',
        principal: {
          scheme: 'apptoken',
          username: r.username,
          uid: r.uid,
          realName: r.realName,
          email: r.email,
          groups: r.groups,
          expiresAt: found.expiresAt,
        },
      }
    },
  }
}
