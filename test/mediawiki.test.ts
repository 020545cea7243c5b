import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync, sign as signWith, type KeyObject } from 'node:crypto'
import { startTestGateway } from './helpers.js'
import { ALICE_PW, BOB_PW, login, makeUsers } from './support/users.js'
import { freePort, toolGate } from './support/processes.js'
import { CHROMIUM, launchChromium } from './support/chromium.js'
import { cookieJar, missingWikiPackages, startWiki } from './support/mediawiki.js'

// keygate in front of a real MediaWiki (Debian's package, SQLite, `php -S`), installed into a
// temp dir by install.php for this file alone. The wiki runs the shipped KeygateAuth extension
// (integrations/mediawiki/KeygateAuth): it logs users in from keygate's signed identity
// assertion, checked against keygate's JWKS, and ignores plain identity headers. keygate believes
// the wiki's own login through identityFromUpstream (meta=userinfo with the user's cookies).

const missing = missingWikiPackages()
if (missing && process.env.CI)
  throw new Error(`CI must run the MediaWiki test, but ${missing} is not installed (.ci/run installs it)`)
const skip = missing ? `needs ${missing}: apt-get install -y mediawiki php-cli php-sqlite3` : false

const KEY = 'mediawiki-test-key-0123456789abcdef0123456789'
const SALT = 'mediawiki-test-salt-0123456789abcdef012345'
const SERVICE_USER = 'ChatBot service user'
const WIKI_USER = 'Alice'
const WIKI_PASSWORD = 'Alice-Password-For-A-Throwaway-Wiki-0123'
const apiKey = { Authorization: `ApiKey ${KEY}` }
const pair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' })
// keygate's signing key; the attacker's has the same shape
const KEYGATE_KEY = pair()
const ATTACKER_KEY = pair()

async function setup() {
  const gatewayPort = await freePort()
  const wiki = await startWiki({
    keygateAuth: {
      JwksUrl: `http://127.0.0.1:${gatewayPort}/.well-known/jwks.json`,
      Audience: 'wiki',
      ServiceUser: SERVICE_USER,
      SyncGroups: ['sysop', 'bot'],
    },
  })
  // the service user keygate's ApiKey and AppToken callers act as, and a wiki user with a password
  await wiki.maintenance('createAndPromote', [
    '--bot',
    '--sysop',
    SERVICE_USER,
    'Service-Password-For-A-Throwaway-Wiki-01',
  ])
  await wiki.maintenance('createAndPromote', [WIKI_USER, WIKI_PASSWORD])
  const gw = await startTestGateway(
    {
      upstream: wiki.url,
      secrets: {
        salt: SALT,
        jwt: {
          keys: [
            { kid: 'k1', alg: 'ES256', privateKey: KEYGATE_KEY.privateKey.export({ type: 'pkcs8', format: 'pem' }) },
          ],
        },
      },
      identityAssertion: { audience: 'wiki' },
      users: await makeUsers(),
      serviceUser: { name: SERVICE_USER, groups: ['bot'] },
      apiKeys: [
        {
          name: 'chatbot',
          key: KEY,
          cidr: ['127.0.0.1/32'],
          allow: { paths: ['/mws/v1/app-token/generate', '/mws/v1/user-token/verify'], actionModules: ['opensearch'] },
        },
      ],
      tokenApi: { publicBase: 'http://127.0.0.1/w/rest.php' },
      identityFromUpstream: {
        url: '/w/api.php?action=query&meta=userinfo&uiprop=groups|email|realname&format=json',
        cacheTtl: '30s',
      },
      defaultPolicy: 'authenticated',
    },
    { listen: { host: '127.0.0.1', port: gatewayPort } },
  )
  return { wiki, gw }
}

const started = skip ? null : await setup()

// The token authenticator's browser helper runs in headless Chromium.
const browserSkip = skip || toolGate([CHROMIUM], 'apt-get install -y chromium').skip

function env() {
  assert.ok(started, 'the wiki and keygate are running')
  return started
}

const api = (base: string, query: string) => `${base}/w/api.php?${query}&format=json`
const form = (fields: Record<string, string>) => ({
  'content-type': 'application/x-www-form-urlencoded',
  body: new URLSearchParams({ ...fields, format: 'json' }).toString(),
})

async function post(url: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const f = form(fields)
  return fetch(url, { method: 'POST', headers: { ...headers, 'content-type': f['content-type'] }, body: f.body })
}

