import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import { importPKCS8 } from 'jose'
import { Agent, fetch as undiciFetch } from 'undici'
import type { SignInProviderConfig } from '../config/schema.js'
import { isCleanName, isCleanText } from '../util/identity-value.js'
import { claimAt } from '../util/claims.js'

// OpenID Connect providers, through openid-client (never hand-written OAuth): discovery, the
// authorization code flow with PKCE S256, state and nonce, and the ID token's verification
// (issuer, audience, signature from the provider's JWKS, expiry, nonce) are all openid-client's.
// What is keygate's: which claims make the person, and who may come in.

const TIMEOUT_SEC = 5

/** Who the provider vouched for, mapped to keygate's principal fields. */
export interface ProviderIdentity {
  readonly username: string
  readonly name: string
  readonly email: string
  readonly groups: readonly string[]
}

/** What the browser's flow carries between start and callback (kept in the store, never in the browser). */
export interface FlowChecks {
  readonly codeVerifier: string
  readonly state: string
  readonly nonce: string
  readonly redirectUri: string
}

type FinishResult =
  | { readonly ok: true; readonly identity: ProviderIdentity; readonly idToken: string | undefined }
  /** unreachable: the provider did not answer; refused: it answered, and the answer is not good */
  | { readonly ok: false; readonly kind: 'unreachable' | 'refused' | 'claims' | 'not-allowed'; readonly reason: string }

export interface OidcProvider {
  readonly id: string
  readonly name: string
  /** the origin the browser is sent to (for the page's form-action) */
  readonly origin: string
  /** null when the provider cannot be reached (discovery failed): the caller shows an error page */
  authorizationUrl(checks: FlowChecks, codeChallenge: string): Promise<URL | null>
  finish(callbackUrl: URL, checks: FlowChecks): Promise<FinishResult>
  /** the provider's end_session_endpoint for this ID token, or null when it has none */
  endSessionUrl(idToken: string | undefined, postLogoutRedirectUri: string): Promise<URL | null>
}

const textOf = (v: unknown): string => (typeof v === 'string' && isCleanText(v) ? v : '')

/** The identity in the claims, or why there is none (no usable user name). */
function mapClaims(
  claims: Readonly<Record<string, unknown>>,
  paths: SignInProviderConfig['claims'],
): ProviderIdentity | null {
  const username = claimAt(claims, paths.username)
  if (typeof username !== 'string' || !isCleanName(username)) return null
  const rawGroups = claimAt(claims, paths.groups)
  const list = Array.isArray(rawGroups) ? rawGroups : typeof rawGroups === 'string' ? [rawGroups] : []
  const groups = list.filter((g): g is string => typeof g === 'string' && isCleanName(g))
  return { username, name: textOf(claimAt(claims, paths.name)), email: textOf(claimAt(claims, paths.email)), groups }
}

/** `allow.groups` (any one of them) and `allow.emailDomains` (a verified address in one of them). */
function isAllowed(
  identity: ProviderIdentity,
  claims: Readonly<Record<string, unknown>>,
  allow: SignInProviderConfig['allow'],
): boolean {
  if (allow.groups.length > 0 && !identity.groups.some((g) => allow.groups.includes(g))) return false
  if (allow.emailDomains.length > 0) {
    if (claims.email_verified === false) return false
    const at = identity.email.lastIndexOf('@')
    const domain = at === -1 ? '' : identity.email.slice(at + 1).toLowerCase()
    if (!allow.emailDomains.some((d) => d.toLowerCase() === domain)) return false
  }
  return true
}

const clientAuthOf = async (cfg: SignInProviderConfig): Promise<client.ClientAuth> => {
  const method =
    cfg.clientAuth ?? (cfg.privateKey ? 'private_key_jwt' : cfg.clientSecret ? 'client_secret_basic' : 'none')
  switch (method) {
    case 'client_secret_basic':
      return client.ClientSecretBasic(cfg.clientSecret)
    case 'client_secret_post':
      return client.ClientSecretPost(cfg.clientSecret)
    case 'private_key_jwt': {
      const pem = cfg.privateKey!.includes('-----BEGIN') ? cfg.privateKey! : readFileSync(cfg.privateKey!, 'utf8')
      const alg = createPrivateKey(pem).asymmetricKeyType === 'ec' ? 'ES256' : 'RS256'
      return client.PrivateKeyJwt(await importPKCS8(pem, alg))
    }
    case 'none':
      return client.None()
  }
}

