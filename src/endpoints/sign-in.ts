import { createHash } from 'node:crypto'
import type { SignInConfig } from '../config/schema.js'
import type { Store } from '../store/types.js'
import type { Authenticator } from '../auth/types.js'
import { checkLogin } from '../auth/login.js'
import { issueRecorded } from '../tokens/issued.js'
import { sha256Hex } from '../util/secret.js'
import { cameOverHttps, cookieJar, CSRF_COOKIE, FLOW_COOKIE, readCookie, type CookieJar } from '../signin/cookies.js'
import type { Csrf } from '../signin/csrf.js'
import { originOf, returnAddressOf, safeReturnAddress, type ReturnPolicy } from '../signin/return-address.js'
import { pageSecurityHeaders, renderMessagePage, renderSignInPage, renderSignOutPage } from '../signin/page.js'
import { newFlowSecrets, type FlowChecks, type OidcProvider, type ProviderIdentity } from '../signin/oidc.js'
import { parseFormFields } from './body.js'
import type { EndpointContext, EndpointHandler, LoginDeps } from './types.js'

// The browser's way in (CONTRACT §7): the sign-in page and its password form, the providers'
// start and callback, and sign-out. Every answer is an HTML page or a redirect, never JSON: a
// person reads these.

/** Fixed by the contract: the sign-out page and each provider's callback (its id is the token segment). */
export const SIGN_OUT_PATH = '/_keygate/sign-out'
export const OAUTH2_CALLBACK_PATH = '/_keygate/oauth2/callback'

export interface SignInDeps extends LoginDeps {
  readonly signIn: SignInConfig
  readonly store: Store
  readonly csrf: Csrf
  /** the session cookie's authenticator: who is signing out, and which session a sign-in replaces */
  readonly session: Authenticator
  readonly providers: readonly OidcProvider[]
}

const BRAND = 'keygate'
/** How long a person may stay on the provider's login form. */
const FLOW_TTL_MS = 10 * 60_000
const flowKey = (state: string) => `signin:flow:${sha256Hex(state)}`
const providerSessionKey = (jti: string) => `signin:provider-session:${jti}`

interface FlowRecord extends FlowChecks {
  readonly provider: string
  readonly rd: string
  /** sha256 of the flow cookie: the callback must come back to the browser that started */
  readonly browser: string
  readonly remember: boolean
}

/** Per request: where keygate is, which cookies to write, and where a person may be sent back to. */
interface Place {
  readonly origin: string | null
  /** the base of keygate's own URLs for the browser and the providers: publicUrl, or this request's origin */
  readonly base: string
  readonly jar: CookieJar
  readonly policy: ReturnPolicy
}

