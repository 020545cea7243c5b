import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { rawGet, rawRequest, startTestGateway, startUpstream } from './helpers.js'
import { freePort, kill, startRedis, waitFor } from './support/redis-server.js'
import { hashPassword } from '../src/tokens/password.js'

const children: ChildProcess[] = []
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
})

const KEY = 'failclosed-key-0123456789abcdef0123456789ab'

test('Redis stops: every request that needs the store gets 503 E1006 and nothing passes; Redis back: service resumes by itself', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-failclosed-'))
  const port = await freePort()
  const redis = await startRedis(port, [], dir, children)
  const up = await startUpstream()
  const gw = await startTestGateway({
    upstream: up.url,
    store: { redis: `redis://127.0.0.1:${port}`, prefix: 'kg:' },
    secrets: {
      salt: 'failclosed-salt-0123456789abcdef0123456',
      jwt: { secret: 'failclosed-jwt-0123456789abcdef01234567' },
    },
    users: [{ username: 'ann', uid: 5, passwordHash: await hashPassword('ann-password'), groups: ['user'] }],
    apiKeys: [{ name: 'k', key: KEY, allow: { paths: ['/mws/v1/app-token/generate', '/api/'] } }],
    routes: [{ path: '/public/', anonymous: true }],
  })
  const credentials = JSON.stringify({ username: 'ann', password: 'ann-password' })
  const login = async () =>
    rawRequest(
      gw.port,
      `POST /api/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${credentials.length}\r\nConnection: close\r\n\r\n${credentials}`,
    )
  const logged = await login()
  assert.equal(logged.status, 200, logged.body)
  const bearer = { Authorization: `Bearer ${logged.json.token}` }
  const app = await rawRequest(
    gw.port,
    `POST /mws/v1/app-token/generate HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  )
  const appToken = JSON.parse(Buffer.from(app.json.value, 'base64').toString()).token
  assert.equal((await rawGet(gw.port, '/page', bearer)).status, 200)
  assert.equal((await rawGet(gw.port, '/page', { Authorization: `AppToken ${appToken}` })).status, 200)
  const before = up.seen.length

  await kill(redis)
  await sleep(1500) // the heartbeat (≤ 1 s) has noticed: no cached verdict may stand in for the store now
  const needsStore: Array<[string, () => ReturnType<typeof rawGet>]> = [
    ['bearer', () => rawGet(gw.port, '/page', bearer)],
    ['apptoken', () => rawGet(gw.port, '/page', { Authorization: `AppToken ${appToken}` })],
    ['login', login],
    ['user-token generate', () => rawGet(gw.port, '/mws/v1/user-token/generate')],
    ['ready', () => rawGet(gw.port, '/_keygate/ready')],
  ]
  for (const [name, send] of needsStore) {
    const started = Date.now()
    const res = await send()
    assert.equal(res.status, 503, `${name}: ${res.status} ${res.body}`)
    assert.equal(res.json?.code, 'E1006', `${name}: ${res.body}`)
    assert.ok(Date.now() - started < 2000, `${name} answered within 2 s`)
  }
  assert.equal(up.seen.length, before, 'nothing reached the upstream while the store was down')
  await sleep(20)
  const generateLine = gw.logs
    .map((l) => JSON.parse(l))
    .filter((l) => l.path === '/mws/v1/user-token/generate')
    .at(-1)
  assert.deepEqual(
    [generateLine?.decision, generateLine?.code],
    ['deny', 'E1006'],
    'an endpoint refused for the store is logged as such',
  )
  // what needs no store still works: an anonymous route and a static key
  assert.equal((await rawGet(gw.port, '/public/x')).status, 200)
  assert.equal((await rawGet(gw.port, '/_keygate/health')).status, 200)

  await startRedis(port, [], dir, children)
  // The restarted Redis is empty (no persistence): old tokens are gone, but service resumes.
  await waitFor(async () => (await rawGet(gw.port, '/_keygate/ready')).status === 200, 5000, 'ready again')
  const again = await login()
  assert.equal(again.status, 200, again.body)
  assert.equal((await rawGet(gw.port, '/page', { Authorization: `Bearer ${again.json.token}` })).status, 200)
})
