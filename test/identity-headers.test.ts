import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rawGet, startTestGateway } from './helpers.js'
import { toolGate } from './support/processes.js'
import { startPhpEcho } from './support/php-echo.js'

// What a PHP application behind keygate reads as the caller's identity: real `php -S`, real
// $_SERVER (PHP folds '-', '_', '.' and more into '_'), hostile header spellings and hostile values.

const { skip } = toolGate(['php'], 'apt-get install -y php-cli')
const API_KEY = 'identity-test-api-key-0123456789abcdef0123'
const SERVICE_USER = 'Bot user'

const php = skip ? null : await startPhpEcho()

const gatewayConfig = (extra: Record<string, unknown> = {}) => ({
  upstream: php!.url,
  routes: [{ path: '/public/', anonymous: true }],
  // no e-mail: keygate sets no X-Auth-Email for this caller, so a client's copy would stand
  serviceUser: { name: SERVICE_USER, id: 7, groups: ['bot'] },
  apiKeys: [{ name: 'k', key: API_KEY, allow: { paths: ['/bots/'] } }],
  ...extra,
})

/** $_SERVER's HTTP_* entries as the PHP upstream read them. */
async function phpSees(port: number, target: string, headers: Record<string, string>) {
  const res = await rawGet(port, target, headers)
  return { status: res.status, server: (res.json?.server ?? {}) as Record<string, string>, body: res.body }
}

// name → how the client spells it; every row carries a value of its own, to tell which one leaked
const spoofSpellings = [
  'X-Auth.User',
  'x-auth.user',
  'X-AUTH.EMAIL',
  'X-Auth.Email',
  'X.Auth.User',
  'X-Auth.User.Id',
  'X-Auth.User-Id',
  'X-Auth.Groups',
  'X-Auth.Scheme',
  // mixed
  'X_Auth.User',
  'x.AUTH_user-ID',
  'X-Auth_Email',
  'x_auth_groups',
  'X-Auth-Email',
  // space-adjacent: Node refuses these, or they never reach PHP under an identity name
  'X-Auth-Email ',
  'X-Auth.Email ',
  'X-Auth-Email\t',
  ' X-Auth-Email',
]

test('identity header spellings with dots, underscores and spaces never reach PHP ($_SERVER)', { skip }, async () => {
  const gw = await startTestGateway(gatewayConfig())
  for (const [i, name] of spoofSpellings.entries()) {
    const value = `spoof${i}`
    for (const [target, auth] of [
      ['/public/page', {}],
      ['/bots/page', { Authorization: `ApiKey ${API_KEY}` }],
    ] as const) {
      const seen = await phpSees(gw.port, target, { ...auth, [name]: value })
      if (seen.status === 400) continue // refused by keygate's HTTP parser: nothing reached PHP
      assert.equal(seen.status, 200, `${JSON.stringify(name)} ${target}: ${seen.body}`)
      for (const [key, v] of Object.entries(seen.server)) {
        assert.ok(!String(v).includes(value), `${JSON.stringify(name)} ${target}: PHP read ${key}=${v}`)
      }
      if (target === '/bots/page') {
        assert.equal(seen.server.HTTP_X_AUTH_USER, SERVICE_USER, name)
        assert.equal(seen.server.HTTP_X_AUTH_SCHEME, 'apikey', name)
        assert.equal(
          seen.server.HTTP_X_AUTH_EMAIL,
          undefined,
          `${JSON.stringify(name)}: no e-mail is set for this user`,
        )
      } else {
        assert.equal(seen.server.HTTP_X_AUTH_SCHEME, 'anonymous', name)
        assert.equal(seen.server.HTTP_X_AUTH_USER, undefined, name)
      }
    }
  }
})

test(
  'dotted header names are dropped; forwarding headers keygate sets cannot be imitated with _ or .',
  { skip },
  async () => {
    const gw = await startTestGateway(gatewayConfig())
    const seen = await phpSees(gw.port, '/public/page', {
      'X-Custom.Thing': 'dotted',
      'X-Custom-Other': 'kept',
      X_Real_IP: '203.0.113.66',
      'X-Real.IP': '203.0.113.67',
      X_Forwarded_For: '203.0.113.68',
    })
    assert.equal(seen.status, 200, seen.body)
    assert.equal(seen.server.HTTP_X_CUSTOM_THING, undefined)
    assert.equal(seen.server.HTTP_X_CUSTOM_OTHER, 'kept')
    assert.equal(seen.server.HTTP_X_REAL_IP, '127.0.0.1')
    assert.equal(seen.server.HTTP_X_FORWARDED_FOR, '127.0.0.1')
  },
)
