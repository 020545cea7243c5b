import { z } from 'zod'
import { parseByteSize, parseDuration } from '../util/duration.js'
import { isValidCidr } from '../util/cidr.js'
import { parseRate } from '../util/rate.js'
import { REQUEST_TOKEN_TYPES, SCHEMES, TOKEN_TYPES } from '../principal.js'
import { subjectKey } from '../util/distinguished-name.js'

// The schema is the single source of truth for the configuration's types (CONTRACT §2).
// Every object is strict: an unknown key is an error naming its path.

const Duration = z
  .string({ invalid_type_error: 'expected a duration like 30s, 5m, 1h, 7d' })
  .refine((s) => parseDuration(s) !== null, 'expected a duration like 30s, 5m, 1h, 7d')
  .transform((s) => parseDuration(s)!)
const ByteSize = z
  .union([z.number().int().positive(), z.string()])
  .refine((v) => typeof v === 'number' || parseByteSize(v) !== null, 'expected a size like 16KB or 1MB')
  .transform((v) => (typeof v === 'number' ? v : parseByteSize(v)!))
const Cidr = z.string().refine(isValidCidr, 'expected an IP address or CIDR like 10.0.0.0/8')
const PathPrefix = z.string().regex(/^\/[^?#\s]*$/, 'expected an absolute path like /public/ (no query)')
const Method = z
  .string()
  .regex(/^[A-Za-z]+$/, 'expected an HTTP method')
  .transform((m) => m.toUpperCase())
const HeaderName = z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a header name like X-Auth-User')
// identityHeaders.custom: header name → template of {username} {uid} {name} {email} {groups} {scheme} {claim:a.b}
const HeaderMappings = z.record(HeaderName, z.string())
const UpstreamUrl = z
  .string()
  .refine(
    (s) => s === 'demo' || /^https?:\/\/[^/]+\/?$/.test(s),
    'expected http://host:port, https://host:port or demo',
  )
const StringOrList = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]))
const MIN_SECRET_BYTES = 32
const Secret = z
  .string()
  .refine((s) => Buffer.byteLength(s) >= MIN_SECRET_BYTES, `secret is shorter than ${MIN_SECRET_BYTES} bytes`)
const SecretOrList = z.union([Secret, z.array(Secret)]).transform((v) => (Array.isArray(v) ? v : [v]))

const Listen = z
  .union([z.number().int().min(0).max(65535), z.string()])
  .refine(
    (v) => typeof v === 'number' || /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$|^\d{1,5}$/.test(v),
    'expected host:port or a port number',
  )
  .transform((v) => {
    if (typeof v === 'number' || /^\d+$/.test(v)) return { host: '0.0.0.0', port: Number(v) }
    const i = v.lastIndexOf(':')
    return { host: v.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(v.slice(i + 1)) }
  })
  .refine((l) => l.port <= 65535, 'port must be 0-65535')

const RedisTarget = z.union([
  z.string().regex(/^rediss?:\/\//, 'expected redis://host:port'),
  z
    .object({ sentinels: z.array(z.string()).min(1), name: z.string().min(1), password: z.string().optional() })
    .strict(),
  z.object({ cluster: z.array(z.string()).min(1), password: z.string().optional() }).strict(),
])

const JwtAlg = z.enum(['HS256', 'RS256', 'ES256', 'EdDSA'])
// One key of a rotation (secrets.jwt.keys): the first signs, every one verifies.
const JwtKeyEntry = z
  .object({
    kid: z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'expected a key id of letters, digits and . _ : - (at most 64)'),
    alg: JwtAlg,
    secret: Secret.optional(),
    privateKey: z.string().optional(),
    publicKey: z.string().optional(),
  })
  .strict()

const JwtKeys = z
  .object({
    alg: JwtAlg.default('HS256'),
    secret: Secret.optional(),
    privateKey: z.string().optional(),
    publicKey: z.string().optional(),
    keys: z.array(JwtKeyEntry).min(1).optional(),
    issuer: z.string().default('keygate'),
    audience: z.string().optional(),
    clockSkew: Duration.default('30s'),
  })
  .strict()

