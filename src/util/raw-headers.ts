/** Reads every value of a header from rawHeaders: req.headers would silently drop a second Authorization. */
export function headerValues(rawHeaders: readonly string[], lowerName: string): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) out.push(rawHeaders[i + 1]!)
  }
  return out
}

/** Values of one cookie across every Cookie header. */
export function cookieValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = []
  for (const header of headerValues(rawHeaders, 'cookie')) {
    // Most Cookie headers do not carry it (the app's cookies only): no splitting for those.
    if (!header.includes(name)) continue
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq !== -1 && pair.slice(0, eq).trim() === name) out.push(pair.slice(eq + 1).trim())
    }
  }
  return out
}