/** What the wiki itself says about a page's latest revision (straight to the wiki, no keygate). */
async function latestRevision(wikiUrl: string, title: string): Promise<{ user: string; content: string } | null> {
  const res = await fetch(
    api(
      wikiUrl,
      `action=query&prop=revisions&titles=${encodeURIComponent(title)}&rvprop=user%7Ccontent&rvslots=main&formatversion=2`,
    ),
  )
  const page = (await res.json()).query.pages[0]
  if (page.missing) return null
  return { user: page.revisions[0].user, content: page.revisions[0].slots.main.content }
}

test("MediaWiki: an ApiKey limited to opensearch gets the wiki's real opensearch results", { skip }, async () => {
  const { gw } = env()
  const res = await fetch(api(gw.url, 'action=opensearch&search=Main'), { headers: apiKey })
  const body = await res.text()
  assert.equal(res.status, 200, body)
  const json = JSON.parse(body)
  assert.equal(json[0], 'Main', body)
  assert.ok(json[1].includes('Main Page'), `opensearch found the installer's Main Page: ${body}`)
  // other modules stay closed to the key
  const search = await fetch(api(gw.url, 'action=query&list=search&srsearch=Main'), { headers: apiKey })
  assert.equal(search.status, 403, await search.text())
})

test(
  'MediaWiki: the opensearch-only ApiKey is refused action=edit, by GET and by POST, and the wiki never sees it',
  { skip },
  async () => {
    const { gw, wiki } = env()
    const get = await fetch(api(gw.url, 'action=edit&title=Keygate_refused&text=nope&token=%2B%5C'), {
      headers: apiKey,
    })
    const getBody = await get.json()
    assert.equal(get.status, 403, JSON.stringify(getBody))
    assert.equal(getBody.code, 'E1004', JSON.stringify(getBody))
    const byPost = await post(
      `${gw.url}/w/api.php`,
      { action: 'edit', title: 'Keygate_refused', text: 'nope', token: '+\\' },
      apiKey,
    )
    const postBody = await byPost.json()
    assert.equal(byPost.status, 403, JSON.stringify(postBody))
    assert.equal(postBody.code, 'E1004', JSON.stringify(postBody))
    assert.equal(await latestRevision(wiki.url, 'Keygate_refused'), null, 'the page was never created')
  },
)

test(
  'MediaWiki: an AppToken generated by the ApiKey reads and edits the wiki as the service user',
  { skip },
  async () => {
    const { gw, wiki } = env()
    const gen = await fetch(`${gw.url}/mws/v1/app-token/generate`, { method: 'POST', headers: apiKey })
    const genBody = await gen.json()
    assert.equal(gen.status, 200, JSON.stringify(genBody))
    const envelope = JSON.parse(Buffer.from(genBody.value, 'base64').toString('utf8'))
    assert.equal(envelope.verifyCallback, 'http://127.0.0.1/w/rest.php', JSON.stringify(envelope))
    assert.match(envelope.token, /^[0-9a-f]{32,}$/, 'the inner token is hex')
    const appToken = { Authorization: `AppToken ${envelope.token}` }

    // read: page text through the Action API and the REST API
    const read = await fetch(
      api(gw.url, 'action=query&prop=revisions&titles=Main_Page&rvprop=content&rvslots=main&formatversion=2'),
      { headers: appToken },
    )
    const readBody = await read.json()
    assert.equal(read.status, 200, JSON.stringify(readBody))
    assert.match(
      readBody.query.pages[0].revisions[0].slots.main.content,
      /MediaWiki has been installed/,
      'the Main Page text',
    )
    const rest = await fetch(`${gw.url}/w/rest.php/v1/page/Main_Page`, { headers: appToken })
    const restBody = await rest.json()
    assert.equal(rest.status, 200, JSON.stringify(restBody))
    assert.equal(restBody.title, 'Main Page', JSON.stringify(restBody).slice(0, 300))

    // the wiki knows the caller as the service user, so it hands out a real CSRF token
    const who = await fetch(api(gw.url, 'action=query&meta=userinfo&uiprop=groups'), { headers: appToken })
    const whoBody = await who.json()
    assert.equal(whoBody.query.userinfo.name, SERVICE_USER, JSON.stringify(whoBody))
    assert.ok(
      whoBody.query.userinfo.groups.includes('sysop'),
      `the service user is a sysop: ${JSON.stringify(whoBody)}`,
    )
    const tokens = await fetch(api(gw.url, 'action=query&meta=tokens'), { headers: appToken })
    const csrf = (await tokens.json()).query.tokens.csrftoken as string
    assert.notEqual(csrf, '+\\', "an anonymous CSRF token would mean the wiki did not take keygate's identity")

    const text = `Written through keygate at ${new Date().toISOString()}`
    const edit = await post(
      `${gw.url}/w/api.php`,
      { action: 'edit', title: 'Keygate AppToken edit', text, summary: 'keygate test', token: csrf },
      appToken,
    )
    const editBody = await edit.json()
    assert.equal(edit.status, 200, JSON.stringify(editBody))
    assert.equal(editBody.edit?.result, 'Success', JSON.stringify(editBody))
    assert.deepEqual(await latestRevision(wiki.url, 'Keygate AppToken edit'), { user: SERVICE_USER, content: text })

    // the ApiKey itself is still refused the edit that its AppToken may make
    const again = await post(
      `${gw.url}/w/api.php`,
      { action: 'edit', title: 'Keygate AppToken edit', text: 'by key', token: csrf },
      apiKey,
    )
    assert.equal(again.status, 403, await again.text())
  },
)

