import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rawRequest, type RawResponse, type SeenRequest } from '../helpers.js'
import { eachLimited, OWN_ENDPOINT_PROBES } from './own-endpoints.js'

// One test matrix for every real proxy that runs keygate as its forward-auth decision service
// (nginx auth_request, Caddy forward_auth): the same keygate config, the same app, the same requests.

export const MATRIX_KEY = 'proxy-matrix-key-0123456789abcdef0123456789'
/** a key held to two requests a minute */
const LIMITED_KEY = 'proxy-matrix-limited-key-0123456789abcdef012'
export const SERVICE_USER = 'ChatBot service user'
/** Clients talk to the proxy from here; the proxy talks to keygate from 127.0.0.1 (trusted). */
export const CLIENT_IP = '127.0.0.2'
export const OTHER_CLIENT_IP = '127.0.0.3'

/** keygate behind a proxy on loopback: the proxy (127.0.0.1) is trusted, the key only from CLIENT_IP. */
export const matrixGatewayConfig = (extra: Record<string, unknown> = {}) => ({
  upstream: 'demo', // forward-auth only: keygate never proxies the app here
  trustedProxies: ['127.0.0.1/32'],
  serviceUser: { name: SERVICE_USER, id: 2, email: 'bot@example.org', groups: ['bot'] },
  apiKeys: [
    {
      name: 'chatbot',
      key: MATRIX_KEY,
      cidr: [`${CLIENT_IP}/32`],
      allow: { paths: ['/app/'], actionModules: ['opensearch'] },
    },
    { name: 'limited', key: LIMITED_KEY, allow: { paths: ['/app/'] }, rateLimit: { rate: '2/m' } },
  ],
  routes: [
    { path: '/public/', methods: ['GET', 'HEAD'], anonymous: true },
    { path: '/admin/', require: { groups: ['sysop'] } },
  ],
  ...extra,
})

export interface ProxyUnderTest {
  /** the proxy's port on 127.0.0.1 */
  readonly port: number
  /** what reached the app behind the proxy */
  readonly seen: SeenRequest[]
}

const apiKey = { Authorization: `ApiKey ${MATRIX_KEY}` }

export function viaProxy(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  localAddress = CLIENT_IP,
): Promise<RawResponse> {
  const lines = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  const body = method === 'POST' ? 'action=edit&title=X&text=Y' : ''
  const length =
    method === 'POST' ? `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n` : ''
  return rawRequest(
    port,
    `${method} ${target} HTTP/1.1\r\nHost: wiki.example.org\r\n${lines}${length}Connection: close\r\n\r\n${body}`,
    { localAddress },
  )
}

/** Every value the app got for a header, whatever its spelling (PHP folds case, '_' and '.' into one name). */
export function spellingsOf(seen: SeenRequest, canonical: string): string[] {
  const out: string[] = []
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    if (seen.rawHeaders[i]!.toLowerCase().replace(/[^a-z0-9]/g, '-') === canonical) out.push(seen.rawHeaders[i + 1]!)
  }
  return out
}

const SPOOF_SPELLINGS = [
  'X-Auth-User',
  'x-auth-user',
  'X-AUTH-USER',
  'X-Auth_User',
  'x_auth_user',
  'X_Auth-User',
  'X-Auth-Groups',
  'X_Auth_Groups',
  'X-Auth-User-Id',
  'X-Auth-Scheme',
  'X-Auth-Email',
  'X-Auth.User',
  'x.AUTH.user',
  'X_Auth.Email',
  'x.auth-email',
  'X-Auth.Groups',
]
const IDENTITY = ['x-auth-user', 'x-auth-user-id', 'x-auth-email', 'x-auth-groups', 'x-auth-scheme']

/**
 * Registers the matrix for one proxy, started once at the top of the test file (so that the
 * after() hooks of what it starts run at the end of the file, not of the first test); null when
 * skipped. Each test sends requests to the proxy and checks what the client and the app saw.
 */
