import { after } from 'node:test'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import Provider, { type Configuration } from 'oidc-provider'
import { SignJWT, importJWK, type JWK } from 'jose'

// A real OpenID Connect provider (oidc-provider, the certified Node OP) on loopback, with a test
// client, users with passwords and groups, and its own login form (plain HTML, no script) in
// place of the development one. `tamper` rewrites the ID token in the token endpoint's answer,
// re-signed with the provider's own key: what a misbehaving or compromised provider would send.

export interface TestUser {
  readonly password: string
  readonly claims: Record<string, unknown>
}

export interface IdTokenTamper {
  (token: { header: Record<string, unknown>; claims: Record<string, unknown>; original: string }): Promise<string>
}

export interface TestProvider {
  readonly issuer: string
  readonly port: number
  readonly privateJwk: JWK
  /** set to rewrite the next ID tokens; null to stop */
  tamper: IdTokenTamper | null
  /** every id_token the token endpoint answered with (after any tampering) */
  readonly idTokens: string[]
  /** signs claims with the provider's key (RS256, its kid) */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>
  close(): Promise<void>
}

export const CLIENT_ID = 'keygate'
export const CLIENT_SECRET = 'keygate-client-secret-0123456789abcdef'

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const loginPage = (uid: string, error = '') => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test IdP sign-in</title></head>
<body><h1>Test IdP</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label for="login">IdP username</label><input id="login" name="login" autocomplete="username">
<label for="idp-password">IdP password</label><input id="idp-password" type="password" name="password">
<button type="submit">Continue at the IdP</button>
</form></body></html>`

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

export async function startOidcProvider(opts: {
  users: Record<string, TestUser>
  redirectUris: string[]
  postLogoutRedirectUris: string[]
  /** false: the ID token carries `sub` and the protocol's claims only, the scopes' claims are at userinfo (as many providers do) */
  claimsInIdToken?: boolean
}): Promise<TestProvider> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const issuer = `http://127.0.0.1:${port}`
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const privateJwk = { ...(privateKey.export({ format: 'jwk' }) as JWK), kid: 'test-key', alg: 'RS256', use: 'sig' }
  const configuration: Configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: opts.redirectUris,
        post_logout_redirect_uris: opts.postLogoutRedirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [privateJwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'org'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    conformIdTokenClaims: opts.claimsInIdToken === false,
    pkce: { methods: ['S256'], required: () => true },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test IdP sign-out</title></head><body>${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out at the IdP</button></body></html>`
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.body = '<!doctype html><title>Signed out</title><p>Signed out at the IdP</p>'
        },
      },
    },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx, sub) => {
      const user = opts.users[sub]
      if (!user) return undefined
      return { accountId: sub, claims: () => ({ sub, ...user.claims }) }
    },
    // first-party client: no consent screen, every requested scope granted
    loadExistingGrant: async (ctx) => {
      const oidc = ctx.oidc
      const grantId = oidc.result?.consent?.grantId ?? oidc.session!.grantIdFor(oidc.client!.clientId)
      if (grantId) return oidc.provider.Grant.find(grantId)
      const grant = new oidc.provider.Grant({ clientId: oidc.client!.clientId, accountId: oidc.session!.accountId! })
      grant.addOIDCScope('openid profile email groups')
      await grant.save()
      return grant
    },
  }
  const provider = new Provider(issuer, configuration)
  const callback = provider.callback()
  const signingKey = await importJWK(privateJwk, 'RS256')
  const state: TestProvider = {
    issuer,
    port,
    privateJwk,
    tamper: null,
    idTokens: [],
    sign: (claims, header = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'test-key', ...header }).sign(signingKey),
    async close() {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }

  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const details = await provider.interactionDetails(req, res)
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end(loginPage(details.uid))
    }
    const form = await readForm(req)
    const login = form.get('login') ?? ''
    const user = opts.users[login]
    if (!user || user.password !== form.get('password')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end(loginPage(details.uid, 'Wrong IdP username or password'))
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false })
  }

  /** The token endpoint's answer, its id_token rewritten by `tamper` (and recorded). */
  function watchTokenAnswer(res: ServerResponse) {
    const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse
    let pending: unknown = undefined
    ;(res as { end: unknown }).end = (chunk?: unknown) => {
      pending = chunk
      void (async () => {
        let body = pending
        try {
          const json = JSON.parse(String(pending)) as Record<string, unknown>
          if (typeof json.id_token === 'string') {
            if (state.tamper) {
              const [h, p] = json.id_token.split('.')
              json.id_token = await state.tamper({
                header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
                claims: JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>,
                original: json.id_token,
              })
            }
            state.idTokens.push(json.id_token as string)
            body = JSON.stringify(json)
            if (!res.headersSent) res.setHeader('content-length', Buffer.byteLength(body as string))
          }
        } catch {
          /* not JSON: as it is */
        }
        end(body)
      })()
      return res
    }
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(err.message)
      })
      return
    }
    if (req.method === 'POST' && req.url === '/token') watchTokenAnswer(res)
    void callback(req, res)
  })
  after(() => state.close())
  return state
}

export const unusedKeyPair = () => generateKeyPairSync('rsa', { modulusLength: 2048 })
