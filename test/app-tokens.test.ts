import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { rawGet, rawRequest, startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'
import { createRedisStore } from '../src/store/redis.js'

const KEY = 'app-token-test-key-0123456789abcdef0123456789'
const SALT = 'app-token-test-salt-0123456789abcdef01234'
const PUBLIC_BASE = 'https://wiki.example.org/w/rest.php'

const stores = {
  memory: () => undefined,
  redis: () => ({
    redis: 'redis://127.0.0.1:6379',
    prefix: `kgtest:app:${process.pid}:${randomBytes(4).toString('hex')}:`,
  }),
}

after(async () => {
  // remove every key this file wrote to the shared Redis
  const s = createRedisStore({ redis: 'redis://127.0.0.1:6379', prefix: `kgtest:app:${process.pid}:` })
  await Promise.all((await s.keys('')).map((k) => s.del(k)))
  await s.close()
})

const config = (upstream: string, store: unknown, ttl = '1h') => ({
  upstream,
  ...(store ? { store } : {}),
  secrets: { salt: SALT },
  tokenApi: { publicBase: PUBLIC_BASE },
  tokens: { appToken: { ttl } },
  serviceUser: { name: 'ChatBot service user', id: 2, groups: ['bot'] },
  routes: [{ path: '/w/index.php', require: { groups: ['sysop'] } }],
  apiKeys: [
    {
      name: 'chatbot',
      key: KEY,
      cidr: ['127.0.0.1/32'],
      allow: { paths: ['/mws/v1/app-token/'], actionModules: ['opensearch'] },
    },
    { name: 'reader', key: `${KEY}-reader`, allow: { actionModules: ['opensearch'] } },
  ],
})

const generate = (port: number, key = KEY, mount = '/mws/v1') =>
  rawRequest(
    port,
    `POST ${mount}/app-token/generate HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  )

function openEnvelopeIndependently(value: string) {
  const env = JSON.parse(Buffer.from(value, 'base64').toString('utf8'))
  const expected = createHmac('sha256', SALT)
    .update(env.verifyCallback + env.token)
    .digest('hex')
  return { env, sigOk: env.sig === expected }
}

for (const [storeName, storeConfig] of Object.entries(stores)) {
  test(`${storeName}: an allowed ApiKey generates an AppToken envelope whose HMAC checks out independently`, async () => {
    const up = await startMediaWikiUpstream()
    const gw = await startTestGateway(config(up.url, storeConfig()))
    const res = await generate(gw.port)
    assert.equal(res.status, 200, res.body)
    const { env, sigOk } = openEnvelopeIndependently(res.json.value)
    assert.ok(sigOk, 'sig = hex HMAC-SHA256(salt, verifyCallback + token)')
    assert.equal(env.verifyCallback, PUBLIC_BASE)
    assert.match(env.token, /^[0-9a-f]{32,}$/, 'at least 128 bits of hex')
    assert.deepEqual(Object.keys(env).sort(), ['sig', 'token', 'verifyCallback'])
    assert.ok(!gw.logs.join('').includes(env.token), 'the token is never logged')

    // full (sysop) access as the service user, scheme apptoken
    const edit = await rawGet(gw.port, '/w/api.php?action=edit&title=X', { Authorization: `AppToken ${env.token}` })
    assert.equal(edit.status, 200, edit.body)
    const admin = await rawGet(gw.port, '/w/index.php?title=Special:UserRights', {
      Authorization: `apptoken ${env.token}`,
    })
    assert.equal(admin.status, 200, admin.body)
    const seen = up.seen.at(-1)!
    assert.equal(seen.headers['x-auth-user'], 'ChatBot service user')
    assert.equal(seen.headers['x-auth-user-id'], '2')
    assert.equal(seen.headers['x-auth-groups'], 'bot,sysop')
    assert.equal(seen.headers['x-auth-scheme'], 'apptoken')
    assert.equal(seen.headers.authorization, undefined)

    // the whole envelope is accepted too; a tampered one is not
    assert.equal(
      (await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${res.json.value}` })).status,
      200,
    )
    const tampered = Buffer.from(
      JSON.stringify({ ...env, token: env.token.replace(/.$/, env.token.endsWith('0') ? '1' : '0') }),
    ).toString('base64')
    assert.equal(
      (await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${tampered}` })).json.code,
      'E1001',
    )

    // verify tells an allowed key holder who the token is for
    const verify = await rawGet(gw.port, `/mws/v1/app-token/verify/${env.token}`, { Authorization: `ApiKey ${KEY}` })
    assert.equal(verify.status, 200, verify.body)
    assert.equal(verify.json.username, 'ChatBot service user')
    assert.deepEqual(verify.json.groups, ['bot', 'sysop'])

    // revoke, then it no longer works
    const revoke = await rawRequest(
      gw.port,
      `DELETE /mws/v1/app-token/${env.token} HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${KEY}\r\nConnection: close\r\n\r\n`,
    )
    assert.equal(revoke.status, 200, revoke.body)
    const after = await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${env.token}` })
    assert.equal(after.status, 401)
    assert.equal(after.json.code, 'E1002', 'a revoked AppToken is told so')
    const envelopeAfter = await rawGet(gw.port, '/w/api.php?action=edit', {
      Authorization: `AppToken ${res.json.value}`,
    })
    assert.equal(envelopeAfter.json.code, 'E1002', 'its envelope too')
    const again = await rawRequest(
      gw.port,
      `DELETE /mws/v1/app-token/${env.token} HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${KEY}\r\nConnection: close\r\n\r\n`,
    )
    assert.notEqual(again.status, 200, `revoking twice revokes nothing: ${again.body}`)
    const unknown = await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${'ab'.repeat(32)}` })
    assert.equal(unknown.json.code, 'E1001', 'a token never issued is invalid, not revoked')
  })

  test(`${storeName}: an AppToken expires after tokens.appToken.ttl`, async () => {
    const up = await startMediaWikiUpstream()
    const gw = await startTestGateway(config(up.url, storeConfig(), '1s'))
    const { env } = openEnvelopeIndependently((await generate(gw.port, KEY, '/w/rest.php/mws/v1')).json.value)
    assert.equal(
      (await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${env.token}` })).status,
      200,
    )
    await new Promise((r) => setTimeout(r, 1200))
    const expired = await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${env.token}` })
    assert.equal(expired.status, 401)
    assert.equal(expired.json.code, 'E1001')
  })
}

test('app tokens: only a key listing the path may generate, only ApiKeys may generate at all, from its CIDR', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url, undefined))
  const reader = await generate(gw.port, `${KEY}-reader`)
  assert.equal(reader.status, 403)
  assert.equal(reader.json.code, 'E1004')
  const outside = await rawRequest(
    gw.port,
    `POST /mws/v1/app-token/generate HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    { localAddress: '127.0.0.2' },
  )
  assert.equal(outside.status, 403)
  const { env } = openEnvelopeIndependently((await generate(gw.port)).json.value)
  const byAppToken = await rawRequest(
    gw.port,
    `POST /mws/v1/app-token/generate HTTP/1.1\r\nHost: x\r\nAuthorization: AppToken ${env.token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  )
  assert.equal(byAppToken.status, 403, 'an app token cannot mint more app tokens')
  const getGenerate = await rawGet(gw.port, '/mws/v1/app-token/generate', { Authorization: `ApiKey ${KEY}` })
  assert.equal(getGenerate.status, 405)
  assert.equal(up.seen.length, 0)
})

test('app tokens: a wrong token of the right length is refused; AppToken CIDR binds when configured', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway({ ...config(up.url, undefined), tokens: { appToken: { cidr: ['127.0.0.1/32'] } } })
  const { env } = openEnvelopeIndependently((await generate(gw.port)).json.value)
  const wrong = env.token.split('').reverse().join('')
  assert.equal(
    (await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${wrong}` })).json.code,
    'E1001',
  )
  assert.equal(
    (await rawGet(gw.port, '/w/api.php?action=edit', { Authorization: `AppToken ${env.token}` })).status,
    200,
  )
  const outside = await rawGet(
    gw.port,
    '/w/api.php?action=edit',
    { Authorization: `AppToken ${env.token}` },
    { localAddress: '127.0.0.2' },
  )
  assert.equal(outside.status, 403)
})