export function createSignInEndpoints(
  deps: SignInDeps,
): Record<'sign-in' | 'sign-out' | 'oauth2-callback', EndpointHandler> {
  const { signIn, store, csrf } = deps
  const providers = new Map(deps.providers.map((p) => [p.id, p]))
  const allowedHosts = signIn.allowedRedirects
  // The forms may end in a redirect to a listed host or a provider: form-action must name them.
  const formTargets = [
    ...allowedHosts.map((h) => (h.startsWith('.') ? `*${h}` : h)),
    ...deps.providers.map((p) => p.origin),
  ]
  const pageHeaders = pageSecurityHeaders(formTargets)

  const placeOf = (ctx: EndpointContext): Place => {
    const https = cameOverHttps(ctx.req.headers, 'encrypted' in ctx.req.socket, ctx.client.peerTrusted)
    const origin = originOf(ctx.req.headers.host, https, signIn.publicUrl)
    return {
      origin,
      base: signIn.publicUrl ?? origin ?? '',
      jar: cookieJar(signIn.cookie, https),
      policy: { ownOrigin: origin, allowedHosts },
    }
  }

  const html = (
    ctx: EndpointContext,
    status: number,
    body: string,
    cookies: string[] = [],
    extra: Record<string, string> = {},
  ) => {
    ctx.res.writeHead(status, {
      ...pageHeaders,
      ...extra,
      'x-request-id': ctx.requestId,
      'content-length': String(Buffer.byteLength(body)),
      ...(cookies.length ? { 'set-cookie': cookies } : {}),
    })
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body)
  }
  const redirect = (ctx: EndpointContext, location: string, cookies: string[] = []) => {
    ctx.res.writeHead(302, {
      location,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-request-id': ctx.requestId,
      'content-length': '0',
      ...(cookies.length ? { 'set-cookie': cookies } : {}),
    })
    ctx.res.end()
  }
  const message = (
    ctx: EndpointContext,
    status: number,
    title: string,
    text: string,
    link?: { href: string; text: string },
    cookies: string[] = [],
  ) => html(ctx, status, renderMessagePage({ brand: BRAND, title, message: text, ...(link ? { link } : {}) }), cookies)

  const signInHref = (rd: string) => `${signIn.path}?rd=${encodeURIComponent(rd)}`
  const tryAgain = (rd: string) => ({ href: signInHref(rd), text: 'Back to the sign-in page' })

  /** The form's CSRF cookie (a fresh one when the browser has none) and the token that goes with it. */
  const formToken = async (ctx: EndpointContext, place: Place) => {
    const existing = readCookie(ctx.req.headers, CSRF_COOKIE)
    const cookie = existing && /^[0-9a-f]{32}$/.test(existing) ? existing : csrf.newCookie()
    return { token: await csrf.tokenFor(cookie), cookies: cookie === existing ? [] : [place.jar.csrf(cookie)] }
  }

  async function showSignIn(
    ctx: EndpointContext,
    place: Place,
    rd: string,
    status = 200,
    error?: string,
    username?: string,
  ) {
    const form = await formToken(ctx, place)
    const page = renderSignInPage({
      brand: BRAND,
      appName: signIn.appName,
      action: signIn.path,
      csrf: form.token,
      rd,
      local: signIn.local,
      providers: deps.providers,
      ...(error ? { error } : {}),
      ...(username !== undefined ? { username } : {}),
    })
    html(ctx, status, page, form.cookies)
  }

  /** Fields of a form POST whose CSRF token holds; null after answering the refusal. */
  async function formPost(ctx: EndpointContext, place: Place): Promise<Record<string, string> | null> {
    const read = await ctx.readBody()
    const fields = read.ok ? parseFormFields(read.body, ctx.req.headers['content-type']) : null
    const rd = safeReturnAddress(fields?.rd, place.policy)
    if (!fields) {
      message(ctx, 400, 'Something went wrong', 'The form could not be read. Please try again.', tryAgain(rd))
      return null
    }
    const believed = await csrf.check({
      cookie: readCookie(ctx.req.headers, CSRF_COOKIE),
      token: fields.csrf,
      headers: ctx.req.headers,
      ownOrigin: place.origin,
    })
    if (!believed) {
      message(
        ctx,
        403,
        'Please try again',
        'This form had expired or did not come from this site, so nothing was done.',
        tryAgain(rd),
      )
      return null
    }
    return fields
  }

  /** The session cookie's session, when it is still good. */
  async function currentSession(ctx: EndpointContext) {
    const value = readCookie(ctx.req.headers, signIn.cookie.name)
    if (!value) return null
    const r = await deps.session.authenticate({ token: value, clientIp: ctx.client.clientIp })
    return r.kind === 'ok' ? r.principal : null
  }

  async function endSession(jti: string, expiresAt: number, username: string) {
    await deps.revocation.revoke(jti, expiresAt)
    await deps.issued.remove({ jti, sub: username })
    deps.audit({ kind: 'token.revoked', type: 'session', jti, subject: username, by: username })
  }

  /**
   * The same session as /api/authorize with token_type session, under a new id: a session cookie
   * the browser brought (planted, or an older sign-in) is ended, never kept.
   */
  async function startSession(
    ctx: EndpointContext,
    place: Place,
    identity: ProviderIdentity & { uid: number },
    remember: boolean,
    rd: string,
    extraCookies: string[] = [],
    provider?: { id: string; idToken: string | undefined },
  ) {
    const previous = await currentSession(ctx)
    if (previous?.jti && previous.expiresAt !== undefined)
      await endSession(previous.jti, previous.expiresAt, previous.username)
    const ttlMs = remember ? deps.config.tokens.session.remember : deps.config.tokens.session.ttl
    const made = await issueRecorded(
      deps,
      {
        sub: identity.username,
        type: 'session',
        uid: identity.uid,
        name: identity.name,
        email: identity.email,
        groups: identity.groups,
        ttlMs,
        // who vouched: a provider's person is not the local user of the same name
        ...(provider ? { extra: { idp: provider.id } } : {}),
      },
      {
        clientId: createHash('md5')
          .update(`${ctx.req.headers['user-agent'] ?? ''}${ctx.client.clientIp}`)
          .digest('hex'),
        clientIp: ctx.client.clientIp,
      },
    )
    if (!made.ok)
      return message(ctx, 500, 'Sign-in failed', 'Your session could not be started. Please try again.', tryAgain(rd))
    if (provider)
      await store.set(
        providerSessionKey(made.jti),
        JSON.stringify({ provider: provider.id, idToken: provider.idToken }),
        made.expiresAt - deps.clock.now() + 60_000,
      )
    deps.audit({
      kind: 'token.issued',
      type: 'session',
      jti: made.jti,
      subject: identity.username,
      clientIp: ctx.client.clientIp,
    })
    const maxAge = Math.floor((made.expiresAt - deps.clock.now()) / 1000)
    redirect(ctx, rd, [place.jar.session(made.token, maxAge), ...place.jar.clearSessions(), ...extraCookies])
  }

  async function passwordSignIn(ctx: EndpointContext, place: Place, fields: Record<string, string>, rd: string) {
    if (!signIn.local)
      return message(ctx, 404, 'Not available', 'Signing in with a password is not offered here.', tryAgain(rd))
    const username = (fields.username ?? '').trim()
    const password = fields.password ?? ''
    if (!username || !password)
      return showSignIn(ctx, place, rd, 400, 'Enter your username and your password.', username)
    const login = await checkLogin(
      { limiter: deps.limiter, users: deps.users, windowMs: deps.config.loginLimit.window, audit: deps.audit },
      username,
      password,
      ctx.client.clientIp,
    )
    if (!login.ok) {
      if (login.refusal.code === 'E1031') {
        const wait = login.refusal.retryAfterSec ?? 60
        const page = renderMessagePage({
          brand: BRAND,
          title: 'Too many attempts',
          message: `Too many sign-in attempts. Please wait ${Math.ceil(wait / 60)} minute${wait > 60 ? 's' : ''} and try again.`,
          link: tryAgain(rd),
        })
        return html(ctx, 429, page, [], { 'retry-after': String(wait) })
      }
      return showSignIn(ctx, place, rd, 401, 'Incorrect username or password.', username)
    }
    const u = login.user
    const remember = fields.remember === 'on' || fields.remember === 'true'
    await startSession(
      ctx,
      place,
      { username: u.username, uid: u.uid, name: u.name, email: u.email, groups: u.groups },
      remember,
      rd,
    )
  }

  async function startProvider(
    ctx: EndpointContext,
    place: Place,
    provider: OidcProvider,
    rd: string,
    remember: boolean,
  ) {
    const secrets = await newFlowSecrets()
    const checks: FlowChecks = {
      codeVerifier: secrets.codeVerifier,
      state: secrets.state,
      nonce: secrets.nonce,
      redirectUri: `${place.base}${OAUTH2_CALLBACK_PATH}/${provider.id}`,
    }
    const url = await provider.authorizationUrl(checks, secrets.codeChallenge)
    if (!url) return providerDown(ctx, provider, rd)
    const browser = csrf.newCookie()
    const flow: FlowRecord = { ...checks, provider: provider.id, rd, browser: sha256Hex(browser), remember }
    await store.set(flowKey(checks.state), JSON.stringify(flow), FLOW_TTL_MS)
    redirect(ctx, url.href, [place.jar.flow(browser, FLOW_TTL_MS / 1000)])
  }

  const providerDown = (ctx: EndpointContext, provider: OidcProvider, rd: string) =>
    message(
      ctx,
      502,
      'Sign-in is unavailable',
      `${provider.name} cannot be reached right now. Please try again in a few minutes.`,
      tryAgain(rd),
    )

  return {
    async 'sign-in'(ctx) {
      const place = placeOf(ctx)
      if (ctx.req.method !== 'POST') {
        const rd = safeReturnAddress(returnAddressOf(ctx.target.query), place.policy)
        return showSignIn(ctx, place, rd)
      }
      const fields = await formPost(ctx, place)
      if (!fields) return
      const rd = safeReturnAddress(fields.rd, place.policy)
      const remember = fields.remember === 'on' || fields.remember === 'true'
      if (fields.provider !== undefined) {
        const provider = providers.get(fields.provider)
        if (!provider)
          return message(
            ctx,
            400,
            'Unknown sign-in option',
            'That way of signing in is not offered here.',
            tryAgain(rd),
          )
        return startProvider(ctx, place, provider, rd, remember)
      }
      return passwordSignIn(ctx, place, fields, rd)
    },

    async 'oauth2-callback'(ctx) {
      const place = placeOf(ctx)
      const id = decodeURIComponent(ctx.target.path.slice(OAUTH2_CALLBACK_PATH.length + 1))
      const provider = providers.get(id)
      const params = new URLSearchParams(ctx.target.query)
      const state = params.get('state')
      const startOver = tryAgain('/')
      if (!provider)
        return message(ctx, 404, 'Unknown sign-in option', 'That way of signing in is not offered here.', startOver)
      // The flow is taken (single use) before anything else: a replayed callback finds nothing.
      const text = state ? await store.take(flowKey(state)) : null
      const flow = text ? (JSON.parse(text) as FlowRecord) : null
      const browser = readCookie(ctx.req.headers, FLOW_COOKIE)
      const clearFlow = [place.jar.flow('', 0)]
      if (!flow || flow.provider !== provider.id || !browser || sha256Hex(browser) !== flow.browser) {
        deps.audit({ kind: 'login.failed', username: '', clientIp: ctx.client.clientIp, reason: 'flow' })
        return message(
          ctx,
          400,
          'This sign-in has expired',
          'This sign-in link has already been used, has expired, or was started in another browser. Please start again.',
          startOver,
          clearFlow,
        )
      }
      const error = params.get('error')
      if (error !== null)
        return message(
          ctx,
          403,
          'Sign-in was not completed',
          `${provider.name} did not sign you in (${/^[a-z_]{1,64}$/.test(error) ? error : 'error'}).`,
          tryAgain(flow.rd),
          clearFlow,
        )
      const callbackUrl = new URL(flow.redirectUri)
      callbackUrl.search = ctx.target.query
      const result = await provider.finish(callbackUrl, flow)
      if (!result.ok) {
        deps.audit({
          kind: 'login.failed',
          username: result.kind === 'not-allowed' ? result.reason : '',
          clientIp: ctx.client.clientIp,
          reason: `provider:${result.kind}`,
        })
        switch (result.kind) {
          case 'unreachable':
            return providerDown(ctx, provider, flow.rd)
          case 'not-allowed':
            return message(
              ctx,
              403,
              'Access denied',
              `You are signed in at ${provider.name} as ${result.reason}, but that account may not use this site. Ask its administrators for access.`,
              { href: SIGN_OUT_PATH, text: 'Sign out' },
              clearFlow,
            )
          default:
            return message(
              ctx,
              400,
              'Sign-in failed',
              `${provider.name}'s answer could not be accepted, so you were not signed in. Please try again.`,
              tryAgain(flow.rd),
              clearFlow,
            )
        }
      }
      await startSession(ctx, place, { ...result.identity, uid: 0 }, flow.remember, flow.rd, clearFlow, {
        id: provider.id,
        idToken: result.idToken,
      })
    },

    async 'sign-out'(ctx) {
      const place = placeOf(ctx)
      const session = await currentSession(ctx)
      if (ctx.req.method !== 'POST') {
        const rd = safeReturnAddress(returnAddressOf(ctx.target.query), place.policy)
        const form = await formToken(ctx, place)
        const page = renderSignOutPage({
          brand: BRAND,
          action: SIGN_OUT_PATH,
          csrf: form.token,
          rd,
          username: session?.username ?? null,
        })
        return html(ctx, 200, page, form.cookies)
      }
      const fields = await formPost(ctx, place)
      if (!fields) return
      const cleared = [place.jar.session('', 0), ...place.jar.clearSessions()]
      let next = signInHref(safeReturnAddress(fields.rd, place.policy))
      if (session?.jti && session.expiresAt !== undefined) {
        await endSession(session.jti, session.expiresAt, session.username)
        const text = await store.take(providerSessionKey(session.jti))
        const record = text ? (JSON.parse(text) as { provider: string; idToken?: string }) : null
        const provider = record ? providers.get(record.provider) : undefined
        if (provider && record) {
          const end = await provider.endSessionUrl(record.idToken, `${place.base}${signIn.path}`)
          if (end) next = end.href
        }
      }
      redirect(ctx, next, cleared)
    },
  }
}
