import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startTestGateway, startUpstream } from './helpers.js'
import type { RawResponse } from './helpers.js'
import {
  ALICE_PW,
  JWT_SECRET,
  STORE_KINDS,
  decodeJwtPart,
  login,
  makeUsers,
  md5,
  postForm,
  postMultipart,
  redisPrefixes,
  type StoreKind,
} from './support/users.js'

// Compatibility with the Suffit auth API (issue 19): the /api/authorize answer field by field against
// Suffit's documented answer, for every token type and every request encoding.

const users = await makeUsers()
const prefixes = redisPrefixes('suffit')
const UA = 'suffit-client/2.0'

/** Suffit's documented answer to POST /api/authorize (values are examples; names, types and formats are the contract). */
const SUFFIT_ANSWER = {
  cachekey: '97vyZgPzskPG',
  clientid: 'f459f12619c961122450ae5883e44a60',
  code: 'E0000',
  datetime: '2024-08-13T14:42:56Z',
  elapsed: 0.230106,
  encrypted: false,
  expires: '2024-08-14T14:42:56Z',
  jti: 'oWwGYKT2MdKj-xVvF9s9',
  message: 'The user is successfully authorized',
  referer: '',
  status: true,
  token: 'ey...8o',
  type: 'access',
  user: {
    algorithm: 'SHA256',
    attributes: '',
    comment: 'Test user for internal testing only',
    created: 1678741533,
    email: 'test@owl.localhost',
    email_md5: '163e50783979333ebae6fd63b2d96d16',
    expires: 1723560176,
    flags: 31,
    groups: ['user'],
    name: 'Test User',
    not_after: 0,
    not_before: 1695334721,
    public_key: '-----BEGIN RSA PUBLIC KEY-----...',
    role: 'Test user',
    uid: 3,
    username: 'test',
  },
}

const SUFFIT_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/
const HEX32 = /^[0-9a-f]{32}$/
const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v)

export const suffitConfig = (kind: StoreKind, extra: Record<string, unknown> = {}) => ({
  upstream: 'demo',
  ...prefixes.store(kind),
  secrets: { jwt: { secret: JWT_SECRET } },
  users,
  ...extra,
})

/** Every top-level field: present, of the documented type, and in the documented format. */
function assertSuffitAnswer(res: RawResponse, type: string, label: string) {
  assert.equal(res.status, 200, `${label}: ${res.body}`)
  assert.equal(res.headers['content-type'], 'application/json;charset=UTF-8', `${label}: Content-Type`)
  const b = res.json
  assert.deepEqual(
    Object.keys(b).sort(),
    Object.keys(SUFFIT_ANSWER).sort(),
    `${label}: the documented fields, no others`,
  )
  for (const [field, example] of Object.entries(SUFFIT_ANSWER))
    assert.equal(typeOf(b[field]), typeOf(example), `${label}: ${field} is a ${typeOf(example)}`)
  assert.equal(b.status, true)
  assert.equal(b.code, 'E0000')
  assert.equal(b.message, 'The user is successfully authorized')
  assert.equal(b.type, type)
  assert.match(b.datetime, SUFFIT_DATETIME, `${label}: datetime to the second, UTC`)
  assert.match(b.expires, SUFFIT_DATETIME, `${label}: expires to the second, UTC`)
  const payload = decodeJwtPart(b.token, 1)
  assert.equal(b.jti, payload.jti)
  assert.equal(payload.type, type)
  assert.equal(Date.parse(b.datetime), payload.iat * 1000, `${label}: datetime is the token's iat`)
  assert.equal(Date.parse(b.expires), payload.exp * 1000, `${label}: expires is the token's exp`)
  assert.ok(b.elapsed >= 0 && b.elapsed < 10, `${label}: elapsed in seconds`)
  assert.match(b.clientid, HEX32)
  assert.equal(b.clientid, md5(`${UA}127.0.0.1`))
  assert.ok(b.cachekey.length > 0)
  assert.equal(b.referer, '')
  assert.equal(b.encrypted, false)
  return b
}

const ENCODINGS = {
  json: (port: number, fields: Record<string, string>) => login(port, fields, { 'User-Agent': UA }),
  form: (port: number, fields: Record<string, string>) =>
    postForm(port, '/api/authorize', fields, { 'User-Agent': UA }),
  multipart: (port: number, fields: Record<string, string>) =>
    postMultipart(port, '/api/authorize', fields, { 'User-Agent': UA }),
}
const TOKEN_TYPES = ['access', 'session', 'refresh', 'api'] as const

for (const kind of STORE_KINDS) {
  test(`${kind}: the /api/authorize answer is Suffit's, for every token type and every request encoding`, async () => {
    const gw = await startTestGateway(suffitConfig(kind))
    for (const type of TOKEN_TYPES)
      for (const [encoding, post] of Object.entries(ENCODINGS)) {
        const res = await post(gw.port, { username: 'alice', password: ALICE_PW, token_type: type })
        const b = assertSuffitAnswer(res, type, `${type} as ${encoding}`)
        assert.equal(b.user.username, 'alice')
        const cookie = res.headers['set-cookie']
        if (type === 'session') assert.match(String(cookie), new RegExp(`^keygate_session=${b.token};`))
        else assert.equal(cookie, undefined, `${type}: no cookie`)
      }
  })
}

test("keygate's own JSON answers, refusals included, say application/json;charset=UTF-8", async () => {
  const up = await startUpstream()
  const gw = await startTestGateway(suffitConfig('memory', { upstream: up.url }))
  const refused = await login(gw.port, { username: 'alice', password: 'wrong' })
  assert.equal(refused.status, 401)
  assert.equal(refused.json.code, 'E1026')
  assert.equal(refused.headers['content-type'], 'application/json;charset=UTF-8')
  const noToken = await postForm(gw.port, '/anything', {})
  assert.equal(noToken.json.code, 'E1000')
  assert.equal(noToken.headers['content-type'], 'application/json;charset=UTF-8')
  assert.equal(up.seen.length, 0)
})
