import { refuse } from '../errors.js'
import type { AuditSink } from '../observe.js'
import type { CompiledServiceAccess } from '../config/compile.js'
import type { AuthResult } from './types.js'
import type { Principal, Scheme } from '../principal.js'

/** A service caller's principal: its user, its allow lists, its name (for logs and `key:` rate limits). */
export function servicePrincipal(scheme: Scheme, entry: CompiledServiceAccess): Principal {
  return {
    scheme,
    username: entry.user.name,
    uid: entry.user.id,
    realName: entry.user.name,
    email: entry.user.email,
    groups: entry.user.groups,
    limits: entry.limits,
    keyName: entry.name,
  }
}

const OUTSIDE_NETWORK: AuthResult = { kind: 'deny', refusal: refuse('E1004') }

/** `ok` as given, or E1004 (audited) when the caller comes from outside the entry's `cidr`. */
export function fromAllowedNetwork(
  entry: CompiledServiceAccess,
  clientIp: string,
  ok: AuthResult,
  audit: AuditSink,
): AuthResult {
  if (entry.fromAllowedNetwork && !entry.fromAllowedNetwork(clientIp)) {
    audit({ kind: 'apikey.refused', keyName: entry.name, clientIp, reason: 'cidr' })
    return OUTSIDE_NETWORK
  }
  return ok
}
