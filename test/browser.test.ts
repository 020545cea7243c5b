import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { startTestGateway, startUpstream } from './helpers.js'
import { ALICE_PW, JWT_SECRET, makeUsers } from './support/users.js'
import { startOidcProvider } from './support/oidc-provider.js'
import { IDP_USERS, providerEntry } from './support/oidc-fixtures.js'
import { freePort, toolGate } from './support/processes.js'
import { startCaddyExample, startNginxExample } from './support/example-proxies.js'
import { CHROMIUM, launchChromium } from './support/chromium.js'

// A person in a real browser (Debian's chromium, driven by playwright-core; no browser is ever
// downloaded): open a protected page, land on the sign-in page, sign in with the provider (its
// own login form) or the password form, come back to the page with the identity at the app, sign
// out. Directly, through the shipped nginx auth_request example, and through the shipped Caddy
// forward_auth example (issue 14).

const gate = toolGate([CHROMIUM, 'nginx', 'caddy'], 'apt-get install -y chromium nginx caddy')
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))

// The app: a page that shows who keygate said the person is.
const app = await startUpstream((req, res) => {
  const user = req.headers['x-auth-user'] ?? ''
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
  res.end(
    `<!doctype html><title>App</title><p id="path">${req.url}</p><p id="user">${String(user)}</p><p id="groups">${String(req.headers['x-auth-groups'] ?? '')}</p>`,
  )
})
const [gwPort, nginxPort, caddyPort] = [await freePort(), await freePort(), await freePort()]
const origins = [gwPort, nginxPort, caddyPort].map((p) => `http://127.0.0.1:${p}`)
const idp = await startOidcProvider({
  users: IDP_USERS,
  redirectUris: origins.map((o) => `${o}/_keygate/oauth2/callback/corp`),
  postLogoutRedirectUris: origins.map((o) => `${o}/_keygate/sign-in`),
})
const gw = await startTestGateway(
  {
    upstream: app.url,
    trustedProxies: ['127.0.0.1/32'],
    secrets: { jwt: { secret: JWT_SECRET } },
    users: await makeUsers(),
    signIn: {
      appName: 'Team Wiki',
      providers: [providerEntry(idp.issuer, 'corp')],
    },
  },
  { listen: { host: '127.0.0.1', port: gwPort } },
)

let page: Page | null = null
if (!gate.skip) {
  const appAddr = app.url.slice('http://'.length)
  await startNginxExample({ port: nginxPort, keygatePort: gw.port, appAddr })
  await startCaddyExample({ port: caddyPort, keygatePort: gw.port, appAddr })
  page = await (await (await launchChromium()).newContext()).newPage()
}

/** One person's journey through `origin`: provider sign-in, sign-out (through the provider), password sign-in, sign-out. */
async function journey(p: Page, origin: string) {
  await p.context().clearCookies()
  const protectedUrl = `${origin}/wiki/Start?title=A%20page&x=1`
  await p.goto(protectedUrl)
  assert.ok(p.url().startsWith(`${origin}/_keygate/sign-in?rd=`), p.url())
  assert.equal(await p.locator('h1').textContent(), 'Sign in to Team Wiki')

  await p.getByRole('button', { name: 'Sign in with Corp SSO' }).click()
  await p.waitForURL(`${idp.issuer}/interaction/**`)
  await p.getByLabel('IdP username').fill('carol')
  await p.getByLabel('IdP password').fill(IDP_USERS.carol.password)
  await p.getByRole('button', { name: 'Continue at the IdP' }).click()
  await p.waitForURL(protectedUrl)
  assert.equal(await p.locator('#user').textContent(), 'carol')
  assert.match((await p.locator('#groups').textContent()) ?? '', /editors/)
  assert.equal(await p.locator('#path').textContent(), '/wiki/Start?title=A%20page&x=1')

  await p.goto(`${origin}/_keygate/sign-out`)
  assert.match((await p.locator('main').textContent()) ?? '', /signed in as carol/)
  await p.getByRole('button', { name: 'Sign out' }).click()
  await p.waitForURL(`${idp.issuer}/session/end**`)
  await p.getByRole('button', { name: 'Sign out at the IdP' }).click()
  await p.waitForURL(`${origin}/_keygate/sign-in`)
  await p.goto(protectedUrl)
  assert.ok(p.url().startsWith(`${origin}/_keygate/sign-in?rd=`), 'signed out: the page asks to sign in again')

  await p.getByLabel('Username').fill('alice')
  await p.getByLabel('Password').fill('wrong password')
  await p.getByRole('button', { name: 'Sign in', exact: true }).click()
  assert.equal(await p.getByRole('alert').textContent(), 'Incorrect username or password.')
  await p.getByLabel('Password').fill(ALICE_PW)
  await p.getByRole('button', { name: 'Sign in', exact: true }).click()
  await p.waitForURL(protectedUrl)
  assert.equal(await p.locator('#user').textContent(), 'alice')

  await p.goto(`${origin}/_keygate/sign-out`)
  await p.getByRole('button', { name: 'Sign out' }).click()
  await p.waitForURL(`${origin}/_keygate/sign-in?rd=**`)
  await p.goto(protectedUrl)
  assert.ok(p.url().startsWith(`${origin}/_keygate/sign-in?rd=`))
}

test(
  'chromium, straight to keygate: provider sign-in, sign-out through the provider, password sign-in, sign-out',
  { skip: gate.skip },
  async () => {
    await journey(page!, origins[0]!)
  },
)

test('chromium through the shipped nginx auth_request example: the same journey', { skip: gate.skip }, async () => {
  await journey(page!, origins[1]!)
})

test('chromium through the shipped Caddy forward_auth example: the same journey', { skip: gate.skip }, async () => {
  await journey(page!, origins[2]!)
})

test('screenshots of the sign-in page at 375 px and 1280 px (test artifacts)', { skip: gate.skip }, async () => {
  await mkdir(ARTIFACTS, { recursive: true })
  const p = page!
  await p.context().clearCookies()
  for (const [width, height] of [
    [375, 740],
    [1280, 800],
  ] as const) {
    await p.setViewportSize({ width, height })
    await p.goto(`${origins[0]}/wiki/Start`)
    await p.screenshot({ path: `${ARTIFACTS}sign-in-${width}.png` })
    // readable: nothing wider than the screen, text at a size a person can read
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 0, `no sideways scrolling at ${width} px`)
  }
  await p.setViewportSize({ width: 1280, height: 720 })
})
