import { createHmac } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { Store } from '../store/types.js'
import { randomToken, safeEqual } from '../util/secret.js'

// CSRF protection of the sign-in and sign-out forms: a signed double-submit token. The browser
// holds a random cookie; the form carries an HMAC of it under a key shared by every instance (kept
// in the store). A page on another site can neither read the cookie nor make the HMAC, and a
// sibling subdomain that plants a cookie of its own still cannot make the matching form value.
// Origin is only a second opinion: Chromium sends `Origin: null` for a form POST from a page with
// `Referrer-Policy: no-referrer`, so an absent or null Origin is not a refusal by itself.

const KEY = 'signin:csrf-key'
const KEY_TTL_MS = 10 * 365 * 24 * 3600_000

export interface Csrf {
  /** a fresh random value for the CSRF cookie */
  newCookie(): string
  /** the form field that matches a cookie value */
  tokenFor(cookie: string): Promise<string>
  /** whether a form POST may be believed: its token matches its cookie and no header says it came from elsewhere */
  check(input: {
    cookie: string | null
    token: string | undefined
    headers: IncomingHttpHeaders
    ownOrigin: string | null
  }): Promise<boolean>
}

export function createCsrf(store: Store): Csrf {
  let key: Promise<string> | null = null
  const keyOf = (): Promise<string> =>
    (key ??= (async () => {
      await store.setIfAbsent(KEY, randomToken(32), KEY_TTL_MS)
      const shared = await store.get(KEY)
      if (shared === null) throw new Error('the CSRF key vanished from the store')
      return shared
    })().catch((err: unknown) => {
      key = null // the store was down: try again on the next form
      throw err
    }))
  const tokenFor = async (cookie: string) =>
    createHmac('sha256', await keyOf())
      .update(`csrf:${cookie}`)
      .digest('base64url')

  return {
    newCookie: () => randomToken(16),
    tokenFor,
    async check({ cookie, token, headers, ownOrigin }) {
      if (headers['sec-fetch-site'] === 'cross-site') return false
      const origin = headers.origin
      if (origin !== undefined && origin !== 'null' && origin !== ownOrigin) return false
      if (!cookie || !token || !/^[0-9a-f]{32}$/.test(cookie)) return false
      return safeEqual(await tokenFor(cookie), token)
    },
  }
}
