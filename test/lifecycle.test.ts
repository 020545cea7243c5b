import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import { rawGet, startTestGateway, startUpstream, captureLogs } from './helpers.js'
import { startGateway } from '../src/server.js'
import { startKeygate } from './support/keygate-process.js'

function tempConfig(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-life-'))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, text)
  return file
}

test('SIGTERM: stops accepting, lets an in-flight request finish, exits 0', async () => {
  const up = await startUpstream((_req, res) => {
    setTimeout(() => res.end('slow but whole'), 800)
  })
  const { child, port } = await startKeygate(
    tempConfig(`listen: 127.0.0.1:0\nupstream: ${up.url}\ndefaultPolicy: anonymous\n`),
  )
  const inFlight = rawGet(port, '/slow')
  await new Promise((r) => setTimeout(r, 200))
  child.kill('SIGTERM')
  const res = await inFlight
  assert.equal(res.status, 200)
  assert.equal(res.body, 'slow but whole')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})

test('SIGHUP reloads the config; a broken config is logged and the old one keeps serving', async () => {
  const up = await startUpstream()
  const file = tempConfig(`listen: 127.0.0.1:0\nupstream: ${up.url}\ndefaultPolicy: deny\n`)
  const { child, port, output } = await startKeygate(file)
  assert.equal((await rawGet(port, '/x')).status, 403)
  writeFileSync(file, `listen: 127.0.0.1:0\nupstream: ${up.url}\ndefaultPolicy: anonymous\n`)
  child.kill('SIGHUP')
  for (let i = 0; i < 50 && !output().includes('config reloaded'); i++) await new Promise((r) => setTimeout(r, 100))
  assert.equal((await rawGet(port, '/x')).status, 200)
  writeFileSync(file, `listen: 127.0.0.1:0\nupstream: ${up.url}\ndefaultPolicy: sometimes\n`)
  child.kill('SIGHUP')
  for (let i = 0; i < 50 && !output().includes('reload refused'); i++) await new Promise((r) => setTimeout(r, 100))
  assert.match(output(), /defaultPolicy/)
  assert.equal((await rawGet(port, '/x')).status, 200, 'the old config keeps serving')
  child.kill('SIGTERM')
  await once(child, 'exit')
})

test('health answers, ready reflects the store', async () => {
  const gw = await startTestGateway({ upstream: 'demo' })
  const health = await rawGet(gw.port, '/_keygate/health')
  assert.equal(health.status, 200)
  const ready = await rawGet(gw.port, '/_keygate/ready')
  assert.equal(ready.status, 200)
  const post = await rawGet(gw.port, '/_keygate/health', {})
  assert.equal(post.json.status, true)
})

test('the demo upstream echoes method, path and identity headers', async () => {
  const gw = await startTestGateway({ upstream: 'demo', defaultPolicy: 'anonymous' })
  const res = await rawGet(gw.port, '/anything?x=1', { 'X-Auth-User': 'spoof' })
  assert.equal(res.status, 200)
  assert.deepEqual(res.json, {
    upstream: 'demo',
    method: 'GET',
    path: '/anything?x=1',
    identity: { 'X-Auth-Scheme': 'anonymous' },
  })
})

test('WebSocket upgrades are proxied after the same authentication', async () => {
  const ws = createServer()
  ws.on('upgrade', (req, socket) => {
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-User: ${String(req.headers['x-auth-user'] ?? 'none')}\r\nX-Seen-Spoof: ${String(req.headers['x-auth_user'] ?? 'none')}\r\n\r\n`,
    )
    socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])))
  })
  ws.listen(0, '127.0.0.1')
  await once(ws, 'listening')
  after(() => {
    ws.closeAllConnections()
    ws.close()
  })
  const key = 'ws-test-api-key-0123456789abcdef0123456789'
  const gw = await startTestGateway({
    upstream: `http://127.0.0.1:${(ws.address() as { port: number }).port}`,
    serviceUser: { name: 'bot', groups: ['bot'] },
    apiKeys: [{ name: 'w', key, allow: { paths: ['/socket'] } }],
  })
  const open = async (headers: string) => {
    const socket = connect(gw.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(
      `GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`,
    )
    const [first] = await once(socket, 'data')
    return { socket, head: String(first) }
  }
  const refused = await open('')
  assert.match(refused.head, /^HTTP\/1.1 401/, refused.head)
  refused.socket.destroy()
  const ok = await open(`Authorization: ApiKey ${key}\r\nX-Auth_User: admin\r\n`)
  assert.match(ok.head, /^HTTP\/1.1 101/, ok.head)
  assert.match(ok.head, /x-seen-user: bot/i, ok.head)
  assert.match(ok.head, /x-seen-spoof: none/i, ok.head)
  ok.socket.write('ping')
  const [echo] = await once(ok.socket, 'data')
  assert.equal(String(echo), 'echo:ping')
  ok.socket.destroy()
})

test('a gateway built from a file reloads in-process too', async () => {
  const file = tempConfig('listen: 127.0.0.1:0\nupstream: demo\ndefaultPolicy: deny\n')
  const { logger } = captureLogs()
  const gw = await startGateway({ configFile: file, logger, listen: { host: '127.0.0.1', port: 0 } })
  after(() => gw.close())
  assert.equal((await rawGet(gw.port, '/x')).status, 403)
  writeFileSync(file, 'listen: 127.0.0.1:0\nupstream: demo\ndefaultPolicy: anonymous\n')
  assert.equal(await gw.reload(), true)
  assert.equal((await rawGet(gw.port, '/x')).status, 200)
})

test('workers: 2 runs a primary and two workers on one port, sharing Redis; SIGTERM stops them all', async () => {
  const up = await startUpstream()
  const { hashPassword } = await import('../src/tokens/password.js')
  const prefix = `kgtest:cluster:${process.pid}:`
  const hash = await hashPassword('cluster-password')
  const file = tempConfig(
    [
      'listen: 127.0.0.1:0',
      `upstream: ${up.url}`,
      'workers: 2',
      `store: {redis: "redis://127.0.0.1:6379", prefix: "${prefix}"}`,
      'secrets: {jwt: {secret: "cluster-jwt-secret-0123456789abcdef0123"}}',
      `users: [{username: carl, uid: 4, passwordHash: "${hash}", groups: [user]}]`,
    ].join('\n'),
  )
  // port 0 would give each worker its own port: pick one for the test
  const { createServer } = await import('node:net')
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as { port: number }).port
  probe.close()
  writeFileSync(file, readFileSync(file, 'utf8').replace('127.0.0.1:0', `127.0.0.1:${port}`))
  const { child, output } = await startKeygate(file, { listeners: 2 })
  const body = JSON.stringify({ username: 'carl', password: 'cluster-password' })
  const { rawRequest } = await import('./helpers.js')
  const login = await rawRequest(
    port,
    `POST /api/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  )
  assert.equal(login.status, 200, login.body)
  for (let i = 0; i < 20; i++) {
    const res = await rawGet(port, '/page', { Authorization: `Bearer ${login.json.token}` })
    assert.equal(res.status, 200, `request ${i} on whichever worker: ${res.body}`)
  }
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, output())
  const { createRedisStore } = await import('../src/store/redis.js')
  const store = createRedisStore({ redis: 'redis://127.0.0.1:6379', prefix })
  await Promise.all((await store.keys('')).map((k) => store.del(k)))
  await store.close()
})