// `burst` is the bucket size: the most requests accepted at one instant (default: the rate's count).
const RateLimit = z
  .object({
    rate: z
      .string({ invalid_type_error: 'expected a rate like 10/s, 60/m or 1000/h' })
      .refine((s) => parseRate(s) !== null, 'expected a rate like 10/s, 60/m or 1000/h')
      .transform((s) => parseRate(s)!)
      .refine((r) => r.count >= 1, 'a rate must allow at least one request (0/s refuses everything: use deny)'),
    burst: z.number().int().positive().optional(),
    by: z.enum(['ip', 'user', 'key', 'route']).optional(),
  })
  .strict()
  .superRefine((limit, ctx) => {
    if (limit.burst !== undefined && limit.burst < limit.rate.count)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['burst'],
        message: `burst ${limit.burst} is below the rate's ${limit.rate.count} requests: it must be at least that`,
      })
  })

const Principal = z
  .object({
    name: z.string().min(1),
    id: z.number().int().nonnegative().default(0),
    email: z.string().default(''),
    groups: z.array(z.string()).default([]),
  })
  .strict()

// What a service caller (an ApiKey, a client certificate) may reach and who it is upstream.
const serviceAccess = {
  cidr: z.array(Cidr).default([]),
  allow: z
    .object({
      paths: z.array(PathPrefix).default([]),
      actionModules: z
        .array(z.string().regex(/^[a-z0-9_-]+(\+[a-z0-9_-]+)?$/, 'expected a module like opensearch or query+search'))
        .default([]),
    })
    .strict()
    .default({}),
  user: Principal.optional(),
  rateLimit: RateLimit.optional(),
}

const ApiKey = z
  .object({
    name: z.string().min(1),
    key: SecretOrList.optional(),
    keyHash: StringOrList.optional(),
    ...serviceAccess,
  })
  .strict()

const EpochSeconds = z
  .number({ invalid_type_error: 'expected epoch seconds (0 = none)' })
  .int()
  .nonnegative()
  .default(0)

// CONTRACT §10: a client certificate identity (scheme `mtls`), matched by a subjectAltName
// (URI, DNS name or e-mail address) or by the subject's distinguished name.
const Client = z
  .object({
    name: z.string().min(1),
    san: z.string().min(1).optional(),
    subject: z
      .string()
      .refine((s) => subjectKey(s) !== null, 'expected a distinguished name like CN=billing,O=Example')
      .optional(),
    ...serviceAccess,
  })
  .strict()
  .refine((c) => (c.san === undefined) !== (c.subject === undefined), 'needs exactly one of `san` and `subject`')

/** Longest username keygate accepts, in UTF-8 bytes (users in the config, and at login). */
export const MAX_USERNAME_BYTES = 256

const User = z
  .object({
    username: z
      .string()
      .min(1)
      .refine((name) => Buffer.byteLength(name) <= MAX_USERNAME_BYTES, `at most ${MAX_USERNAME_BYTES} bytes`),
    passwordHash: z.string().regex(/^scrypt\$/, 'expected a hash from `keygate hash-password`'),
    uid: z.number().int().nonnegative(),
    name: z.string().default(''),
    email: z.string().default(''),
    groups: z.array(z.string()).default([]),
    // Suffit's user record: role is the user's own text, times are epoch seconds (0 = none).
    role: z.string().optional(),
    flags: z.number().int().default(0),
    comment: z.string().default(''),
    attributes: z.string().default(''),
    created: EpochSeconds,
    notBefore: EpochSeconds,
    notAfter: EpochSeconds,
    expires: EpochSeconds,
    disabled: z.boolean().default(false),
    publicKey: z.string().default(''),
  })
  .strict()

