import { refuse, type Refusal } from '../errors.js'
import type { CompiledRoute } from '../config/compile.js'
import type { Principal } from '../auth/types.js'
import { matchesPrefix } from '../util/path-prefix.js'

/** First route whose prefix and method match; the compiled table always ends with a catch-all. */
export function findRoute(routes: readonly CompiledRoute[], matchPath: string, method: string): CompiledRoute {
  for (const r of routes) {
    if (matchesPrefix(matchPath, r.prefix) && (r.methods === null || r.methods.has(method))) return r
  }
  throw new Error('route table has no catch-all') // compileConfig always appends one
}

export const isActionApiPath = (actionApiPaths: readonly string[], matchPath: string): boolean =>
  actionApiPaths.some((p) => matchesPrefix(matchPath, p))

const DENIED = refuse('E1004')

/**
 * What the route and the caller's own limits allow. Action API modules are judged by the caller
 * (see action-params) because only it may need to read the body.
 */
export function authorize(route: CompiledRoute, principal: Principal, matchPath: string, onActionApi: boolean): Refusal | null {
  if (route.schemes && !route.schemes.has(principal.scheme)) return DENIED
  if (route.tokenType && principal.tokenType !== route.tokenType) return refuse('E1020')
  if (route.groups.length > 0 && !route.groups.some((g) => principal.groups.includes(g))) return DENIED
  const limits = principal.limits
  if (limits && !onActionApi && !limits.paths.some((p) => matchesPrefix(matchPath, p))) return DENIED
  return null
}