test(
  "MediaWiki: a user logged in by the wiki's own cookies gets a user token through identityFromUpstream, and verify returns that wiki user",
  { skip },
  async () => {
    const { gw, wiki } = env()
    // log in at the wiki itself, as a browser would (action=clientlogin with the user's password)
    const jar = cookieJar()
    const lt = await fetch(api(wiki.url, 'action=query&meta=tokens&type=login'))
    jar.take(lt)
    const loginToken = (await lt.json()).query.tokens.logintoken as string
    const login = await post(
      `${wiki.url}/w/api.php`,
      {
        action: 'clientlogin',
        username: WIKI_USER,
        password: WIKI_PASSWORD,
        loginreturnurl: `${wiki.url}/`,
        logintoken: loginToken,
      },
      { cookie: jar.header() },
    )
    jar.take(login)
    const loginBody = await login.json()
    assert.equal(loginBody.clientlogin?.status, 'PASS', JSON.stringify(loginBody))
    const self = await fetch(api(wiki.url, 'action=query&meta=userinfo&uiprop=groups%7Cemail%7Crealname'), {
      headers: { cookie: jar.header() },
    })
    const me = (await self.json()).query.userinfo
    assert.equal(me.name, WIKI_USER, JSON.stringify(me))
    assert.ok(me.id > 0, 'a registered user')

    // through keygate, with nothing but the wiki's cookies
    const gen = await fetch(`${gw.url}/mws/v1/user-token/generate`, { headers: { cookie: jar.header() } })
    const genBody = await gen.json()
    assert.equal(gen.status, 200, JSON.stringify(genBody))
    assert.match(genBody.value, /^[0-9a-f]{32,}$/, JSON.stringify(genBody))

    const verify = await fetch(`${gw.url}/mws/v1/user-token/verify/${genBody.value}`, { headers: apiKey })
    const user = await verify.json()
    assert.equal(verify.status, 200, JSON.stringify(user))
    assert.equal(user.id, me.id, JSON.stringify(user))
    assert.equal(user.username, WIKI_USER, JSON.stringify(user))
    assert.deepEqual(user.groups, me.groups, JSON.stringify(user))
    assert.equal(user.real_name, me.realname, JSON.stringify(user))

    // single use: the same token is refused the second time
    const twice = await fetch(`${gw.url}/mws/v1/user-token/verify/${genBody.value}`, { headers: apiKey })
    assert.equal(twice.status, 400, await twice.text())

    // the same cookies through keygate reach the wiki as that user (X-Auth-User from the upstream identity)
    const proxied = await fetch(api(gw.url, 'action=query&meta=userinfo'), { headers: { cookie: jar.header() } })
    const proxiedBody = await proxied.json()
    assert.equal(proxied.status, 200, JSON.stringify(proxiedBody))
    assert.equal(proxiedBody.query.userinfo.name, WIKI_USER, JSON.stringify(proxiedBody))

    // without the wiki's cookies there is no wiki user: an anonymous token (id 0), or 401 elsewhere
    const anonGen = await fetch(`${gw.url}/mws/v1/user-token/generate`)
    const anonValue = (await anonGen.json()).value as string
    const anon = await fetch(`${gw.url}/mws/v1/user-token/verify/${anonValue}`, { headers: apiKey })
    const anonBody = await anon.json()
    assert.equal(anonBody.id, 0, JSON.stringify(anonBody))
    const noCookies = await fetch(api(gw.url, 'action=query&meta=userinfo'))
    assert.equal(noCookies.status, 401, await noCookies.text())
  },
)

