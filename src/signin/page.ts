import { createHash } from 'node:crypto'

// The sign-in, sign-out and message pages: server-rendered HTML that needs no JavaScript, one CSS
// block (allowed by its hash in the page's Content-Security-Policy), every value escaped.

const CSS = `
:root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--text:#1d2330;--muted:#5b6475;--line:#d5d9e0;--accent:#1f5fbf;--accent-text:#fff;--error:#b3261e;--error-bg:#fdecea}
@media (prefers-color-scheme:dark){:root{--bg:#15181e;--card:#1f242d;--text:#e8ebf0;--muted:#a3acba;--line:#39414e;--accent:#6ea2ff;--accent-text:#0b1220;--error:#ffb4ab;--error-bg:#3b1a18}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px 16px;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{width:100%;max-width:400px;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:32px 28px;box-shadow:0 2px 12px rgba(0,0,0,.06)}
.brand{margin:0 0 4px;font-size:.85rem;font-weight:600;letter-spacing:.04em;text-transform:uppercase;color:var(--muted)}
h1{margin:0 0 24px;font-size:1.5rem;line-height:1.25}
p{margin:0 0 16px}
.muted{color:var(--muted);font-size:.95rem}
form{margin:0}
label{display:block;margin:0 0 6px;font-weight:600}
input[type=text],input[type=password]{display:block;width:100%;margin:0 0 16px;padding:10px 12px;font:inherit;color:inherit;background:var(--card);border:1px solid var(--line);border-radius:8px}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
input[aria-invalid=true]{border-color:var(--error)}
.check{display:flex;gap:8px;align-items:center;margin:0 0 20px;font-weight:400}
button{display:block;width:100%;padding:11px 16px;font:inherit;font-weight:600;border-radius:8px;border:1px solid var(--accent);background:var(--accent);color:var(--accent-text);cursor:pointer}
button.secondary{background:transparent;color:var(--text);border-color:var(--line)}
.providers{display:grid;gap:10px;margin:0 0 8px}
.or{display:flex;align-items:center;gap:12px;margin:20px 0;color:var(--muted);font-size:.9rem}
.or::before,.or::after{content:"";flex:1;border-top:1px solid var(--line)}
.error{margin:0 0 20px;padding:10px 12px;border-radius:8px;background:var(--error-bg);color:var(--error);font-weight:600}
a{color:var(--accent)}
`.trim()

const STYLE_HASH = createHash('sha256').update(CSS).digest('base64')

/** The page's policy: no script at all, this one style block, forms only to `formTargets`. */
export function pageSecurityHeaders(formTargets: readonly string[]): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': [
      "default-src 'none'",
      `style-src 'sha256-${STYLE_HASH}'`,
      "img-src 'self' data:",
      // A form's redirect (to the return address, a provider) is checked against form-action too.
      `form-action 'self'${formTargets.map((t) => ` ${t}`).join('')}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]!)

function layout(title: string, brand: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<p class="brand">${escapeHtml(brand)}</p>
${body}
</main>
</body>
</html>
`
}

const hidden = (name: string, value: string) =>
  `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`

export interface SignInPageInput {
  /** the gateway's name (shown small, above the title) */
  readonly brand: string
  /** the app the person signs in to; '' for none */
  readonly appName: string
  readonly action: string
  readonly csrf: string
  readonly rd: string
  readonly local: boolean
  readonly providers: readonly { readonly id: string; readonly name: string }[]
  /** an error about the password form, shown above it and tied to its fields */
  readonly error?: string
  readonly username?: string
}

export function renderSignInPage(p: SignInPageInput): string {
  const title = p.appName ? `Sign in to ${p.appName}` : 'Sign in'
  const providers = p.providers.length
    ? `<form method="post" action="${escapeHtml(p.action)}" class="providers">
${hidden('csrf', p.csrf)}${hidden('rd', p.rd)}
${p.providers
  .map(
    (pr) =>
      `<button type="submit" name="provider" value="${escapeHtml(pr.id)}">Sign in with ${escapeHtml(pr.name)}</button>`,
  )
  .join('\n')}
</form>`
    : ''
  const invalid = p.error ? ' aria-invalid="true" aria-describedby="form-error"' : ''
  const local = p.local
    ? `<form method="post" action="${escapeHtml(p.action)}">
${hidden('csrf', p.csrf)}${hidden('rd', p.rd)}
${p.error ? `<p class="error" id="form-error" role="alert">${escapeHtml(p.error)}</p>` : ''}
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required${
        p.error ? '' : ' autofocus'
      } value="${escapeHtml(p.username ?? '')}"${invalid}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${
        p.error ? ' autofocus' : ''
      }${invalid}>
<label class="check"><input type="checkbox" name="remember" value="on"> Keep me signed in</label>
<button type="submit">Sign in</button>
</form>`
    : ''
  const separator = providers && local ? '<p class="or">or with a password</p>' : ''
  return layout(title, p.brand, `<h1>${escapeHtml(title)}</h1>\n${providers}\n${separator}\n${local}`)
}

export function renderSignOutPage(p: {
  brand: string
  action: string
  csrf: string
  rd: string
  username: string | null
}): string {
  const who = p.username
    ? `<p>You are signed in as <strong>${escapeHtml(p.username)}</strong>.</p>`
    : '<p class="muted">You are not signed in on this browser.</p>'
  return layout(
    'Sign out',
    p.brand,
    `<h1>Sign out</h1>
${who}
<form method="post" action="${escapeHtml(p.action)}">
${hidden('csrf', p.csrf)}${hidden('rd', p.rd)}
<button type="submit">Sign out</button>
</form>`,
  )
}

/** A page that explains a refusal or a failure and offers one way on (never an automatic redirect). */
export function renderMessagePage(p: {
  brand: string
  title: string
  message: string
  link?: { href: string; text: string }
}): string {
  return layout(
    p.title,
    p.brand,
    `<h1>${escapeHtml(p.title)}</h1>
<p>${escapeHtml(p.message)}</p>
${p.link ? `<p><a href="${escapeHtml(p.link.href)}">${escapeHtml(p.link.text)}</a></p>` : ''}`,
  )
}
