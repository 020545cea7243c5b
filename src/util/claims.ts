// Reading claims of a verified token (an issuer's JWT, a provider's ID token or userinfo): the
// configured paths say where the user name, the groups and custom header values are.

/** `a.b.c` in the claims (Keycloak's realm_access.roles); a claim whose own name has dots (`"https://x/roles"`-style) is found as a whole first. Only own members count, never inherited ones. */
export function claimAt(claims: Readonly<Record<string, unknown>> | undefined, path: string): unknown {
  if (!claims) return undefined
  if (Object.hasOwn(claims, path)) return claims[path]
  let v: unknown = claims
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined
    v = (v as Record<string, unknown>)[key]
  }
  return v
}

export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
