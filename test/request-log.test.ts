import { test } from 'node:test'
import assert from 'node:assert/strict'
import { captureLogs } from './helpers.js'
import { createRequestLog, type RequestLine } from '../src/log.js'
import { createRequestIds } from '../src/http/request-id.js'

const line: RequestLine = {
  reqId: 'abc-1',
  method: 'GET',
  path: '/wiki/Main_Page',
  status: 200,
  durationMs: 1.23456,
  decision: 'allow',
  code: undefined,
  scheme: 'anonymous',
  principal: undefined,
  route: '/wiki/',
  clientIp: '127.0.0.1',
  traceId: undefined,
}

test('request lines are JSON whatever the path, user or route holds', () => {
  const { lines, logger } = captureLogs()
  const log = createRequestLog(logger)
  const hostile = ['/a"b', '/back\\slash', '/tab\tnew\nline\u0000', '/é/日本', '/lone\ud800surrogate', '/emoji😀', '']
  for (const value of hostile)
    log.write({ ...line, path: value, principal: value, route: value, clientIp: value, method: value })
  log.write({ ...line, code: 'E1004', decision: 'deny', scheme: 'apikey', traceId: '0af7651916cd43dd8448eb211c80319c' })
  logger.flush()
  const parsed = lines
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  assert.equal(parsed.length, hostile.length + 1)
  hostile.forEach((value, i) => {
    const l = parsed[i]
    // a lone surrogate is written as its \u escape, and reads back as itself
    for (const key of ['path', 'principal', 'route', 'client_ip', 'method']) assert.equal(l[key], value, key)
    assert.equal(l.duration_ms, 1.23)
    assert.equal(l.level, 30)
    assert.equal(l.code, undefined)
  })
  const denied = parsed.at(-1)
  assert.equal(denied.code, 'E1004')
  assert.equal(denied.trace_id, '0af7651916cd43dd8448eb211c80319c')
  assert.equal(denied.principal, undefined)
})

test('request ids: unique within a process and across processes (random prefix)', () => {
  const a = createRequestIds()
  const b = createRequestIds()
  const seen = new Set<string>()
  for (let i = 0; i < 10_000; i++) {
    seen.add(a())
    seen.add(b())
  }
  assert.equal(seen.size, 20_000)
  assert.match(a(), /^[A-Za-z0-9_-]{12}-[0-9a-z]+$/)
})
