import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect as h2connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import { connect as tlsConnect } from 'node:tls'
import { createServer } from 'node:http'
import { createHash } from 'node:crypto'
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startTestGateway, startUpstream, parseRawResponse } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { makeCa, serverCert } from './support/certs.js'
import { hostilePaths } from './support/hostile-paths.js'
import { FRAME, frame, getFields, headerBlock } from './support/h2-frames.js'

// HTTP/2 beside HTTP/1.1 on the TLS listener (issue 17, item 4): the same pipeline, the same
// refusals and normalised paths, identity stripping, streaming, bounded abuse; WebSocket over 1.1.

const dir = await makeTempDir('h2')
const ca = makeCa(dir, 'ca')
const cert = serverCert(dir, ca, 'server')
const API_KEY = 'h2-test-api-key-0123456789abcdef0123456789'
const upstream = await startUpstream((req, res, body) => {
  if (req.url === '/public/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    return res.end(Buffer.alloc(20 * 1024 * 1024, 'z'))
  }
  res.writeHead(200, {
    'content-type': 'application/json',
    'x-body-sha': createHash('sha256').update(body).digest('hex'),
  })
  res.end(JSON.stringify({ url: req.url }))
})

const config = {
  upstream: upstream.url,
  tls: { cert: cert.cert, key: cert.key, http2: true },
  limits: { maxBodyBytes: '32MB' },
  routes: [
    { path: '/public/', anonymous: true },
    { path: '/admin/', require: { groups: ['sysop'] } },
  ],
  serviceUser: { name: 'Bot user', id: 7, groups: ['bot'] },
  apiKeys: [{ name: 'k', key: API_KEY, allow: { paths: ['/public/', '/bots/'] } }],
}
const gw = await startTestGateway(config)

function session(): Promise<ClientHttp2Session> {
  const s = h2connect(gw.url, { ca: ca.certPem, maxSessionMemory: 64 })
  s.on('error', () => {})
  return once(s, 'remoteSettings').then(() => s)
}

interface H2Answer {
  status: number
  headers: Record<string, unknown>
  body: Buffer
}

function h2request(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = s.request(headers, { endStream: body === undefined })
    let answer: Record<string, unknown> = {}
    const chunks: Buffer[] = []
    stream.on('response', (h) => (answer = h))
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve({ status: Number(answer[':status']), headers: answer, body: Buffer.concat(chunks) }))
    stream.on('error', reject)
    if (body !== undefined) stream.end(body)
  })
}

const get = (s: ClientHttp2Session, path: string, extra: OutgoingHttpHeaders = {}) =>
  h2request(s, { ':method': 'GET', ':path': path, ...extra })

test('HTTP/2 round trip: ALPN h2, identity injected, pseudo-headers and client identity headers never reach the upstream', async () => {
  const s = await session()
  assert.equal(s.alpnProtocol, 'h2')
  const mark = upstream.seen.length
  const res = await get(s, '/bots/x?q=1', {
    authorization: `ApiKey ${API_KEY}`,
    'x-auth-user': 'admin',
    'x-auth_user': 'admin',
    'x-auth.groups': 'sysop',
    'x-forwarded-client-cert': 'Hash=00',
    'x-original-url': '/admin/',
  })
  assert.equal(res.status, 200)
  assert.ok(res.headers['x-request-id'])
  const seen = upstream.seen[mark]!
  assert.equal(seen.url, '/bots/x?q=1')
  assert.equal(seen.headers['x-auth-user'], 'Bot user')
  assert.equal(seen.headers['x-auth-scheme'], 'apikey')
  assert.equal(seen.headers['x-forwarded-proto'], 'https')
  assert.equal(seen.headers['x-forwarded-host'], new URL(gw.url).host)
  assert.equal(seen.headers.authorization, undefined)
  for (const name of Object.keys(seen.headers)) assert.ok(!name.startsWith(':'), name)
  assert.deepEqual(
    seen.rawHeaders
      .filter((_, i) => i % 2 === 0)
      .map((n) => n.toLowerCase())
      .filter((n) => /auth[-_.]|client-cert|original/.test(n)),
    ['x-auth-user', 'x-auth-user-id', 'x-auth-groups', 'x-auth-scheme'].filter((n) => n in seen.headers),
  )
  s.close()
})

