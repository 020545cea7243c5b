import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import type { CompiledRoute } from '../src/config/compile.js'
import { buildSnapshot, createGatewayParts } from '../src/gateway/snapshot.js'
import { createLogger } from '../src/log.js'
import { createMemoryStore } from '../src/store/memory.js'
import { createRouteTable, routeMatches } from '../src/pipeline/authorize.js'
import { normalizeTarget } from '../src/pipeline/normalize.js'
import { parseConfig, TEST_SECRET } from './helpers.js'

// The bucketed table must pick exactly the route a first-to-last scan of every route picks.
const scanAll = (routes: readonly CompiledRoute[], path: string, method: string) =>
  routes.find((r) => routeMatches(r, path) && (r.methods === null || r.methods.has(method)))

// The whole route table of a gateway: keygate's own endpoints, the configured routes, the fallback.
const raw = parseConfig({
  upstream: 'http://127.0.0.1:1',
  secrets: { salt: TEST_SECRET, jwt: { alg: 'HS256', secret: TEST_SECRET } },
  routes: [
    { path: '/a/b', methods: ['POST'], anonymous: true },
    { path: '/a', anonymous: true },
    { path: '/ab/', deny: true },
    { path: '/api/x', anonymous: true },
    { path: '/mws/v1/user-token/', deny: true },
    { path: '/w/', methods: ['GET'], anonymous: true },
    { path: '/_keygate', deny: true },
  ],
})
const parts = createGatewayParts(raw, createLogger('silent'), () => '', createMemoryStore())
const snapshot = await buildSnapshot(raw, parts)
after(async () => {
  snapshot.detach()
  await snapshot.forwarder.close()
  await parts.close()
  await parts.store.close()
})

const paths = [
  '/',
  '/a',
  '/a/',
  '/a/b',
  '/a/bc',
  '/a/b/c',
  '/ab',
  '/ab/',
  '/ab/c',
  '/abc',
  '/api',
  '/api/x',
  '/api/xy',
  '/api/authorize',
  '/api/authorize/x',
  '/api/authorizex',
  '/_keygate',
  '/_keygate/auth',
  '/_keygate/authx',
  '/_keygate/auth/x',
  '/_keygate/health',
  '/_keygate/health/',
  '/_keygate/health/x',
  '/mws/v1/app-token/abc',
  '/mws/v1/app-token/abc/def',
  '/mws/v1/app-token/verify/abc/',
  '/mws/v1/user-token/generate',
  '/mws/v1/user-token/verify/abc',
  '/mws/v1/other',
  '/w',
  '/w/index.php',
  '/w/rest.php/mws/v1/user-token/verify/x',
  '/.well-known/jwks.json',
  '/.well-known/other',
  '/zzz/',
  '/A/b',
]

test('the route table picks the route a scan of every route in order picks', () => {
  let compared = 0
  for (const path of paths) {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const expected = scanAll(snapshot.routes, path, method)
      assert.ok(expected, `the catch-all matches ${path}`)
      assert.equal(createRouteTable(snapshot.routes)(path, method), expected, `${method} ${path}`)
      compared++
    }
  }
  assert.equal(compared, paths.length * 3)
})

test('paths without escapes skip decoding and are judged the same', () => {
  for (const [raw, expected] of [
    ['/a/b', { path: '/a/b', matchPath: '/a/b', query: '' }],
    ['/a//b?x=1', { path: '/a/b', matchPath: '/a/b', query: 'x=1' }],
    ['/a/%41%2f', null],
    ['/a/%25%32%45', null],
    ['/a/%25%34%31', null],
    ['/a/%25zz', { path: '/a/%25zz', matchPath: '/a/%zz', query: '' }],
    ['/a/%41b', { path: '/a/Ab', matchPath: '/a/Ab', query: '' }],
    ['/a/%C3%A9', { path: '/a/%C3%A9', matchPath: '/a/é', query: '' }],
    ['/a/./b', null],
    ['/a/..', null],
    ['/..', null],
    ['/a/.hidden', { path: '/a/.hidden', matchPath: '/a/.hidden', query: '' }],
    ['/a/..b/', { path: '/a/..b/', matchPath: '/a/..b/', query: '' }],
  ] as const) {
    const got = normalizeTarget(raw)
    if (expected === null) assert.equal(got.ok, false, `${raw} is refused`)
    else assert.deepEqual(got, { ok: true, ...expected }, raw)
  }
})

test("keygate's own endpoints match exactly (verify and revoke: plus one token segment), never as prefixes", () => {
  const find = createRouteTable(snapshot.routes)
  const endpointOf = (method: string, path: string) => find(path, method).endpoint
  for (const [method, path, expected] of [
    ['GET', '/_keygate/health', 'health'],
    ['GET', '/_keygate/health/', null],
    ['GET', '/_keygate/health/x', null],
    ['DELETE', '/_keygate/metrics', 'method-not-allowed'],
    ['DELETE', '/_keygate/metrics/x', null],
    ['GET', '/.well-known/jwks.json/x', null],
    ['POST', '/api/refresh/x', null],
    ['GET', '/api/logout/secret', null],
    ['PUT', '/mws/v1/user-token/generate/x', null],
    ['POST', '/w/rest.php/mws/v1/app-token/generate/foo', null],
    ['GET', '/mws/v1/user-token/verify/abc', 'user-token-verify'],
    ['GET', '/mws/v1/user-token/verify/abc/def', null],
    ['POST', '/mws/v1/user-token/verify', 'user-token-verify'],
    ['DELETE', '/mws/v1/app-token/abc', 'app-token-revoke'],
    ['DELETE', '/mws/v1/app-token/abc/', null],
    // Envoy ext_authz appends the original path to forwardAuth.path: the endpoint answers, never the app
    ['POST', '/_keygate/auth/x', 'forward-auth'],
  ] as const) {
    assert.equal(endpointOf(method, path), expected, `${method} ${path}`)
  }
})