// ------------------------------------------------------------------------------------------------
// The KeygateAuth extension: keygate's signed assertion logs users in; nothing else does.

interface UserInfo {
  id: number
  name: string
  groups: string[]
  anon?: string
}

async function userinfo(base: string, headers: Record<string, string>): Promise<{ status: number; info: UserInfo }> {
  const res = await fetch(api(base, 'action=query&meta=userinfo&uiprop=groups'), { headers })
  const text = await res.text()
  let body: { query?: { userinfo?: UserInfo } }
  try {
    body = JSON.parse(text)
  } catch {
    assert.fail(`not a JSON answer (${res.status}): ${text.slice(0, 300)}`)
  }
  assert.ok(body.query?.userinfo, text.slice(0, 300))
  return { status: res.status, info: body.query.userinfo }
}

async function keygateLogin(port: number, username: string, password: string, type: 'access' | 'session') {
  const r = await login(port, { username, password, token_type: type })
  assert.equal(r.status, 200, r.body)
  return r.json.token as string
}

test(
  'MediaWiki: a Bearer user new to the wiki is created on first visit, with name, id and the groups keygate gives',
  { skip },
  async () => {
    const { gw, wiki } = env()
    const before = await fetch(api(wiki.url, 'action=query&list=users&ususers=Bob'))
    assert.equal((await before.json()).query.users[0].missing, '', 'no Bob in the wiki yet')
    const token = await keygateLogin(gw.port, 'bob', BOB_PW, 'access')
    const { status, info } = await userinfo(gw.url, { Authorization: `Bearer ${token}` })
    assert.equal(status, 200)
    assert.equal(info.name, 'Bob', JSON.stringify(info))
    assert.ok(info.id > 0, `a registered wiki user: ${JSON.stringify(info)}`)
    assert.ok(info.groups.includes('sysop'), `keygate's sysop is the wiki's: ${JSON.stringify(info)}`)
    const after = await fetch(api(wiki.url, 'action=query&list=users&ususers=Bob&usprop=groups'))
    const bob = (await after.json()).query.users[0]
    assert.equal(bob.userid, info.id, 'the account exists in the wiki now')
    assert.ok(bob.groups.includes('sysop'), JSON.stringify(bob))
  },
)

test(
  "MediaWiki: a keygate session is the wiki's existing user of that name, and managed groups follow keygate's",
  { skip },
  async () => {
    const { gw, wiki } = env()
    // the wiki made Alice a bot on its own; keygate does not say bot: the extension takes it away
    await wiki.maintenance('createAndPromote', ['--force', '--bot', WIKI_USER])
    const session = await keygateLogin(gw.port, 'alice', ALICE_PW, 'session')
    const { info } = await userinfo(gw.url, { cookie: `keygate_session=${session}` })
    const direct = await fetch(api(wiki.url, 'action=query&list=users&ususers=Alice&usprop=groups'))
    const wikiAlice = (await direct.json()).query.users[0]
    assert.equal(info.name, WIKI_USER, JSON.stringify(info))
    assert.equal(info.id, wikiAlice.userid, 'the existing account, not a new one')
    assert.ok(!info.groups.includes('bot'), `bot removed: ${JSON.stringify(info)}`)
    assert.ok(!wikiAlice.groups.includes('bot'), `bot removed in the wiki: ${JSON.stringify(wikiAlice)}`)
    assert.ok(!info.groups.includes('editors'), 'groups the extension does not manage are not created')
  },
)

test(
  'MediaWiki: an edit made through keygate is attributed to the signed-in user in the page history',
  { skip },
  async () => {
    const { gw, wiki } = env()
    const auth = { Authorization: `Bearer ${await keygateLogin(gw.port, 'bob', BOB_PW, 'access')}` }
    const tokens = await fetch(api(gw.url, 'action=query&meta=tokens'), { headers: auth })
    const csrf = (await tokens.json()).query.tokens.csrftoken as string
    assert.notEqual(csrf, '+\\', 'a user CSRF token')
    const text = `Bob through keygate at ${new Date().toISOString()}`
    const edit = await post(
      `${gw.url}/w/api.php`,
      { action: 'edit', title: 'Keygate Bob edit', text, summary: 'keygate test', token: csrf },
      auth,
    )
    const body = await edit.json()
    assert.equal(body.edit?.result, 'Success', JSON.stringify(body))
    assert.deepEqual(await latestRevision(wiki.url, 'Keygate Bob edit'), { user: 'Bob', content: text })
  },
)

