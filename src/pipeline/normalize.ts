import { refused, type Refused } from '../errors.js'

export interface NormalizedTarget {
  /** What goes upstream: percent-escapes upper-cased, unreserved characters decoded, repeated slashes merged. */
  readonly path: string
  /** What routes are matched on: the same path fully decoded (it decodes to one segment structure only). */
  readonly matchPath: string
  /** Raw query string without '?', forwarded unchanged ('' when absent). */
  readonly query: string
}

/** The normalised target itself (no wrapper: this runs on every request), or the refusal. */
export type TargetRead = ({ readonly ok: true } & NormalizedTarget) | Refused

const UNRESERVED = /[A-Za-z0-9\-_~]/
// Refused rather than guessed: every one of these has been read differently by some proxy and some upstream.
const FORBIDDEN_ESCAPES = new Set(['2E', '2F', '5C', '00', '3B']) // . / \ NUL ;
const DOUBLE_ENCODED = /%25[0-9A-Fa-f]{2}/
const RAW_FORBIDDEN = /[\\;#\x00-\x20\x7f]/
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i
const AMBIGUOUS = refused('E1030', 'path')
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/

/**
 * One normalised path for the whole pipeline (CONTRACT §4): dot segments, %2e, encoded slashes,
 * backslashes, NUL, ';' path parameters and invalid percent-encoding are refused, never guessed.
 */
export function normalizeTarget(rawTarget: string): TargetRead {
  let target = rawTarget
  const absolute = ABSOLUTE_FORM.exec(target)
  if (absolute) target = target.slice(absolute[0].length) || '/'
  if (!target.startsWith('/')) return AMBIGUOUS

  const q = target.indexOf('?')
  const rawPath = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q + 1)
  if (query.includes('#') || /[\x00-\x20\x7f]/.test(query)) return AMBIGUOUS
  if (RAW_FORBIDDEN.test(rawPath) || DOUBLE_ENCODED.test(rawPath)) return AMBIGUOUS

  // Most paths carry no escapes: they need no decoding pass at all.
  const hasEscapes = rawPath.includes('%')
  const decoded = hasEscapes ? decodeUnreservedEscapes(rawPath) : rawPath
  // Checked again after decoding: %25%32%45 must not become the %252E that is refused when sent.
  if (decoded === null || (hasEscapes && DOUBLE_ENCODED.test(decoded))) return AMBIGUOUS
  const path = decoded.includes('//') ? decoded.replace(/\/{2,}/g, '/') : decoded
  if (DOT_SEGMENT.test(path)) return AMBIGUOUS
  if (!hasEscapes) return { ok: true, path, matchPath: path, query }
  let matchPath: string
  try {
    matchPath = decodeURIComponent(path)
  } catch {
    return AMBIGUOUS // not UTF-8: the upstream's reading of it cannot be predicted
  }
  if (/[\x00-\x1f\x7f]/.test(matchPath)) return AMBIGUOUS
  return { ok: true, path, matchPath, query }
}

/** Percent-escapes upper-cased and unreserved characters decoded; null when an escape is invalid or forbidden. */
function decodeUnreservedEscapes(rawPath: string): string | null {
  let path = ''
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i]!
    if (c !== '%') {
      path += c
      continue
    }
    const hex = rawPath.slice(i + 1, i + 3).toUpperCase()
    if (!/^[0-9A-F]{2}$/.test(hex)) return null
    if (FORBIDDEN_ESCAPES.has(hex)) return null
    const ch = String.fromCharCode(parseInt(hex, 16))
    path += UNRESERVED.test(ch) ? ch : `%${hex}`
    i += 2
  }
  return path
}