/** Errors openid-client raises when the provider could not be reached (or answered with a 5xx). */
const unreachable = (err: unknown): boolean => {
  const e = err as { code?: string; cause?: unknown; name?: string }
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || e?.name === 'TypeError') return true
  if (e?.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') return true
  return e?.cause !== undefined && e.cause !== err && unreachable(e.cause)
}

export function createOidcProvider(cfg: SignInProviderConfig): OidcProvider {
  const issuer = new URL(cfg.issuer)
  const insecure = issuer.protocol === 'http:' // loopback only (the schema allows no other plain-http issuer)
  const dispatcher = cfg.ca ? new Agent({ connect: { ca: readFileSync(cfg.ca, 'utf8') } }) : undefined
  const fetchWithCa: client.CustomFetch | undefined = dispatcher
    ? (url, options) => undiciFetch(url, { ...options, dispatcher }) as unknown as Promise<Response>
    : undefined
  let discovered: Promise<client.Configuration> | null = null
  /** The provider's metadata, fetched once; a failure is not kept (the next person tries again). */
  const configuration = (): Promise<client.Configuration> =>
    (discovered ??= clientAuthOf(cfg)
      .then((clientAuth) =>
        client.discovery(issuer, cfg.clientId, undefined, clientAuth, {
          timeout: TIMEOUT_SEC,
          // openid-client skips the ID token's signature when it came straight from the token
          // endpoint (OIDC Core 3.1.3.7 allows it): keygate checks it against the provider's JWKS anyway.
          execute: insecure
            ? [client.allowInsecureRequests, client.enableNonRepudiationChecks]
            : [client.enableNonRepudiationChecks],
          ...(fetchWithCa ? { [client.customFetch]: fetchWithCa } : {}),
        }),
      )
      .then((c) => {
        c.timeout = TIMEOUT_SEC
        return c
      })
      .catch((err: unknown) => {
        discovered = null
        throw err
      }))

  /** The metadata, or null while the provider cannot be reached (each caller says so its own way). */
  const reachable = (): Promise<client.Configuration | null> => configuration().catch(() => null)

  return {
    id: cfg.id,
    name: cfg.name,
    origin: issuer.origin,
    async authorizationUrl(checks, codeChallenge) {
      const config = await reachable()
      if (!config) return null
      return client.buildAuthorizationUrl(config, {
        redirect_uri: checks.redirectUri,
        scope: cfg.scopes.join(' '),
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
        state: checks.state,
        nonce: checks.nonce,
      })
    },
    async finish(callbackUrl, checks) {
      const config = await reachable()
      if (!config) return { ok: false, kind: 'unreachable', reason: 'discovery failed' }
      let claims: Record<string, unknown>
      let idToken: string | undefined
      let accessToken: string
      try {
        const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        })
        claims = { ...tokens.claims() }
        idToken = tokens.id_token
        accessToken = tokens.access_token
      } catch (err) {
        return {
          ok: false,
          kind: unreachable(err) ? 'unreachable' : 'refused',
          reason: (err as { code?: string }).code ?? (err as Error).name,
        }
      }
      // ID token first, then userinfo for what it lacks.
      if (mapClaims(claims, cfg.claims) === null || claimAt(claims, cfg.claims.groups) === undefined) {
        if (config.serverMetadata().userinfo_endpoint) {
          try {
            const info = await client.fetchUserInfo(config, accessToken, claims.sub as string)
            claims = { ...info, ...claims }
          } catch (err) {
            if (unreachable(err)) return { ok: false, kind: 'unreachable', reason: 'userinfo' }
          }
        }
      }
      const identity = mapClaims(claims, cfg.claims)
      if (!identity) return { ok: false, kind: 'claims', reason: `no usable ${cfg.claims.username} claim` }
      if (!isAllowed(identity, claims, cfg.allow)) return { ok: false, kind: 'not-allowed', reason: identity.username }
      return { ok: true, identity, idToken }
    },
    async endSessionUrl(idToken, postLogoutRedirectUri) {
      const config = await reachable()
      if (!config) return null
      if (!config.serverMetadata().end_session_endpoint) return null
      return client.buildEndSessionUrl(config, {
        post_logout_redirect_uri: postLogoutRedirectUri,
        client_id: cfg.clientId,
        ...(idToken ? { id_token_hint: idToken } : {}),
      })
    },
  }
}

export const newFlowSecrets = async (): Promise<{
  codeVerifier: string
  codeChallenge: string
  state: string
  nonce: string
}> => {
  const codeVerifier = client.randomPKCECodeVerifier()
  return {
    codeVerifier,
    codeChallenge: await client.calculatePKCECodeChallenge(codeVerifier),
    state: client.randomState(),
    nonce: client.randomNonce(),
  }
}
