import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rawGet, startTestGateway, startUpstream, type RawResponse } from './helpers.js'
import { createMemoryStore } from '../src/store/memory.js'
import {
  ALICE_PW,
  JWT_SECRET,
  SALT,
  STORE_KINDS,
  bearer,
  decodeJwtPart,
  login,
  makeUsers,
  postForm,
  postJson,
  redisPrefixes,
  send,
  sleep,
  type StoreKind,
} from './support/users.js'

// Refresh families (issue 11, item 10): every refresh token of one login and the access tokens
// issued with them share a signed family id; reuse of a rotated refresh token, logout, or a holder
// revoking a refresh token ends the whole family, on every instance within a second.

const users = await makeUsers()
const prefixes = redisPrefixes('refresh-family')

/** Two gateways on one store (one Redis prefix, or one in-process memory store). */
async function twoGateways(kind: StoreKind) {
  const up = await startUpstream()
  const shared = randomBytes(4).toString('hex')
  const config = {
    upstream: up.url,
    ...prefixes.store(kind, shared),
    secrets: { salt: SALT, jwt: { secret: JWT_SECRET } },
    users,
  }
  const memory = kind === 'memory' ? createMemoryStore() : undefined
  if (memory) after(() => memory.close())
  const extra = memory ? { store: memory } : {}
  const a = await startTestGateway(config, extra)
  const b = await startTestGateway(config, extra)
  return { a, b }
}

async function loginRefresh(port: number): Promise<string> {
  const res = await login(port, { username: 'alice', password: ALICE_PW, token_type: 'refresh' })
  assert.equal(res.status, 200, res.body)
  return res.json.token as string
}

async function rotate(port: number, refreshToken: string): Promise<{ access: string; refresh: string }> {
  const res = await postJson(port, '/api/refresh', { refresh_token: refreshToken })
  assert.equal(res.status, 200, res.body)
  return { access: res.json.token as string, refresh: res.json.refresh_token as string }
}

/** Polls until the request is refused with E1002 or `withinMs` pass; the last answer. */
async function refusedWithin(request: () => Promise<RawResponse>, withinMs: number): Promise<RawResponse> {
  const deadline = Date.now() + withinMs
  let last = await request()
  while (last.status === 200 && Date.now() < deadline) {
    await sleep(50)
    last = await request()
  }
  return last
}

const assertRevoked = (res: RawResponse, what: string) => {
  assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`)
  assert.equal(res.json.code, 'E1002', `${what}: ${res.body}`)
}

for (const kind of STORE_KINDS) {
  test(`${kind}: refresh and access tokens of one chain carry one signed family id; a new login starts a new one`, async () => {
    const { a } = await twoGateways(kind)
    const r0 = await loginRefresh(a.port)
    const { access, refresh } = await rotate(a.port, r0)
    const family = decodeJwtPart(r0, 1).fam as string
    assert.match(family, /^[0-9a-f]{32}$/)
    assert.equal(decodeJwtPart(refresh, 1).fam, family)
    assert.equal(decodeJwtPart(access, 1).fam, family)
    assert.notEqual(decodeJwtPart(await loginRefresh(a.port), 1).fam, family)
    const plain = await login(a.port, { username: 'alice', password: ALICE_PW })
    assert.equal(decodeJwtPart(plain.json.token, 1).fam, undefined, 'a plain access token has no family')
  })

  test(`${kind}: reuse of a rotated refresh token ends the family — its successor and the access tokens issued with it, on both instances within 1 s`, async () => {
    const { a, b } = await twoGateways(kind)
    const r0 = await loginRefresh(a.port)
    const first = await rotate(a.port, r0)
    // warm both instances' verified-token caches with the access token
    assert.equal((await rawGet(a.port, '/wiki/P', bearer(first.access))).status, 200)
    assert.equal((await rawGet(b.port, '/wiki/P', bearer(first.access))).status, 200)

    assertRevoked(await postJson(b.port, '/api/refresh', { refresh_token: r0 }), 'the replayed refresh token')
    assertRevoked(
      await postJson(a.port, '/api/refresh', { refresh_token: first.refresh }),
      'the successor of the replayed rotation',
    )
    for (const gw of [a, b])
      assertRevoked(
        await refusedWithin(() => rawGet(gw.port, '/wiki/P', bearer(first.access)), 1100),
        "an access token of the family (on each instance's cache)",
      )
    // another login of the same user is another family: untouched
    const other = await rotate(a.port, await loginRefresh(a.port))
    assert.equal((await rawGet(b.port, '/wiki/P', bearer(other.access))).status, 200)
  })

  test(`${kind}: logout with an access token of the chain ends the refresh chain`, async () => {
    const { a, b } = await twoGateways(kind)
    const chain = await rotate(a.port, await loginRefresh(a.port))
    const out = await send(a.port, 'DELETE', '/api/authorize', { headers: bearer(chain.access) })
    assert.equal(out.status, 200, out.body)
    assertRevoked(await postJson(b.port, '/api/refresh', { refresh_token: chain.refresh }), 'refresh after logout')
  })

  test(`${kind}: a holder revokes a refresh token by sending it in the body of DELETE /api/authorize or POST /api/logout`, async () => {
    const { a, b } = await twoGateways(kind)
    const chain = await rotate(a.port, await loginRefresh(a.port))
    assert.equal((await rawGet(b.port, '/wiki/P', bearer(chain.access))).status, 200)
    const out = await send(a.port, 'DELETE', '/api/authorize', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: chain.refresh }),
    })
    assert.equal(out.status, 200, out.body)
    assert.equal(out.json.message, 'Revoked')
    assertRevoked(await postJson(b.port, '/api/refresh', { refresh_token: chain.refresh }), 'the revoked refresh token')
    assertRevoked(
      await refusedWithin(() => rawGet(b.port, '/wiki/P', bearer(chain.access)), 1100),
      'an access token of the revoked family',
    )

    // a form to /api/logout, beside the caller's own (unrelated) access token
    const second = await rotate(a.port, await loginRefresh(a.port))
    const own = await login(a.port, { username: 'alice', password: ALICE_PW })
    const logout = await postForm(a.port, '/api/logout', { refresh_token: second.refresh }, bearer(own.json.token))
    assert.equal(logout.status, 200, logout.body)
    assertRevoked(await postJson(a.port, '/api/refresh', { refresh_token: second.refresh }), 'revoked through a form')
    assertRevoked(await rawGet(a.port, '/wiki/P', bearer(own.json.token)), 'the caller’s own token, logged out too')

    // nothing to revoke, or not a refresh token: refused as before
    const none = await send(a.port, 'DELETE', '/api/authorize')
    assert.equal(none.status, 401, none.body)
    assert.equal(none.json.code, 'E1000')
    const garbage = await postJson(a.port, '/api/logout', { refresh_token: 'a.b.c' })
    assert.equal(garbage.json.code, 'E1001', garbage.body)
    const access = await postJson(a.port, '/api/logout', { refresh_token: second.access })
    assert.equal(access.json.code, 'E1020', access.body)
  })
}
