import { refuse, type Refused } from '../errors.js'
import { sealEnvelope, openEnvelope } from '../tokens/envelope.js'
import type { TokenRecord, TokenRegistry } from '../tokens/opaque.js'
import type { AppTokenRecord } from '../auth/apptoken.js'
import type { GatewayConfig } from '../config/schema.js'
import type { AuditSink } from '../observe.js'
import { parseFormFields } from './body.js'
import type { EndpointContext, EndpointHandler } from './types.js'
import { iso } from '../util/iso-time.js'

// The MediaWiki token authenticator's REST endpoints, answered under every tokenApi mount.

export interface UserTokenRecord extends TokenRecord {
  readonly realName: string
  readonly email: string
}

export interface TokenEndpointDeps {
  readonly config: Pick<GatewayConfig, 'secrets' | 'tokenApi' | 'tokens'>
  readonly userTokens: TokenRegistry<UserTokenRecord>
  readonly appTokens: TokenRegistry<AppTokenRecord>
  readonly audit: AuditSink
}

const INVALID = refuse('E1001', { status: 400, message: 'Invalid or expired token.' })
const NO_TOKEN: Refused = { ok: false, refusal: INVALID }

type PresentedToken = { readonly ok: true; readonly token: string } | Refused
const NO_SALT = refuse('E1023', { message: 'No salt is configured (secrets.salt): salted envelopes cannot be made' })

/** The token after the endpoint's own path (`…/verify/{token}`), or null. */
function tokenInPath(ctx: EndpointContext, marker: string): string | null {
  const i = ctx.target.path.lastIndexOf(marker)
  if (i === -1) return null
  const rest = ctx.target.path.slice(i + marker.length)
  return /^\/[0-9A-Za-z]+$/.test(rest) ? rest.slice(1) : null
}

/** `{token}` or a whole salted `{envelope}` from a JSON or form body; the envelope's sig is checked. */
async function tokenInBody(ctx: EndpointContext, salt: string | undefined): Promise<PresentedToken> {
  const read = await ctx.readBody()
  if (!read.ok) return read
  const fields = parseFormFields(read.body, ctx.req.headers['content-type'])
  if (!fields) return NO_TOKEN
  if (fields.token) return { ok: true, token: fields.token }
  if (fields.envelope && salt) {
    const opened = openEnvelope(salt, fields.envelope)
    return opened.ok ? { ok: true, token: opened.token } : NO_TOKEN
  }
  return NO_TOKEN
}

/** GET: the token in the path; POST: `{token}` or a whole `{envelope}` in the body. */
async function presentedToken(ctx: EndpointContext, marker: string, salt: string | undefined): Promise<PresentedToken> {
  if (ctx.req.method !== 'GET') return tokenInBody(ctx, salt)
  const token = tokenInPath(ctx, marker)
  return token === null ? NO_TOKEN : { ok: true, token }
}

const wantsIssuer = (ctx: EndpointContext, fields: Record<string, string> | null): boolean => {
  const v = new URLSearchParams(ctx.target.query).get('withIssuer') ?? fields?.withIssuer
  return v === 'true' || v === '1'
}

export function createTokenEndpoints(
  deps: TokenEndpointDeps,
): Record<
  'user-token-generate' | 'user-token-verify' | 'app-token-generate' | 'app-token-verify' | 'app-token-revoke',
  EndpointHandler
> {
  const { config, userTokens, appTokens } = deps
  const salt = config.secrets.salt
  const callback = config.tokenApi.publicBase

  return {
    async 'user-token-generate'(ctx) {
      let fields: Record<string, string> | null = null
      if (ctx.req.method === 'POST') {
        const read = await ctx.readBody()
        if (!read.ok) return ctx.refuse(read.refusal)
        fields = parseFormFields(read.body, ctx.req.headers['content-type'])
      }
      const withIssuer = wantsIssuer(ctx, fields)
      if (withIssuer && !salt) return ctx.refuse(NO_SALT)
      const p = ctx.principal
      // Anonymous callers get a token too, as the seed allows: MediaWiki names them by IP, id 0.
      const record: UserTokenRecord = p
        ? { username: p.username, uid: p.uid, groups: p.groups, realName: p.realName, email: p.email }
        : { username: ctx.client.clientIp, uid: 0, groups: ['*'], realName: '', email: '' }
      const issued = await userTokens.issue(record, { indexed: p !== null })
      deps.audit({
        kind: 'token.issued',
        type: 'user',
        jti: issued.hash,
        subject: record.username,
        clientIp: ctx.client.clientIp,
      })
      ctx.send(200, { value: withIssuer ? sealEnvelope(salt!, callback, issued.token) : issued.token })
    },

    async 'user-token-verify'(ctx) {
      const presented = await presentedToken(ctx, '/user-token/verify', salt)
      if (!presented.ok) return ctx.refuse(presented.refusal)
      const found = await userTokens.verify(presented.token)
      if (!found) return ctx.refuse(INVALID)
      const r = found.record
      ctx.send(200, {
        id: r.uid,
        username: r.username,
        real_name: r.realName,
        wiki_id: config.tokenApi.wikiId,
        lang_code: config.tokenApi.langCode,
        groups: r.groups,
        meta: { email: r.email },
        expires: iso(found.expiresAt),
      })
    },

    async 'app-token-generate'(ctx) {
      const p = ctx.principal!
      if (!salt) return ctx.refuse(NO_SALT)
      const groups = [...new Set([...p.groups, ...config.tokens.appToken.groups])]
      const record: AppTokenRecord = {
        username: p.username,
        uid: p.uid,
        groups,
        realName: p.realName,
        email: p.email,
        issuedBy: p.keyName ?? p.username,
      }
      const issued = await appTokens.issue(record)
      deps.audit({
        kind: 'token.issued',
        type: 'app',
        jti: issued.hash,
        subject: record.username,
        clientIp: ctx.client.clientIp,
      })
      ctx.send(200, { value: sealEnvelope(salt, callback, issued.token), expires: iso(issued.expiresAt) })
    },

    async 'app-token-verify'(ctx) {
      const presented = await presentedToken(ctx, '/app-token/verify', salt)
      if (!presented.ok) return ctx.refuse(presented.refusal)
      const found = await appTokens.verify(presented.token)
      if (!found) return ctx.refuse(INVALID)
      ctx.send(200, {
        valid: true,
        username: found.record.username,
        id: found.record.uid,
        groups: found.record.groups,
        expires: iso(found.expiresAt),
      })
    },

    async 'app-token-revoke'(ctx) {
      const token = tokenInPath(ctx, '/app-token')
      if (token === null) return ctx.refuse(INVALID)
      const found = await appTokens.verify(token)
      if (!found || !(await appTokens.revoke(token))) return ctx.refuse(INVALID)
      deps.audit({
        kind: 'token.revoked',
        type: 'app',
        jti: found.hash,
        subject: found.record.username,
        by: ctx.principal?.username ?? '',
      })
      ctx.send(200, { status: true, code: 'E0000', message: 'Revoked' })
    },
  }
}
