import { parseMultipart } from '../mediawiki/php-params.js'

/**
 * keygate's own endpoints (/api/authorize, /api/refresh, the token endpoints) take a few short
 * fields; their bodies are refused past this bound before any parsing, so a deeply nested or huge
 * JSON document cannot hold the event loop.
 */
export const OWN_ENDPOINT_MAX_BODY_BYTES = 8 * 1024

/** Parses a small JSON, urlencoded or multipart body into string fields; anything else → null. */
export function parseFormFields(body: Buffer, contentType: string | undefined): Record<string, string> | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  const text = body.toString('utf8')
  if (type === 'application/json') {
    try {
      const value: unknown = JSON.parse(text || '{}')
      if (!value || typeof value !== 'object' || Array.isArray(value)) return null
      return Object.fromEntries(
        Object.entries(value)
          .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))
          .map(([k, v]) => [k, String(v)]),
      )
    } catch {
      return null
    }
  }
  if (type === 'application/x-www-form-urlencoded' || type === '') {
    const out: Record<string, string> = {}
    for (const [k, v] of new URLSearchParams(text)) out[k] = v
    return out
  }
  if (type === 'multipart/form-data') {
    const parsed = parseMultipart(body, contentType!)
    if (!parsed.ok) return null
    return Object.fromEntries(parsed.vars.filter((v) => !v.isFile).map((v) => [v.rawName, v.value]))
  }
  return null
}
