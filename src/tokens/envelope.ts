import { hmacSha256Hex, safeEqual } from '../util/secret.js'

// The salted envelope of the MediaWiki seed (CONTRACT §5): standard base64 of the JSON
// {"verifyCallback": CALLBACK, "token": TOKEN, "sig": SIG}, SIG = hex HMAC-SHA256(salt, CALLBACK + TOKEN).

export type OpenedEnvelope =
  { readonly ok: true; readonly token: string; readonly verifyCallback: string } | { readonly ok: false }

// Envelopes hold a URL and a token; anything far bigger is not one of ours and is not decoded.
const MAX_ENVELOPE_CHARS = 8192
const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const HEX_SIG = /^[0-9a-fA-F]{64}$/
const REFUSED: OpenedEnvelope = Object.freeze({ ok: false })

export function sealEnvelope(salt: string, verifyCallback: string, token: string): string {
  const sig = hmacSha256Hex(salt, verifyCallback + token)
  return Buffer.from(JSON.stringify({ verifyCallback, token, sig }), 'utf8').toString('base64')
}

/** Never throws: malformed base64, JSON or member types, and a wrong signature, are all `{ok: false}`. */
export function openEnvelope(salt: string, text: string): OpenedEnvelope {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_ENVELOPE_CHARS) return REFUSED
  // Buffer.from(…, 'base64') silently skips junk characters; check the alphabet and padding first.
  const b64 = text.trim()
  if (!STANDARD_BASE64.test(b64)) return REFUSED
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(b64, 'base64').toString('utf8'))
  } catch {
    return REFUSED
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return REFUSED
  const { verifyCallback, token, sig } = parsed as Record<string, unknown>
  if (
    typeof verifyCallback !== 'string' ||
    typeof token !== 'string' ||
    token === '' ||
    typeof sig !== 'string' ||
    !HEX_SIG.test(sig)
  ) {
    return REFUSED
  }
  // Both sides are 64 hex characters here, so the comparison time does not depend on the content.
  if (!safeEqual(hmacSha256Hex(salt, verifyCallback + token), sig.toLowerCase())) return REFUSED
  return { ok: true, token, verifyCallback }
}
