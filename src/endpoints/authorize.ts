import type { TLSSocket } from 'node:tls'
import { randomBytes } from 'node:crypto'
import { refuse, refused, type Refused } from '../errors.js'
import { MAX_USERNAME_BYTES, type GatewayConfig, type UserConfig } from '../config/schema.js'
import { SESSION_COOKIE, type Principal, type TokenType } from '../principal.js'
import { checkLogin } from '../auth/login.js'
import { verifyJwt, type JwtClaims } from '../tokens/own-tokens.js'
import { issueRecorded } from '../tokens/issued.js'
import { randomToken } from '../util/secret.js'
import { parseFormFields } from './body.js'
import { createTokenTypeOf } from '../suffit/authorize-routes.js'
import { isEncrypted, passwordOf, type LoginKeys } from '../suffit/login-key.js'
import { AUTHORIZED_MESSAGE, md5, suffitDatetime, suffitUser } from '../suffit/answer.js'
import type { EndpointContext, EndpointHandler, LoginDeps } from './types.js'

// The Suffit auth API: POST /api/authorize, POST /api/refresh, DELETE /api/authorize (= POST /api/logout).

export interface AuthorizeDeps extends LoginDeps {
  readonly config: Pick<GatewayConfig, 'signIn' | 'tokens' | 'loginLimit' | 'tokenApi'>
  readonly loginKeys: LoginKeys
}

type Fields = { readonly ok: true; readonly fields: Record<string, string> } | Refused

const NOT_A_FORM = refused('E1030', 'not_a_form', { message: 'Expected a JSON, form or multipart body' })

async function formFields(ctx: EndpointContext): Promise<Fields> {
  const read = await ctx.readBody()
  if (!read.ok) return read
  // An empty body has no fields, whatever it says it is (a DELETE often sends none).
  const fields = read.body.length === 0 ? {} : parseFormFields(read.body, ctx.req.headers['content-type'])
  return fields ? { ok: true, fields } : NOT_A_FORM
}

/** A session cookie is Secure (and __Host-) unless the gateway is reached over plain HTTP on loopback (local development). */
function sessionCookies(ctx: EndpointContext, name: string, value: string, maxAgeSec: number): string[] {
  const forwardedProto = ctx.client.peerTrusted ? String(ctx.req.headers['x-forwarded-proto'] ?? '') : ''
  const overTls = (ctx.req.socket as TLSSocket).encrypted === true || forwardedProto === 'https'
  const plainLoopback = !overTls && /^(127\.|::1$)/.test(ctx.client.clientIp)
  const attributes = `Path=/; Max-Age=${maxAgeSec}; HttpOnly; SameSite=Lax`
  if (plainLoopback) return [`${name}=${value}; ${attributes}`]
  const cookie = `__Host-${name}=${value}; ${attributes}; Secure`
  // Clearing also clears a plain-named cookie left from before, or from a plain-HTTP login.
  return maxAgeSec === 0 ? [cookie, `${name}=; ${attributes}; Secure`] : [cookie]
}

/**
 * Login CSRF: a page on another site must not sign the browser in to an account of its choosing.
 * A browser says where a request comes from (Sec-Fetch-Site, Origin); API clients send neither.
 */
function crossSite(ctx: EndpointContext): boolean {
  const fetchSite = ctx.req.headers['sec-fetch-site']
  if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') return true
  const origin = ctx.req.headers.origin
  if (origin === undefined) return false
  const forwardedHost = ctx.client.peerTrusted ? ctx.req.headers['x-forwarded-host'] : undefined
  const host = String(forwardedHost ?? ctx.req.headers.host ?? '')
    .split(',')[0]!
    .trim()
    .toLowerCase()
  try {
    return new URL(origin).host !== host
  } catch {
    return true // "null" (sandboxed or privacy-sensitive contexts) and garbage alike
  }
}

const CROSS_SITE = refuse('E1004', { message: 'Cross-site sign-in refused' })