export function defineProxyMatrix(label: string, started: ProxyUnderTest | null, opts: { skip: string | false }): void {
  const t = (name: string, fn: (p: ProxyUnderTest) => Promise<void>): void =>
    void test(`${label}: ${name}`, { skip: opts.skip }, async () => {
      assert.ok(started, 'the proxy was started')
      await fn(started)
    })
  const newSeen = (p: ProxyUnderTest, before: number) => p.seen.slice(before)

  t("an ApiKey request passes, and the app gets keygate's identity instead of the key", async (p) => {
    const before = p.seen.length
    const res = await viaProxy(p.port, 'GET', '/app/page?x=1', {
      ...apiKey,
      'X-Auth-User': 'admin',
      'X-Auth-Groups': 'sysop',
    })
    assert.equal(res.status, 200, res.body)
    const [seen, ...more] = newSeen(p, before)
    assert.ok(seen && more.length === 0, `the app got exactly one request, got ${more.length + (seen ? 1 : 0)}`)
    assert.equal(seen.url, '/app/page?x=1')
    assert.deepEqual(spellingsOf(seen, 'x-auth-user'), [SERVICE_USER], "one X-Auth-User, keygate's")
    assert.deepEqual(spellingsOf(seen, 'x-auth-groups'), ['bot'], "one X-Auth-Groups, keygate's")
    assert.deepEqual(spellingsOf(seen, 'x-auth-user-id'), ['2'], 'X-Auth-User-Id')
    assert.deepEqual(spellingsOf(seen, 'x-auth-email'), ['bot@example.org'], 'X-Auth-Email')
    assert.deepEqual(spellingsOf(seen, 'x-auth-scheme'), ['apikey'], 'X-Auth-Scheme')
    assert.equal(seen.headers.authorization, undefined, "keygate's ApiKey stays at the proxy")
  })

  t("another Authorization scheme (the app's own Basic) passes to the app unchanged", async (p) => {
    const before = p.seen.length
    const res = await viaProxy(p.port, 'GET', '/public/page', { Authorization: 'Basic dXNlcjpwYXNz' })
    assert.equal(res.status, 200, res.body)
    assert.equal(newSeen(p, before)[0]?.headers.authorization, 'Basic dXNlcjpwYXNz', 'Basic reaches the app')
  })

  t(
    'an anonymous route passes with scheme anonymous, and no identity header in any spelling reaches the app',
    async (p) => {
      const before = p.seen.length
      for (const name of SPOOF_SPELLINGS) {
        const res = await viaProxy(p.port, 'GET', '/public/page', { [name]: 'admin' })
        assert.equal(res.status, 200, `${name}: ${res.body}`)
      }
      const got = newSeen(p, before)
      assert.equal(got.length, SPOOF_SPELLINGS.length, 'every request reached the app')
      for (const [i, seen] of got.entries()) {
        for (const h of IDENTITY) {
          const values = spellingsOf(seen, h).filter((v) => v !== '')
          if (h === 'x-auth-scheme') assert.deepEqual(values, ['anonymous'], `${SPOOF_SPELLINGS[i]}: scheme`)
          else
            assert.deepEqual(
              values,
              [],
              `${SPOOF_SPELLINGS[i]} sent by the client: the app got ${h}=${JSON.stringify(values)}`,
            )
        }
      }
    },
  )

  t('no credentials → 401 with WWW-Authenticate, and the app sees nothing', async (p) => {
    const before = p.seen.length
    const res = await viaProxy(p.port, 'GET', '/app/page')
    assert.equal(res.status, 401, res.body)
    assert.match(
      res.headers['www-authenticate'] ?? '',
      /ApiKey realm="keygate"/,
      `challenge: ${JSON.stringify(res.headers)}`,
    )
    const bad = await viaProxy(p.port, 'GET', '/app/page', {
      Authorization: 'ApiKey wrong-key-0123456789abcdef0123456789ab',
    })
    assert.equal(bad.status, 401, bad.body)
    assert.equal(newSeen(p, before).length, 0, 'the app saw no refused request')
  })

  t(
    'refused → 403: a group it lacks, a path or module it does not list, a POST body nobody judged, a hostile path',
    async (p) => {
      const before = p.seen.length
      const cases: Array<[string, string, Record<string, string>]> = [
        ['GET', '/admin/users', apiKey],
        ['GET', '/other/page', apiKey],
        ['GET', '/w/api.php?action=edit&title=X&text=Y', apiKey],
        ['POST', '/w/api.php?action=opensearch', apiKey],
        ['GET', '/public/%2e%2e/admin/users', {}],
        ['GET', '/public/%2e%2e/admin/users', apiKey],
        ['GET', '/public/..%2fadmin/users', {}],
        ['GET', '/public/%252e%252e/admin/users', {}],
        ['GET', '/public/%25%32%45%25%32%45/admin/users', {}],
        // a client's own X-Original-* / X-Forwarded-* must not describe the request for the proxy
        ['GET', '/admin/users', { ...apiKey, 'X-Original-URI': '/app/page', 'X-Forwarded-Uri': '/app/page' }],
        [
          'POST',
          '/w/api.php?action=opensearch',
          { ...apiKey, 'X-Original-Method': 'GET', 'X-Forwarded-Method': 'GET' },
        ],
      ]
      for (const [method, target, headers] of cases) {
        const res = await viaProxy(p.port, method, target, headers)
        assert.equal(
          res.status,
          403,
          `${method} ${target} ${Object.keys(headers).join(',')}: ${res.status} ${res.body.slice(0, 200)}`,
        )
      }
      assert.deepEqual(
        newSeen(p, before).map((s) => `${s.method} ${s.url}`),
        [],
        'the app saw no refused request',
      )
    },
  )

  t("Action API: the key's module passes with real results from the app", async (p) => {
    const before = p.seen.length
    const res = await viaProxy(p.port, 'GET', '/w/api.php?action=opensearch&search=Main', apiKey)
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(res.json?.[1], ['Main Page'], res.body)
    assert.equal(newSeen(p, before)[0]?.headers['x-auth-scheme'], 'apikey', 'identity on the Action API request')
  })

  t("X-Forwarded-For: the proxy's view of the client counts, a forged list does not", async (p) => {
    // the key is bound to 127.0.0.2; a client at 127.0.0.3 claiming to be it is refused
    const forged = await viaProxy(
      p.port,
      'GET',
      '/app/page',
      { ...apiKey, 'X-Forwarded-For': CLIENT_IP },
      OTHER_CLIENT_IP,
    )
    assert.equal(forged.status, 403, forged.body)
    const real = await viaProxy(
      p.port,
      'GET',
      '/app/page',
      { ...apiKey, 'X-Forwarded-For': OTHER_CLIENT_IP },
      CLIENT_IP,
    )
    assert.equal(real.status, 200, `the proxy appends the real client ${CLIENT_IP}: ${real.body}`)
  })

  t('over a rate limit: 429 E1031 with Retry-After and the RateLimit headers, and the app sees nothing', async (p) => {
    const limited = { Authorization: `ApiKey ${LIMITED_KEY}` }
    for (let i = 0; i < 2; i++) assert.equal((await viaProxy(p.port, 'GET', '/app/page', limited)).status, 200)
    const before = p.seen.length
    const res = await viaProxy(p.port, 'GET', '/app/page', limited)
    assert.equal(res.status, 429, `${res.status} ${res.body.slice(0, 200)}`)
    assert.equal(res.json?.code, 'E1031', res.body)
    assert.equal(res.json?.message, 'Too many attempts', res.body)
    assert.ok(Number(res.headers['retry-after']) >= 1, `Retry-After: ${res.headers['retry-after']}`)
    assert.equal(res.headers['ratelimit-policy'], '"key:limited";q=2;w=60')
    assert.match(res.headers['ratelimit'] ?? '', /^"key:limited";r=0;t=\d+$/)
    assert.ok(res.headers['x-request-id'], "keygate's request id is passed on")
    assert.equal(newSeen(p, before).length, 0, 'the app saw no refused request')
  })

  t("keygate's own endpoint paths, and every path under them, never reach the app without credentials", async (p) => {
    const before = p.seen.length
    const answers = await eachLimited(OWN_ENDPOINT_PROBES, 8, async ({ method, target }) => {
      const res = await viaProxy(p.port, method, target)
      return `${method} ${target} → ${res.status}`
    })
    assert.equal(answers.length, OWN_ENDPOINT_PROBES.length)
    assert.deepEqual(
      newSeen(p, before).map((s) => `${s.method} ${s.url} (scheme ${String(s.headers['x-auth-scheme'] ?? 'none')})`),
      [],
      'the app got none of them',
    )
  })
}