test('HTTP/2: the hostile-path table gets the same refusals and the upstream the same normalised paths', async () => {
  const s = await session()
  // HTTP/2 carries no absolute-form target in :path; the rest of the table applies as it is
  for (const c of hostilePaths.filter((h) => h.path.startsWith('/') || !h.path.includes('://'))) {
    const before = upstream.seen.length
    const res = await get(s, c.path).catch((err: NodeJS.ErrnoException) => err)
    if (res instanceof Error) {
      // nghttp2 itself resets a stream whose :path is not a path (no leading slash, '*' for GET)
      assert.match(res.message, /PROTOCOL_ERROR/, c.path)
      assert.ok(!c.path.startsWith('/'), `${c.path}: only a :path without a leading slash is reset`)
      assert.equal(upstream.seen.length, before, `${c.path} reached the upstream`)
      continue
    }
    assert.equal(res.status, c.status, `${c.path} → ${res.status} ${res.body.toString()}`)
    if (c.status === 400) assert.equal(JSON.parse(res.body.toString()).code, 'E1030', c.path)
    if (c.upstreamSees) assert.equal(upstream.seen.at(-1)?.url, c.upstreamSees, c.path)
    else assert.equal(upstream.seen.length, before, `${c.path} reached the upstream`)
  }
  s.close()
})

test('HTTP/2: a 20 MB body streams both ways', async () => {
  const s = await session()
  const big = Buffer.alloc(20 * 1024 * 1024, 'abcdefghij')
  const up = await h2request(s, { ':method': 'POST', ':path': '/public/upload' }, big)
  assert.equal(up.status, 200)
  assert.equal(up.headers['x-body-sha'], createHash('sha256').update(big).digest('hex'))
  const down = await get(s, '/public/big')
  assert.equal(down.body.length, 20 * 1024 * 1024)
  s.close()
})

const curl = (args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile('curl', ['-sS', '--cacert', ca.cert, ...args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(stderr)) : resolve(stdout),
    ),
  )

test('curl --http2 speaks HTTP/2 through keygate; curl --http1.1 still gets HTTP/1.1', async () => {
  assert.equal(
    await curl(['--http2', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/public/c`]),
    '2 200',
  )
  assert.equal(
    await curl(['--http1.1', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/public/c`]),
    '1.1 200',
  )
})

test('curl --http2: a 20 MB body streams both ways', async () => {
  const big = Buffer.alloc(20 * 1024 * 1024, 'klmnopqrst')
  const file = join(dir, 'upload.bin')
  writeFileSync(file, big)
  const up = await curl([
    '--http2',
    '--data-binary',
    `@${file}`,
    '-D',
    '-',
    '-o',
    '/dev/null',
    '-w',
    '%{http_version} %{http_code}',
    `${gw.url}/public/upload`,
  ])
  assert.match(up, /\r\n2 200$/)
  assert.match(up, new RegExp(`x-body-sha: ${createHash('sha256').update(big).digest('hex')}`))
  const saved = join(dir, 'download.bin')
  assert.equal(
    await curl(['--http2', '-o', saved, '-w', '%{http_version} %{http_code}', `${gw.url}/public/big`]),
    '2 200',
  )
  assert.equal(statSync(saved).size, 20 * 1024 * 1024)
})

/** Rapid reset (CVE-2023-44487): streams opened and cancelled as fast as the client can. */
async function rapidReset(): Promise<void> {
  const abuser = await session()
  const closed = new Promise((resolve) => abuser.on('close', resolve))
  for (let i = 0; i < 5000 && !abuser.closed && !abuser.destroyed; i++) {
    const st = abuser.request({ ':method': 'GET', ':path': `/public/r${i}` })
    st.on('error', () => {})
    st.close(constants.NGHTTP2_CANCEL)
    if (i % 200 === 0) await new Promise((r) => setImmediate(r))
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))])
  abuser.destroy()
}

