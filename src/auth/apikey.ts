import { refuse } from '../errors.js'
import { sha256Hex } from '../util/secret.js'
import type { AuditSink } from '../observe.js'
import type { CompiledApiKey } from '../config/compile.js'
import type { Authenticator, AuthResult } from './types.js'
import { fromAllowedNetwork, servicePrincipal } from './service-access.js'

/**
 * `Authorization: ApiKey <key>`: looked up by the key's SHA-256, so the comparison never runs
 * over the secret itself and no key is kept in clear after start-up.
 */
export function createApiKeyAuthenticator(keys: readonly CompiledApiKey[], audit: AuditSink): Authenticator {
  const byHash = new Map<string, { key: CompiledApiKey; ok: AuthResult }>()
  for (const key of keys) {
    const ok: AuthResult = { kind: 'ok', principal: servicePrincipal('apikey', key) }
    for (const hash of key.keyHashes) byHash.set(hash, { key, ok })
  }
  const invalid: AuthResult = { kind: 'deny', refusal: refuse('E1001') }
  return {
    scheme: 'apikey',
    authenticate({ token, clientIp }) {
      const found = byHash.get(sha256Hex(token))
      if (!found) return invalid
      return fromAllowedNetwork(found.key, clientIp, found.ok, audit)
    },
  }
}
