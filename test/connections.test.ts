import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestGateway, startUpstream } from './helpers.js'
import { keepAliveClient } from './support/keepalive.js'

test('a refused request without a body keeps its keep-alive connection open for the next request', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({ upstream: up.url, routes: [{ path: '/public/', anonymous: true }] })
  const client = await keepAliveClient(gw.port)
  const refusals = [
    'GET /private HTTP/1.1\r\nHost: x\r\n\r\n', // 401 E1000, decided synchronously
    'GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\n\r\n', // 400 E1030
    'POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    'GET /api/authorize HTTP/1.1\r\nHost: x\r\n\r\n', // 405 on keygate's own path
  ]
  for (const request of refusals) {
    const res = await client.request(request)
    assert.ok(res, `answered: ${request.split('\r\n')[0]}`)
    assert.ok(res.status >= 400, `${res.status}`)
    assert.notEqual(res.headers.connection, 'close', `${request.split('\r\n')[0]} keeps the connection`)
  }
  const allowed = await client.request('GET /public/page HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.equal(allowed?.status, 200, 'the same connection still serves')
  assert.equal(client.closed, false)
  client.close()
  assert.equal(up.seen.length, 1)
})

test('a refused request whose body is pending still closes its connection', async () => {
  const up = await startUpstream()
  const gw = await startTestGateway({ upstream: up.url })
  const client = await keepAliveClient(gw.port)
  const res = await client.request('POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc')
  assert.equal(res?.status, 401)
  assert.equal(res?.headers.connection, 'close')
  assert.equal(await client.next(), null, 'closed after the answer')
})
