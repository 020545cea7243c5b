import { refuse } from '../errors.js'
import { sha256Hex } from '../util/secret.js'
import type { AuditSink } from '../observe.js'
import type { CompiledApiKey } from '../config/compile.js'
import type { Authenticator, AuthResult } from './types.js'
import type { Principal } from '../principal.js'

/**
 * `Authorization: ApiKey <key>`: looked up by the key's SHA-256, so the comparison never runs
 * over the secret itself and no key is kept in clear after start-up.
 */
export function createApiKeyAuthenticator(keys: readonly CompiledApiKey[], audit: AuditSink): Authenticator {
  const byHash = new Map<string, { key: CompiledApiKey; ok: AuthResult }>()
  for (const key of keys) {
    const principal: Principal = {
      scheme: 'apikey',
      username: key.user.name,
      uid: key.user.id,
      realName: key.user.name,
      email: key.user.email,
      groups: key.user.groups,
      limits: key.limits,
      keyName: key.name,
    }
    const ok: AuthResult = { kind: 'ok', principal }
    for (const hash of key.keyHashes) byHash.set(hash, { key, ok })
  }
  const invalid: AuthResult = { kind: 'deny', refusal: refuse('E1001') }
  const outsideNetwork: AuthResult = { kind: 'deny', refusal: refuse('E1004') }
  return {
    scheme: 'apikey',
    authenticate({ token, clientIp }) {
      const found = byHash.get(sha256Hex(token))
      if (!found) return invalid
      if (found.key.fromAllowedNetwork && !found.key.fromAllowedNetwork(clientIp)) {
        audit({ kind: 'apikey.refused', keyName: found.key.name, clientIp, reason: 'cidr' })
        return outsideNetwork
      }
      return found.ok
    },
  }
}
