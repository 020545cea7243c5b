/** Reads every value of a header from rawHeaders: req.headers would silently drop a second Authorization. */
export function headerValues(rawHeaders: readonly string[], lowerName: string): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) out.push(rawHeaders[i + 1]!)
  }
  return out
}

/**
 * The non-empty values of a cookie and of its `__Host-` form across every Cookie header, in one
 * pass (this runs on every request that carries cookies).
 */
export function cookieValues(
  rawHeaders: readonly string[],
  name: string,
): { readonly plain: string[]; readonly hostOnly: string[] } {
  const plain: string[] = []
  const hostOnly: string[] = []
  for (const header of headerValues(rawHeaders, 'cookie')) {
    // Most Cookie headers do not carry it (the app's cookies only): no splitting for those.
    if (!header.includes(name)) continue
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) continue
      const value = pair.slice(eq + 1).trim()
      if (!value) continue
      const key = pair.slice(0, eq).trim()
      if (key === name) plain.push(value)
      else if (
        key.length === name.length + HOST_ONLY_PREFIX.length &&
        key.startsWith(HOST_ONLY_PREFIX) &&
        key.endsWith(name)
      )
        hostOnly.push(value)
    }
  }
  return { plain, hostOnly }
}

/** A cookie set with this prefix was set by its own host, over https, for the whole host (RFC 6265bis). */
export const HOST_ONLY_PREFIX = '__Host-'