// Users from an LDAP directory (beside or instead of `users`): the password is checked by binding as the user.
const LdapUsers = z
  .object({
    url: z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/, 'expected ldap://host:port or ldaps://host:port'),
    bindDn: z.string().optional(),
    bindPassword: z.string().optional(),
    baseDn: z.string().min(1),
    userFilter: z.string().includes('{username}', { message: 'must contain {username}' }).default('(uid={username})'),
    groupBaseDn: z.string().optional(),
    groupFilter: z.string().default('(member={dn})'),
    groupName: z.string().default('cn'),
    attributes: z
      .object({
        username: z.string().default('uid'),
        name: z.string().default('cn'),
        email: z.string().default('mail'),
        uid: z.string().default('uidNumber'),
        // Suffit's fields, read when named (times as epoch seconds; disabled when TRUE, true or 1)
        role: z.string().optional(),
        comment: z.string().optional(),
        notBefore: z.string().optional(),
        notAfter: z.string().optional(),
        expires: z.string().optional(),
        disabled: z.string().optional(),
      })
      .strict()
      .default({}),
    allow: z
      .object({ groups: z.array(z.string()).default([]) })
      .strict()
      .default({}),
    timeout: Duration.default('5s'),
    poolSize: z.number().int().min(1).max(64).default(4),
    cacheTtl: Duration.default('30s'),
    // ldaps:// to a directory whose certificate a private CA signed: that CA (PEM or a file path)
    ca: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((ldap, ctx) => {
    if ((ldap.bindDn === undefined) !== (ldap.bindPassword === undefined))
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['bindPassword'],
        message: 'bindDn and bindPassword go together',
      })
  })

const Ttl = (ttl: string) =>
  z
    .object({ ttl: Duration.default(ttl) })
    .strict()
    .default({})

// CONTRACT §10: TLS to an https:// upstream. PEM files; absent keys: the system's CAs, no client
// certificate, the upstream's host name for SNI and verification.
const UpstreamTls = z
  .object({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    servername: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together')

const Route = z
  .object({
    name: z.string().optional(),
    path: PathPrefix,
    methods: z.array(Method).optional(),
    anonymous: z.boolean().default(false),
    deny: z.boolean().default(false),
    require: z
      .object({
        groups: z.array(z.string()).default([]),
        schemes: z.array(z.enum(SCHEMES)).optional(),
        tokenType: z.enum(REQUEST_TOKEN_TYPES).optional(),
      })
      .strict()
      .default({}),
    upstream: UpstreamUrl.optional(),
    upstreamTls: UpstreamTls.optional(),
    passCredentials: z.boolean().default(false),
    rateLimit: RateLimit.optional(),
    // Upgrade protocols besides WebSocket this route tunnels (e.g. h2c); none by default.
    upgrades: z
      .array(z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected a protocol name like h2c'))
      .default([])
      .transform((l) => l.map((p) => p.toLowerCase())),
    // the `aud` of the identity assertion on this route (identityAssertion.audience otherwise)
    assertionAudience: z.string().min(1).optional(),
    // custom identity headers of this route, over identityHeaders.custom (same name: this one)
    identityHeaders: z
      .object({ custom: HeaderMappings.default({}) })
      .strict()
      .optional(),
    // false: a browser's page load here gets the 401, never the redirect to the sign-in page
    signIn: z.boolean().default(true),
  })
  .strict()

const Issuer = z
  .object({
    issuer: z.string().min(1),
    jwksUrl: z.string().url().optional(),
    publicKey: z.string().optional(),
    audience: z.string().optional(),
    algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'])).default(['RS256']),
    usernameClaim: z.string().default('preferred_username'),
    groupsClaim: z.string().default('groups'),
    // Put before every user name from this issuer, so its users never pass for local (or another
    // issuer's) users of the same name. Absent: the issuer followed by '#'. "" shares the namespace.
    usernamePrefix: z
      .string()
      .refine((s) => !/\p{Cc}/u.test(s), 'no control characters')
      .optional(),
    // The claim X-Auth-User-Id is read from; absent: 0 (an IdP's numbers are not keygate's uids).
    uidClaim: z.string().min(1).optional(),
  })
  .strict()

// A host name the `rd` return address may name: exact, or `.example.org` for any subdomain of it.
const RedirectHost = z
  .string()
  .regex(
    /^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
    'expected a host like app.example.org or .example.org',
  )

const SignInProvider = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'expected a short id like corp (a-z, 0-9, _ and -)'),
    name: z.string().min(1).max(60),
    issuer: z
      .string()
      .url()
      .refine(
        (s) => s.startsWith('https://') || /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/.test(s),
        'expected an https issuer (plain http only on loopback)',
      ),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1).optional(),
    clientAuth: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']).optional(),
    // private_key_jwt: a PEM (or a file holding one), RS256 or ES256
    privateKey: z.string().optional(),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'expected a scope word'))
      .default(['openid', 'profile', 'email']),
    claims: z
      .object({
        username: z.string().min(1).default('preferred_username'),
        name: z.string().min(1).default('name'),
        email: z.string().min(1).default('email'),
        groups: z.string().min(1).default('groups'),
      })
      .strict()
      .default({}),
    ca: z.string().optional(),
    allow: z
      .object({
        groups: z.array(z.string()).default([]),
        emailDomains: z.array(z.string().regex(/^[a-z0-9.-]+$/i, 'expected a domain like example.org')).default([]),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((p, ctx) => {
    const auth = p.clientAuth ?? (p.privateKey ? 'private_key_jwt' : p.clientSecret ? 'client_secret_basic' : 'none')
    if ((auth === 'client_secret_basic' || auth === 'client_secret_post') && !p.clientSecret)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['clientSecret'], message: `${auth} needs a clientSecret` })
    if (auth === 'private_key_jwt' && !p.privateKey)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['privateKey'], message: 'private_key_jwt needs a privateKey' })
    if (!p.scopes.includes('openid'))
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['scopes'], message: 'scopes must include openid' })
  })