export function createAuthorizeEndpoints(
  deps: AuthorizeDeps,
): Record<'authorize' | 'refresh' | 'revoke' | 'public-key', EndpointHandler> {
  const { config, clock, keys, issued, revocation, users, limiter, audit, loginKeys } = deps
  // the same cookie as the sign-in page's (signIn.cookie.name), so either login is read alike
  const cookieName = config.signIn?.cookie.name ?? SESSION_COOKIE
  const ttls = config.tokens
  const tokenTypeOf = createTokenTypeOf(config)

  const ttlFor = (type: TokenType, remember: boolean): number =>
    type === 'session' ? (remember ? ttls.session.remember : ttls.session.ttl) : ttls[type].ttl

  // Every token of a family was issued before it is revoked (a revoked family gets no new ones),
  // so none outlives the longest TTL a family's tokens have from now.
  const revokeFamily = (family: string): Promise<void> =>
    revocation.revokeFamily(family, clock.now() + Math.max(ttls.refresh.ttl, ttls.access.ttl))

  /** Denylists one of keygate's JWTs, drops its record, ends its refresh family; audited. */
  async function revokeToken(
    t: { jti: string; sub: string; type: TokenType; expiresAt: number; family?: string | undefined },
    by: string,
  ) {
    await revocation.revoke(t.jti, t.expiresAt)
    await issued.remove({ jti: t.jti, sub: t.sub })
    if (t.family !== undefined) await revokeFamily(t.family)
    audit({ kind: 'token.revoked', type: t.type, jti: t.jti, subject: t.sub, by })
  }

  /** keygate's own Bearer or session token (an external issuer's is its issuer's to revoke). */
  const ownToken = (p: Principal): boolean =>
    p.jti !== undefined &&
    p.expiresAt !== undefined &&
    p.issuer === undefined &&
    (p.scheme === 'bearer' || p.scheme === 'session')

  /** Issues and records one JWT; the Suffit success body. */
  async function issue(
    ctx: EndpointContext,
    user: UserConfig,
    type: TokenType,
    fields: Record<string, string>,
    started: number,
    family?: string,
  ) {
    const remember = fields.remember === 'true' || fields.remember === '1' || fields.remember === 'on'
    const ttlMs = ttlFor(type, remember)
    const clientId = fields.clientid || md5(`${ctx.req.headers['user-agent'] ?? ''}${ctx.client.clientIp}`)
    const made = await issueRecorded(
      { keys, issued, clock },
      {
        sub: user.username,
        type,
        uid: user.uid,
        name: user.name,
        email: user.email,
        groups: user.groups,
        ttlMs,
        ...(family !== undefined ? { family } : {}),
      },
      { clientId, clientIp: ctx.client.clientIp },
    )
    if (!made.ok) return made.refusal
    audit({ kind: 'token.issued', type, jti: made.jti, subject: user.username, clientIp: ctx.client.clientIp })
    const body = {
      status: true,
      code: 'E0000',
      message: AUTHORIZED_MESSAGE,
      token: made.token,
      type,
      jti: made.jti,
      datetime: suffitDatetime(made.issuedAt),
      expires: suffitDatetime(made.expiresAt),
      elapsed: Math.round(performance.now() - started) / 1000,
      clientid: clientId,
      cachekey: fields.cachekey || randomBytes(16).toString('hex'),
      referer: fields.referer ?? String(ctx.req.headers.referer ?? ''),
      encrypted: isEncrypted(fields),
      user: suffitUser(user),
    }
    const headers: Record<string, string[]> =
      type === 'session' ? { 'set-cookie': sessionCookies(ctx, cookieName, made.token, Math.floor(ttlMs / 1000)) } : {}
    return { body, headers }
  }

  return {
    /** GET /api/public-key: the key clients encrypt passwords with; 404 when none is configured. */
    'public-key': (ctx) =>
      loginKeys.published
        ? ctx.send(200, loginKeys.published)
        : ctx.refuse(refuse('E1004', { status: 404, message: 'No login key is configured (secrets.loginKeys)' })),

    async authorize(ctx) {
      const started = performance.now()
      const parsed = await formFields(ctx)
      if (!parsed.ok) return ctx.refuse(parsed.refusal)
      const f = parsed.fields
      const username = (f.username ?? '').trim()
      if (!username) return ctx.refuse(refuse('E1021'))
      // No user has a longer name: refused before it is counted, logged or looked up.
      if (Buffer.byteLength(username) > MAX_USERNAME_BYTES)
        return ctx.refuse(refuse('E1030', { message: 'Username is too long' }))
      if (!f.password) return ctx.refuse(refuse('E1022'))
      const type = tokenTypeOf(ctx.target.path, f)
      if (!type) return ctx.refuse(refuse('E1020'))
      if (type === 'session' && crossSite(ctx)) return ctx.refuse(CROSS_SITE)
      const sent = passwordOf(loginKeys, f)
      if (!sent.ok) return ctx.refuse(sent.refusal)
      const login = await checkLogin(
        { limiter, users, windowMs: config.loginLimit.window, audit },
        username,
        sent.password,
        ctx.client.clientIp,
      )
      if (!login.ok) return ctx.refuse(login.refusal)
      // A refresh token from a login starts a family: its successors and their access tokens join it.
      const family = type === 'refresh' ? randomToken(16) : undefined
      const result = await issue(ctx, login.user, type, f, started, family)
      if ('code' in result) return ctx.refuse(result)
      ctx.send(200, result.body, result.headers)
    },

    async refresh(ctx) {
      const started = performance.now()
      const parsed = await formFields(ctx)
      if (!parsed.ok) return ctx.refuse(parsed.refusal)
      const f = parsed.fields
      const v = await verifyJwt(keys, f.refresh_token ?? f.token ?? '', clock, { types: ['refresh'] })
      if (!v.ok) return ctx.refuse(v.refusal)
      const { claims } = v
      // Rotation: the old refresh token's record is taken once (and its jti denylisted); a replay
      // finds nothing. A replay means two holders of one chain, and which is the thief is unknown:
      // the whole family ends, the successor of that rotation (and its access tokens) included.
      const old = (await revocation.isRefused(claims)) ? null : await issued.take(claims.jti)
      if (!old) {
        if (claims.family !== undefined) await revokeFamily(claims.family)
        return ctx.refuse(refuse('E1002'))
      }
      await revocation.revoke(claims.jti, claims.expiresAt)
      // A refresh token speaks for its user only while the user is configured and enabled.
      const user = await users.find(claims.sub)
      if (!user) return ctx.refuse(refuse('E1001'))
      // Refresh tokens from before families existed start one here.
      const family = claims.family ?? randomToken(16)
      const access = await issue(ctx, user, 'access', f, started, family)
      const refresh = await issue(ctx, user, 'refresh', f, started, family)
      if ('code' in access) return ctx.refuse(access)
      if ('code' in refresh) return ctx.refuse(refresh)
      ctx.send(200, { ...access.body, refresh_token: refresh.body.token, refresh_expires: refresh.body.expires })
    },

    async revoke(ctx) {
      const p = ctx.principal
      // A holder of a refresh token revokes it (and its family) by sending it in the body, with or
      // without a token of its own: a refresh token is never a credential for anything else.
      const parsed = await formFields(ctx)
      if (!parsed.ok) return ctx.refuse(parsed.refusal)
      const refreshToken = parsed.fields.refresh_token
      if (!p && refreshToken === undefined) return ctx.refuse(refuse('E1000'))
      // An external issuer's token is its issuer's to revoke: keygate cannot end it, and its jti
      // (chosen by the issuer) must not land in keygate's own denylist.
      if (p && !ownToken(p)) return ctx.refuse(refuse('E1020'))
      let refresh: JwtClaims | null = null
      if (refreshToken !== undefined) {
        const v = await verifyJwt(keys, refreshToken, clock, { types: ['refresh'] })
        if (!v.ok) return ctx.refuse(v.refusal)
        refresh = v.claims
      }
      if (p)
        await revokeToken(
          {
            jti: p.jti!,
            sub: p.username,
            type: p.tokenType ?? 'access',
            expiresAt: p.expiresAt!,
            family: p.family,
          },
          p.username,
        )
      if (refresh) await revokeToken(refresh, p?.username ?? refresh.sub)
      const headers: Record<string, string[]> =
        p?.scheme === 'session' ? { 'set-cookie': sessionCookies(ctx, cookieName, '', 0) } : {}
      ctx.send(200, { status: true, code: 'E0000', message: 'Revoked' }, headers)
    },
  }
}
