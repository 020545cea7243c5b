import { refuse, type Refusal } from '../errors.js'
import type { CompiledRoute } from '../config/compile.js'
import type { Principal } from '../principal.js'
import { matchesPrefix } from '../util/path-prefix.js'

export type RouteTable = (matchPath: string, method: string) => CompiledRoute

/**
 * First route whose prefix and method match; the compiled table always ends with a catch-all.
 * A prefix other than '/' can only match paths with the same first segment (prefixes are
 * segment-aware), so routes are bucketed by it once and a request scans its own bucket, not
 * the forty-odd routes of keygate's own endpoints.
 */
export function createRouteTable(routes: readonly CompiledRoute[]): RouteTable {
  const everywhere = routes.filter((r) => r.prefix === '/')
  const buckets = new Map<string, CompiledRoute[]>()
  for (const segment of new Set(routes.filter((r) => r.prefix !== '/').map((r) => firstSegment(r.prefix)))) {
    buckets.set(
      segment,
      routes.filter((r) => r.prefix === '/' || firstSegment(r.prefix) === segment),
    )
  }
  return (matchPath, method) => {
    for (const r of buckets.get(firstSegment(matchPath)) ?? everywhere) {
      if (routeMatches(r, matchPath) && (r.methods === null || r.methods.has(method))) return r
    }
    throw new Error('route table has no catch-all') // compileConfig always appends one
  }
}

/** Whether a route covers the path: configured routes as prefixes, keygate's own endpoints exactly. */
export function routeMatches(route: CompiledRoute, path: string): boolean {
  const { prefix } = route
  switch (route.match) {
    case 'prefix':
      return matchesPrefix(path, prefix)
    case 'exact':
      return path === prefix
    case 'token-segment':
      return (
        path.length > prefix.length + 1 &&
        path.startsWith(prefix) &&
        path[prefix.length] === '/' &&
        path.indexOf('/', prefix.length + 1) === -1
      )
  }
}

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1)
  return end === -1 ? path.slice(1) : path.slice(1, end)
}

export const isActionApiPath = (actionApiPaths: readonly string[], matchPath: string): boolean =>
  actionApiPaths.some((p) => matchesPrefix(matchPath, p))

const DENIED = refuse('E1004')

/**
 * What the route and the caller's own limits allow. Action API modules are judged by the caller
 * (see action-params) because only it may need to read the body.
 */
export function authorize(
  route: CompiledRoute,
  principal: Principal,
  matchPath: string,
  onActionApi: boolean,
): Refusal | null {
  if (route.schemes && !route.schemes.has(principal.scheme)) return DENIED
  if (route.tokenType && principal.tokenType !== route.tokenType) return refuse('E1020')
  if (route.groups.length > 0 && !route.groups.some((g) => principal.groups.includes(g))) return DENIED
  const limits = principal.limits
  if (limits && !onActionApi && !limits.paths.some((p) => matchesPrefix(matchPath, p))) return DENIED
  return null
}
