import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { once } from 'node:events'
import { rawGet, rawRequest, startTestGateway } from './helpers.js'
import { startMediaWikiUpstream } from './mediawiki-upstream.js'

const KEY = 'service-access-key-0123456789abcdef0123456789'
const SALT = 'service-access-salt-0123456789abcdef0123'

const config = (upstream: string, extra: Record<string, unknown> = {}) => ({
  upstream,
  secrets: { salt: SALT },
  serviceUser: { name: 'ChatBot service user', id: 2, groups: ['bot'] },
  apiKeys: [
    {
      name: 'chatbot',
      key: KEY,
      cidr: ['127.0.0.1/32'],
      allow: {
        paths: ['/w/rest.php/v1/page/', '/mws/v1/app-token/generate', '/mws/v1/user-token/verify'],
        actionModules: ['opensearch', 'query+search', 'query+info'],
      },
    },
  ],
  ...extra,
})

const auth = { Authorization: `ApiKey ${KEY}` }

function post(
  port: number,
  target: string,
  contentType: string,
  body: string,
  headers: Record<string, string> = auth,
  localAddress?: string,
) {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  return rawRequest(
    port,
    `POST ${target} HTTP/1.1\r\nHost: wiki.test\r\n${extra}Content-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    { localAddress },
  )
}

const multipart = (fields: Array<[string, string]>, boundary = 'XyZ123') =>
  fields.map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join('') +
  `--${boundary}--\r\n`

test('an ApiKey reaches action=opensearch by GET, POST form and multipart, and the upstream gets the same bytes', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url))
  const get = await rawGet(gw.port, '/w/api.php?action=opensearch&search=Main', auth)
  assert.equal(get.status, 200, get.body)
  assert.deepEqual(get.json[1], ['Main Page'])
  const form = await post(gw.port, '/w/api.php', 'application/x-www-form-urlencoded', 'action=opensearch&search=Main')
  assert.equal(form.status, 200, form.body)
  const mp = multipart([
    ['action', 'opensearch'],
    ['search', 'Main'],
  ])
  const multi = await post(gw.port, '/w/api.php', 'multipart/form-data; boundary=XyZ123', mp)
  assert.equal(multi.status, 200, multi.body)
  assert.equal(up.seen.length, 3)
  assert.equal(up.seen[1]!.body.toString(), 'action=opensearch&search=Main')
  assert.equal(up.seen[2]!.body.toString(), mp)
  assert.ok(
    up.seen.every(
      (s) =>
        s.headers['x-auth-user'] === 'ChatBot service user' &&
        s.headers['x-auth-scheme'] === 'apikey' &&
        s.headers.authorization === undefined,
    ),
  )
})

const refused: Array<{ name: string; send: (port: number) => ReturnType<typeof rawGet>; code: string }> = [
  { name: 'action=edit', send: (p) => rawGet(p, '/w/api.php?action=edit&title=X&text=Y', auth), code: 'E1004' },
  {
    name: 'list=allusers with only query+search',
    send: (p) => rawGet(p, '/w/api.php?action=query&list=allusers', auth),
    code: 'E1004',
  },
  {
    name: 'list=search|allusers',
    send: (p) => rawGet(p, '/w/api.php?action=query&list=search%7Callusers', auth),
    code: 'E1004',
  },
  {
    name: 'U+001F multi-value with allusers',
    send: (p) => rawGet(p, '/w/api.php?action=query&list=%1Fsearch%1Fallusers', auth),
    code: 'E1004',
  },
  {
    name: 'generator=allpages',
    send: (p) => rawGet(p, '/w/api.php?action=query&generator=allpages', auth),
    code: 'E1004',
  },
  {
    name: 'export of page text',
    send: (p) => rawGet(p, '/w/api.php?action=query&list=search&export', auth),
    code: 'E1004',
  },
  {
    name: 'action=opensearch&action=edit',
    send: (p) => rawGet(p, '/w/api.php?action=opensearch&action=edit', auth),
    code: 'E1030',
  },
  { name: 'action[]=opensearch', send: (p) => rawGet(p, '/w/api.php?action[]=opensearch', auth), code: 'E1030' },
  {
    name: 'act%69on=edit (decodes to action)',
    send: (p) => rawGet(p, '/w/api.php?act%69on=edit', auth),
    code: 'E1004',
  },
  {
    name: 'action%00x=edit (PHP cuts at NUL)',
    send: (p) => rawGet(p, '/w/api.php?action%00x=edit', auth),
    code: 'E1030',
  },
  {
    name: 'action=Opensearch (case matters)',
    send: (p) => rawGet(p, '/w/api.php?action=OpenSearch', auth),
    code: 'E1030',
  },
  { name: 'no action (MediaWiki help)', send: (p) => rawGet(p, '/w/api.php', auth), code: 'E1004' },
  {
    name: 'POST action=edit over GET action=opensearch',
    send: (p) => post(p, '/w/api.php?action=opensearch', 'application/x-www-form-urlencoded', 'action=edit'),
    code: 'E1030',
  },
  {
    name: 'POST form action=edit',
    send: (p) => post(p, '/w/api.php', 'application/x-www-form-urlencoded; charset=UTF-8', 'action=edit&title=X'),
    code: 'E1004',
  },
  {
    name: 'uppercase form type with a second type',
    send: (p) =>
      post(p, '/w/api.php?action=opensearch', 'APPLICATION/X-WWW-FORM-URLENCODED, text/plain', 'action=edit'),
    code: 'E1030',
  },
  {
    name: 'multipart action=edit',
    send: (p) => post(p, '/w/api.php', 'multipart/form-data; boundary=B', multipart([['action', 'edit']], 'B')),
    code: 'E1004',
  },
  {
    name: 'multipart duplicate action',
    send: (p) =>
      post(
        p,
        '/w/api.php',
        'multipart/form-data; boundary=B',
        multipart(
          [
            ['action', 'opensearch'],
            ['action', 'edit'],
          ],
          'B',
        ),
      ),
    code: 'E1030',
  },
  {
    name: 'multipart name*=',
    send: (p) =>
      post(
        p,
        '/w/api.php',
        'multipart/form-data; boundary=B',
        `--B\r\nContent-Disposition: form-data; name*=UTF-8''action\r\n\r\nedit\r\n--B--\r\n`,
      ),
    code: 'E1030',
  },
  {
    name: 'multipart without boundary',
    send: (p) => post(p, '/w/api.php?action=opensearch', 'multipart/form-data', multipart([['action', 'edit']], 'B')),
    code: 'E1030',
  },
  {
    name: 'JSON body to api.php',
    send: (p) => post(p, '/w/api.php?action=opensearch', 'application/json', '{"action":"edit"}'),
    code: 'E1030',
  },
  {
    name: 'two Content-Type headers',
    send: (p) =>
      post(
        p,
        '/w/api.php?action=opensearch',
        'application/json\r\nContent-Type: application/x-www-form-urlencoded',
        'action=edit',
      ),
    code: 'E1030',
  },
  {
    name: 'gzip-encoded form',
    send: (p) =>
      post(p, '/w/api.php?action=opensearch', 'application/x-www-form-urlencoded', 'x', {
        ...auth,
        'Content-Encoding': 'gzip',
      }),
    code: 'E1030',
  },
  { name: 'REST path not listed', send: (p) => rawGet(p, '/w/rest.php/v1/search/page?q=x', auth), code: 'E1004' },
  {
    name: 'index.php is not the Action API',
    send: (p) => rawGet(p, '/w/index.php?action=raw&title=Secret', auth),
    code: 'E1004',
  },
  { name: 'api.php with PATH_INFO', send: (p) => rawGet(p, '/w/api.php/x?action=edit', auth), code: 'E1004' },
]

test('an ApiKey is refused every module and path it does not list, and the upstream never sees the request', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url))
  for (const c of refused) {
    const res = await c.send(gw.port)
    assert.equal(res.json?.code, c.code, `${c.name}: ${res.status} ${res.body}`)
    assert.equal(up.seen.length, 0, `${c.name} reached the upstream`)
  }
  // and the allowed neighbours do pass
  assert.equal((await rawGet(gw.port, '/w/api.php?action=query&list=search&srsearch=x&prop=info', auth)).status, 200)
  assert.equal((await rawGet(gw.port, '/w/rest.php/v1/page/Main_Page', auth)).status, 200)
})

test('an Action API body over the bound is refused with E1030', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url, { limits: { maxBodyBytes: '1KB' } }))
  const res = await post(
    gw.port,
    '/w/api.php',
    'application/x-www-form-urlencoded',
    `action=opensearch&search=${'a'.repeat(2000)}`,
  )
  assert.equal(res.json.code, 'E1030')
  assert.equal(up.seen.length, 0)
})

test('CIDR: the key works from 127.0.0.1, not from 127.0.0.2; IPv4-mapped IPv6 counts as IPv4', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url))
  assert.equal((await rawGet(gw.port, '/w/api.php?action=opensearch', auth)).status, 200)
  const other = await rawGet(gw.port, '/w/api.php?action=opensearch', auth, { localAddress: '127.0.0.2' })
  assert.equal(other.status, 403)
  assert.equal(other.json.code, 'E1004')
  const dual = await startTestGateway(config(up.url), { listen: { host: '::', port: 0 } })
  const mapped = await rawGet(dual.port, '/w/api.php?action=opensearch', auth)
  assert.equal(mapped.status, 200, 'peer ::ffff:127.0.0.1 is 127.0.0.1')
  assert.equal(
    (await rawGet(dual.port, '/w/api.php?action=opensearch', auth, { localAddress: '127.0.0.2' })).status,
    403,
  )
})

test('CIDR: X-Forwarded-For counts only from a trusted proxy', async () => {
  const up = await startMediaWikiUpstream()
  const direct = await startTestGateway(config(up.url))
  const spoofed = await rawGet(
    direct.port,
    '/w/api.php?action=opensearch',
    { ...auth, 'X-Forwarded-For': '127.0.0.1' },
    { localAddress: '127.0.0.2' },
  )
  assert.equal(spoofed.status, 403, 'an untrusted peer cannot claim 127.0.0.1')
  const behindProxy = await startTestGateway(config(up.url, { trustedProxies: ['127.0.0.2/32'] }))
  const viaProxy = await rawGet(
    behindProxy.port,
    '/w/api.php?action=opensearch',
    { ...auth, 'X-Forwarded-For': '127.0.0.1' },
    { localAddress: '127.0.0.2' },
  )
  assert.equal(viaProxy.status, 200)
  const outsider = await rawGet(
    behindProxy.port,
    '/w/api.php?action=opensearch',
    { ...auth, 'X-Forwarded-For': '127.0.0.1, 192.0.2.7' },
    { localAddress: '127.0.0.2' },
  )
  assert.equal(outsider.status, 403, 'the right-most untrusted hop is the client')
})

test('a refused request whose body is still coming is answered at once and its connection closed', async () => {
  const up = await startMediaWikiUpstream()
  const gw = await startTestGateway(config(up.url, { limits: { maxBodyBytes: '1KB' } }))
  const socket = connect(gw.port, '127.0.0.1')
  await once(socket, 'connect')
  // declares 100 MB, sends 2 KB: keygate must not wait for (or read) the rest
  socket.write(
    `POST /w/api.php HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey ${KEY}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\naction=opensearch&search=${'a'.repeat(2048)}`,
  )
  let text = ''
  socket.on('data', (d) => {
    text += String(d)
  })
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 3000))])
  assert.match(text, /^HTTP\/1.1 400/, text.slice(0, 80))
  assert.match(text, /connection: close/i, 'the connection is closed, not drained')
  assert.ok(socket.destroyed || socket.readableEnded, 'keygate closed the socket')
  socket.destroy()
  assert.equal(up.seen.length, 0)
})
