/** Segment-aware prefix: /a/b matches /a/b and /a/b/c, not /a/bc; a prefix ending in '/' also matches itself without it. */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix === '/') return true
  if (prefix.endsWith('/')) {
    return path.startsWith(prefix) || path === prefix.slice(0, -1)
  }
  return path === prefix || (path.startsWith(prefix) && path[prefix.length] === '/')
}