const SignIn = z
  .object({
    path: PathPrefix.default('/_keygate/sign-in'),
    local: z.boolean().default(true),
    redirect: z.enum(['auto', 'never']).default('auto'),
    publicUrl: z
      .string()
      .regex(/^https?:\/\/[^/?#\s]+$/, 'expected an origin like https://auth.example.org (no path)')
      .optional(),
    allowedRedirects: z.array(RedirectHost).default([]),
    // shown on the page: "Sign in to <appName>"
    appName: z.string().max(80).default(''),
    cookie: z
      .object({
        name: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/, 'expected a cookie name like keygate_session')
          .default('keygate_session'),
        domain: z
          .string()
          .regex(/^$|^\.?[a-z0-9.-]+$/, 'expected a domain like example.org')
          .default(''),
        secure: z.union([z.literal('auto'), z.boolean()]).default('auto'),
      })
      .strict()
      .default({}),
    providers: z.array(SignInProvider).default([]),
  })
  .strict()
  .superRefine((s, ctx) => {
    const ids = s.providers.map((p) => p.id)
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i)
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['providers', i, 'id'],
          message: `duplicate provider id ${id}`,
        })
    })
    if (!s.local && s.providers.length === 0)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['local'],
        message: 'nothing to sign in with: local is false and there are no providers',
      })
  })
// CONTRACT §10. PEM files, read at start and again on SIGHUP or when they change.
const Tls = z
  .object({
    cert: z.string().min(1),
    key: z.string().min(1),
    // TLS 1.2 is the oldest any current client needs; 1.0 and 1.1 are broken and never offered
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    // ALPN h2 beside http/1.1 on the same port
    http2: z.boolean().default(false),
    // CAs whose client certificates identify callers (`clients`); without it none is asked for
    clientCa: z.string().min(1).optional(),
    // required: a connection without a valid certificate never completes its handshake
    clientCert: z.enum(['optional', 'required']).default('optional'),
    // pass the verified certificate upstream in Envoy's X-Forwarded-Client-Cert
    forwardClientCert: z.boolean().default(false),
  })
  .strict()