const b64u = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
function assertionJwt(header: object, claims: object, signer: ((data: string) => Buffer) | null): string {
  const data = `${b64u(header)}.${b64u(claims)}`
  return `${data}.${signer ? signer(data).toString('base64url') : ''}`
}
const es256 = (key: KeyObject) => (data: string) =>
  signWith('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' })

test(
  'MediaWiki: straight to the wiki, only a valid assertion logs in: forged, expired, wrong-audience, wrong-key ones and plain X-Auth-User are anonymous',
  { skip },
  async () => {
    const { wiki } = env()
    const now = Math.floor(Date.now() / 1000)
    const claims = (o: object = {}) => ({
      iss: 'keygate',
      aud: 'wiki',
      sub: 'Admin',
      uid: 1,
      name: '',
      email: '',
      groups: ['sysop'],
      scheme: 'bearer',
      iat: now,
      exp: now + 60,
      ...o,
    })
    const header = { alg: 'ES256', typ: 'JWT', kid: 'k1' }
    const keygateSigned = es256(KEYGATE_KEY.privateKey)
    const publicPem = KEYGATE_KEY.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const rows: Array<[string, Record<string, string>]> = [
      [
        "forged: signed by another key under keygate's kid",
        { 'X-Keygate-Assertion': assertionJwt(header, claims(), es256(ATTACKER_KEY.privateKey)) },
      ],
      [
        'wrong key: a kid keygate never published',
        {
          'X-Keygate-Assertion': assertionJwt({ ...header, kid: 'attacker' }, claims(), es256(ATTACKER_KEY.privateKey)),
        },
      ],
      [
        'expired',
        { 'X-Keygate-Assertion': assertionJwt(header, claims({ iat: now - 600, exp: now - 120 }), keygateSigned) },
      ],
      ['wrong audience', { 'X-Keygate-Assertion': assertionJwt(header, claims({ aud: 'other-app' }), keygateSigned) }],
      ['wrong issuer', { 'X-Keygate-Assertion': assertionJwt(header, claims({ iss: 'someone' }), keygateSigned) }],
      ['alg none', { 'X-Keygate-Assertion': assertionJwt({ alg: 'none', kid: 'k1' }, claims(), null) }],
      [
        'HS256 keyed with the public key',
        {
          'X-Keygate-Assertion': assertionJwt({ ...header, alg: 'HS256' }, claims(), (d) =>
            createHmac('sha256', publicPem).update(d).digest(),
          ),
        },
      ],
      ['garbage', { 'X-Keygate-Assertion': 'not a token' }],
      ['plain X-Auth-User', { 'X-Auth-User': 'Admin', 'X-Auth-Groups': 'sysop', 'X-Auth-Scheme': 'bearer' }],
    ]
    for (const [name, headers] of rows) {
      const { status, info } = await userinfo(wiki.url, headers)
      assert.equal(status, 200, `${name}: an answer, not an error page`)
      assert.equal(info.id, 0, `${name}: ${JSON.stringify(info)}`)
      assert.equal(info.anon, '', `${name}: anonymous`)
    }
    // the control: the same request with keygate's own signature is Admin (so the rows above can fail)
    const good = await userinfo(wiki.url, { 'X-Keygate-Assertion': assertionJwt(header, claims(), keygateSigned) })
    assert.equal(good.info.name, 'Admin', JSON.stringify(good.info))
    assert.ok(good.info.id > 0)
  },
)

test(
  'MediaWiki: mws.tokenAuthenticator.generateToken() in a wiki page returns a token that user-token/verify accepts',
  { skip: browserSkip },
  async () => {
    const { gw } = env()
    const token = await keygateLogin(gw.port, 'bob', BOB_PW, 'access')
    const browser = await launchChromium()
    const context = await browser.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${token}` } })
    const page = await context.newPage()
    await page.goto(`${gw.url}/w/index.php?title=Main_Page`)
    const value = await page.evaluate(async () => {
      const w = window as unknown as {
        mw: { loader: { using(m: string): Promise<unknown> } }
        mws: { tokenAuthenticator: { generateToken(withIssuer: boolean): Promise<string> } }
      }
      await w.mw.loader.using('ext.keygateAuth.tokenAuthenticator')
      return w.mws.tokenAuthenticator.generateToken(false)
    })
    assert.match(value, /^[0-9a-f]{32,}$/, value)
    const verify = await fetch(`${gw.url}/mws/v1/user-token/verify/${value}`, { headers: apiKey })
    const user = await verify.json()
    assert.equal(verify.status, 200, JSON.stringify(user))
    assert.equal(user.username, 'bob', JSON.stringify(user))
  },
)
