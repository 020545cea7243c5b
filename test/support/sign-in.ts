import { connect } from 'node:net'
import { once } from 'node:events'
import { parseRawResponse } from '../helpers.js'

// A person's browser, by hand over raw sockets: every Set-Cookie kept (a header map keeps one),
// a cookie jar, and the sign-in form's hidden fields read from the page.

export interface PageResponse {
  status: number
  headers: Record<string, string>
  setCookies: string[]
  body: string
}

export async function request(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<PageResponse> {
  const all: Record<string, string> = { Host: 'gw.test', ...headers }
  if (body !== undefined) all['Content-Length'] = String(Buffer.byteLength(body))
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}Connection: close\r\n\r\n`
  const socket = connect({ port, host: '127.0.0.1' })
  await once(socket, 'connect')
  socket.write(head + (body ?? ''))
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  await Promise.race([once(socket, 'end'), once(socket, 'close')])
  socket.destroy()
  const text = Buffer.concat(chunks).toString('utf8')
  const parsed = parseRawResponse(text)
  const headText = text.split('\r\n\r\n')[0] ?? ''
  const setCookies = headText
    .split('\r\n')
    .filter((l) => /^set-cookie:/i.test(l))
    .map((l) => l.slice(l.indexOf(':') + 1).trim())
  return { status: parsed.status, headers: parsed.headers, setCookies, body: parsed.body }
}

export function cookieAttributes(setCookie: string) {
  const [pair, ...attrs] = setCookie.split(';').map((s) => s.trim())
  const i = pair!.indexOf('=')
  return {
    name: pair!.slice(0, i),
    value: pair!.slice(i + 1),
    attributes: new Map(
      attrs.map((a) => {
        const j = a.indexOf('=')
        return j === -1 ? [a.toLowerCase(), ''] : [a.slice(0, j).toLowerCase(), a.slice(j + 1)]
      }),
    ),
  }
}

export class Jar {
  readonly cookies = new Map<string, string>()
  take(res: PageResponse): PageResponse {
    for (const sc of res.setCookies) {
      const c = cookieAttributes(sc)
      if (c.attributes.get('max-age') === '0' || c.value === '') this.cookies.delete(c.name)
      else this.cookies.set(c.name, c.value)
    }
    return res
  }
  header(): Record<string, string> {
    return this.cookies.size ? { Cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}
  }
}

export const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'

/** The value of a hidden input on a page. */
export function hiddenField(html: string, name: string): string {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`).exec(html)
  if (!m) throw new Error(`no hidden field ${name} on the page:\n${html.slice(0, 2000)}`)
  return m[1]!
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
}

/** GET a form page with the jar, then POST its form with `fields` (csrf and rd from the page unless given). */
export async function submitForm(
  port: number,
  jar: Jar,
  pagePath: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<PageResponse> {
  const page = jar.take(await request(port, 'GET', pagePath, { Accept: BROWSER_ACCEPT, ...jar.header() }))
  if (page.status !== 200) throw new Error(`form page ${pagePath}: ${page.status}`)
  const action = /<form method="post" action="([^"]+)"/.exec(page.body)?.[1] ?? pagePath.split('?')[0]!
  const form = { csrf: hiddenField(page.body, 'csrf'), rd: hiddenField(page.body, 'rd'), ...fields }
  return request(
    port,
    'POST',
    action,
    { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'http://gw.test', ...jar.header(), ...headers },
    new URLSearchParams(form).toString(),
  )
}