/** A HEADERS frame without END_HEADERS, then CONTINUATION frames until the server cuts the connection. */
async function continuationFlood(): Promise<void> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: gw.port,
    ca: ca.certPem,
    servername: 'localhost',
    ALPNProtocols: ['h2'],
  })
  await once(socket, 'secureConnect')
  socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  socket.write(frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)))
  const header = headerBlock([['x-a', 'b']])
  socket.write(frame(FRAME.HEADERS, 0, 1, headerBlock(getFields('/public/flood'))))
  let sent = 0
  let ended = false
  socket.on('close', () => (ended = true))
  socket.on('error', () => (ended = true))
  while (!ended && sent < 200_000) {
    const ok = socket.write(frame(FRAME.CONTINUATION, 0, 1, header))
    sent++
    if (!ok) await new Promise((resolve) => (socket.once('drain', resolve), socket.once('close', resolve)))
  }
  socket.destroy()
  assert.ok(ended, `the flood was cut (after ${sent} CONTINUATION frames)`)
}

test('HTTP/2 abuse is bounded: rapid reset and CONTINUATION floods end that session; others are answered throughout; memory stays flat', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const heapUsed = () => {
    // what the test's upstream and log capture keep is not the gateway's memory
    upstream.seen.splice(0)
    gw.logs.splice(0)
    gc()
    gc()
    return process.memoryUsage().heapUsed
  }
  // a bystander on its own session asks all the time, and must always be answered
  const bystander = await session()
  let answered = 0
  const failures: string[] = []
  let asking = true
  const asked = (async () => {
    while (asking) {
      const res = await get(bystander, '/public/alive').catch((err: Error) => err)
      if (res instanceof Error || res.status !== 200) {
        failures.push(res instanceof Error ? res.message : `${res.status} ${res.body.toString()}`)
        await new Promise((r) => setTimeout(r, 50))
      } else answered++
    }
  })()

  await rapidReset()
  // a stream reset in the same read as its HEADERS is dropped before the upstream is asked
  const forwarded = upstream.seen.filter((r) => r.url.startsWith('/public/r')).length
  assert.ok(forwarded < 250, `${forwarded} of 5000 reset streams reached the upstream`)
  const fresh = await session()
  assert.equal((await get(fresh, '/public/alive')).status, 200)
  fresh.close()
  await continuationFlood()
  const afterOne = heapUsed()

  const ROUNDS = 8
  for (let round = 0; round < ROUNDS; round++) {
    await rapidReset()
    await continuationFlood()
  }
  const afterMany = heapUsed()
  asking = false
  await asked
  bystander.close()

  assert.deepEqual(failures, [], 'every bystander request was answered 200')
  assert.ok(answered > ROUNDS, `the bystander was answered ${answered} times`)
  // a leak of what one flood allocates (5000 streams, 200 000 frames) would show in megabytes
  const grownMiB = (afterMany - afterOne) / 2 ** 20
  assert.ok(grownMiB < 8, `heap grew ${grownMiB.toFixed(1)} MiB over ${ROUNDS} more rounds of both floods`)
})

test('WebSocket over HTTP/1.1 still works on the HTTP/2 listener, after the same authentication', async () => {
  const ws = createServer()
  ws.on('upgrade', (req, socket) => {
    socket.end(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-User: ${String(req.headers['x-auth-user'] ?? 'none')}\r\n\r\n`,
    )
  })
  ws.listen(0, '127.0.0.1')
  await once(ws, 'listening')
  const wsGw = await startTestGateway({
    ...config,
    upstream: `http://127.0.0.1:${(ws.address() as { port: number }).port}`,
  })
  const upgrade = async (auth: string) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: wsGw.port,
      ca: ca.certPem,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    })
    await once(socket, 'secureConnect')
    socket.write(
      `GET /bots/socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${auth}\r\n`,
    )
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    await Promise.race([once(socket, 'end'), once(socket, 'close')])
    socket.destroy()
    return parseRawResponse(Buffer.concat(chunks).toString('latin1'))
  }
  const ok = await upgrade(`Authorization: ApiKey ${API_KEY}\r\n`)
  assert.equal(ok.status, 101)
  assert.equal(ok.headers['x-seen-user'], 'Bot user')
  assert.equal((await upgrade('')).status, 401)
  ws.close()
})