export const GatewaySchema = z
  .object({
    listen: Listen.default(8080),
    tls: Tls.optional(),
    upstream: UpstreamUrl.default('demo'),
    upstreamTls: UpstreamTls.optional(),
    trustedProxies: z.array(Cidr).default([]),
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(64)]).default(1),
    store: z
      .object({
        redis: RedisTarget.optional(),
        prefix: z.string().default('keygate:'),
      })
      .strict()
      .default({}),
    secrets: z
      .object({
        salt: Secret.optional(),
        jwt: JwtKeys.default({}),
        // RSA keys for Suffit's encrypted passwords: the first is published, every one decrypts (rotation).
        loginKeys: z
          .array(z.object({ kid: z.string().min(1).optional(), privateKey: z.string().min(1) }).strict())
          .default([]),
      })
      .strict()
      .default({}),
    identityHeaders: z
      .object({
        user: HeaderName.default('X-Auth-User'),
        userId: HeaderName.default('X-Auth-User-Id'),
        email: HeaderName.default('X-Auth-Email'),
        groups: HeaderName.default('X-Auth-Groups'),
        scheme: HeaderName.default('X-Auth-Scheme'),
        custom: HeaderMappings.default({}),
      })
      .strict()
      .default({}),
    // a signed JWT for the upstream beside the plain headers (the KeygateAuth MediaWiki extension checks it)
    identityAssertion: z
      .object({
        header: HeaderName.default('X-Keygate-Assertion'),
        ttl: Duration.default('60s').refine((ms) => ms >= 10_000, 'at least 10s: the upstream needs time to check it'),
        audience: z.string().min(1),
      })
      .strict()
      .optional(),
    serviceUser: Principal.default({ name: 'service', groups: ['bot'] }),
    apiKeys: z.array(ApiKey).default([]),
    clients: z.array(Client).default([]),
    users: z.array(User).default([]),
    usersFile: z.string().optional(),
    usersFrom: z.object({ ldap: LdapUsers.optional() }).strict().default({}),
    issuers: z.array(Issuer).default([]),
    tokenApi: z
      .object({
        mounts: z.array(PathPrefix).default(['/mws/v1', '/w/rest.php/mws/v1']),
        publicBase: z.string().default('http://127.0.0.1:8080/w/rest.php'),
        // Suffit's authorize routes: each path answers like POST /api/authorize; a tokenType fixes the type.
        authorize: z
          .array(z.object({ path: PathPrefix, tokenType: z.enum(TOKEN_TYPES).optional() }).strict())
          .min(1)
          .default([{ path: '/api/authorize' }])
          .superRefine((routes, ctx) => {
            for (const [i, r] of routes.entries())
              if (routes.findIndex((o) => o.path === r.path) !== i)
                ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i, 'path'], message: `${r.path} is listed twice` })
          }),
        wikiId: z.string().default('wiki'),
        langCode: z.string().default('en'),
      })
      .strict()
      .default({}),
    tokens: z
      .object({
        userToken: z
          .object({ ttl: Duration.default('10s'), singleUse: z.boolean().default(true) })
          .strict()
          .default({}),
        appToken: z
          .object({
            ttl: Duration.default('1h'),
            groups: z.array(z.string()).default(['sysop']),
            cidr: z.array(Cidr).default([]),
          })
          .strict()
          .default({}),
        access: Ttl('1h'),
        refresh: Ttl('30d'),
        session: z
          .object({ ttl: Duration.default('1d'), remember: Duration.default('30d') })
          .strict()
          .default({}),
        api: Ttl('365d'),
      })
      .strict()
      .default({}),
    actionApi: z
      .object({
        paths: z.array(PathPrefix).default(['/api.php', '/w/api.php']),
      })
      .strict()
      .default({}),
    routes: z.array(Route).default([]),
    defaultPolicy: z.enum(['authenticated', 'anonymous', 'deny']).default('authenticated'),
    forwardAuth: z
      .object({
        path: PathPrefix.default('/_keygate/auth'),
        // A decision without the body cannot see Action API parameters sent in a POST form:
        // refuse such POSTs from callers limited to some modules, or (queryOnly) judge them by the query alone.
        actionPostBodies: z.enum(['refuse', 'queryOnly']).default('refuse'),
      })
      .strict()
      .default({}),
    identityFromUpstream: z
      .object({
        url: z.string().min(1),
        cacheTtl: Duration.default('30s'),
        // The wiki's session cookies ('*' matches any run of characters): the wiki is asked only
        // when one is sent, and is sent only these. MediaWiki's are <prefix>_session, and
        // <prefix>UserID + <prefix>Token for "keep me logged in".
        cookies: z
          .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a cookie name, * for any characters'))
          .min(1)
          .default(['*_session', '*UserID', '*Token']),
        // calls to the wiki (answers from the cache are free) per client address and window
        callLimit: z
          .object({
            perIp: z.number().int().positive().default(30),
            window: Duration.default('1m'),
          })
          .strict()
          .default({}),
      })
      .strict()
      .optional(),
    rateLimits: z
      .object({
        anonymous: RateLimit.optional(),
        authenticated: RateLimit.optional(),
        // refuse: a limited request gets E1006 while the store is unreachable (fail closed);
        // local: each instance counts on its own until the store is back (availability first).
        onStoreDown: z.enum(['refuse', 'local']).default('refuse'),
      })
      .strict()
      .default({}),
    signIn: SignIn.optional(),
    loginLimit: z
      .object({
        perUser: z.number().int().positive().default(5),
        perIp: z.number().int().positive().default(20),
        window: Duration.default('15m'),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        headersTimeout: Duration.default('10s'),
        // the whole request, headers and body, must have arrived within this
        requestTimeout: Duration.default('60s'),
        // no body byte for this long ends the request (408)
        bodyIdleTimeout: Duration.default('10s'),
        keepAliveTimeout: Duration.default('5s'),
        maxConnections: z.number().int().positive().default(10_000),
        maxConnectionsPerClient: z.number().int().positive().default(256),
        maxHeaderBytes: ByteSize.default('16KB'),
        maxBodyBytes: ByteSize.default('1MB'),
        upstreamConnectTimeout: Duration.default('5s'),
        upstreamTimeout: Duration.default('60s'),
        shutdownGrace: Duration.default('10s'),
      })
      .strict()
      .refine((l) => l.headersTimeout <= l.requestTimeout, {
        message: 'headersTimeout must not be longer than requestTimeout',
        path: ['headersTimeout'],
      })
      .default({}),
    metrics: z
      .object({
        enabled: z.boolean().default(true),
        allow: z.array(Cidr).optional(),
      })
      .strict()
      .default({}),
    audit: z.union([z.boolean(), z.object({ file: z.string() }).strict()]).default(false),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict()

export type GatewayConfig = z.infer<typeof GatewaySchema>
export type RouteConfig = z.infer<typeof Route>
export type ApiKeyConfig = z.infer<typeof ApiKey>
export type ClientConfig = z.infer<typeof Client>
export type UserConfig = z.infer<typeof User>
export type PrincipalConfig = z.infer<typeof Principal>
export type RateLimitConfig = z.infer<typeof RateLimit>
export type IssuerConfig = z.infer<typeof Issuer>
export type LdapUsersConfig = z.infer<typeof LdapUsers>
export type SignInConfig = z.infer<typeof SignIn>
export type SignInProviderConfig = z.infer<typeof SignInProvider>
export type TlsConfig = z.infer<typeof Tls>
export type UpstreamTlsConfig = z.infer<typeof UpstreamTls>

/** What goes before an issuer's user names: its `usernamePrefix`, by default the issuer and '#'. */
export const usernamePrefixOf = (cfg: Pick<IssuerConfig, 'issuer' | 'usernamePrefix'>): string =>
  cfg.usernamePrefix ?? `${cfg.issuer}#`
export const UsersFileSchema = z.object({ users: z.array(User) }).strict()
