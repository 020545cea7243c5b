import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpsRequest, Agent } from 'node:https'
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { execFile } from 'node:child_process'
import { copyFileSync, renameSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import { once } from 'node:events'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startTestGateway, startUpstream } from './helpers.js'
import { makeTempDir } from './support/processes.js'
import { makeCa, serverCert, type KeyPair } from './support/certs.js'
import { ALICE_PW, JWT_SECRET, makeUsers, sleep } from './support/users.js'

// HTTPS at the edge (issue 17, item 1): PEM files, modern defaults, rotation without a failed request.

const dir = await makeTempDir('tls')
const ca = makeCa(dir, 'ca')
const first = serverCert(dir, ca, 'first')
const second = serverCert(dir, ca, 'second')
const upstream = await startUpstream()

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** the server certificate's fingerprint */
  fingerprint: string
}

function get(
  port: number,
  path: string,
  opts: { headers?: Record<string, string>; agent?: Agent; method?: string; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        ca: ca.certPem,
        agent: opts.agent ?? false,
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            fingerprint,
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** A bare handshake: what the server offers to a client with these settings. */
async function handshake(port: number, options: ConnectionOptions = {}) {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost', ...options })
  try {
    await once(socket, 'secureConnect')
    return { ok: true as const, protocol: socket.getProtocol(), cipher: socket.getCipher().name }
  } catch (err) {
    return { ok: false as const, error: (err as Error).message }
  } finally {
    socket.destroy()
  }
}

const fingerprintOf = (pair: KeyPair) => new X509Certificate(pair.certPem).fingerprint256

function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

const tlsConfig = (pair: KeyPair, extra: Record<string, unknown> = {}) => ({
  upstream: upstream.url,
  defaultPolicy: 'anonymous',
  tls: { cert: pair.cert, key: pair.key, ...extra },
})

test('HTTPS round trip with Node: the upstream hears X-Forwarded-Proto https, a client copy is not believed', async () => {
  const gw = await startTestGateway(tlsConfig(first))
  assert.match(gw.url, /^https:\/\//)
  const res = await get(gw.port, '/wiki/Main?x=1', { headers: { 'X-Forwarded-Proto': 'http' } })
  assert.equal(res.status, 200)
  assert.equal(res.fingerprint, fingerprintOf(first))
  const seen = upstream.seen.at(-1)!
  assert.equal(seen.url, '/wiki/Main?x=1')
  assert.equal(seen.headers['x-forwarded-proto'], 'https')
})

test('HTTPS round trip with curl, which verifies the certificate against the test CA', async () => {
  const gw = await startTestGateway(tlsConfig(first))
  const ok = await curl([
    '--cacert',
    ca.cert,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{ssl_verify_result}',
    `${gw.url}/x`,
  ])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(ok.stdout, '200 0')
  const untrusted = await curl(['-o', '/dev/null', `${gw.url}/x`])
  assert.equal(untrusted.code, 60, 'curl without the CA refuses the certificate (exit 60)')
})

test('modern defaults: TLS 1.0/1.1 and CBC/SHA-1 suites are refused; tls.minVersion TLSv1.3 refuses 1.2', async () => {
  const gw = await startTestGateway(tlsConfig(first))
  const tls13 = await handshake(gw.port)
  assert.equal(tls13.ok && tls13.protocol, 'TLSv1.3')
  const tls12 = await handshake(gw.port, { maxVersion: 'TLSv1.2' })
  assert.ok(tls12.ok && /GCM|CHACHA20/.test(tls12.cipher), JSON.stringify(tls12))
  const tls11 = await handshake(gw.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
  assert.equal(tls11.ok, false, 'TLS 1.1 refused')
  for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'AES128-GCM-SHA256']) {
    const r = await handshake(gw.port, { maxVersion: 'TLSv1.2', ciphers: weak })
    assert.equal(r.ok, false, `${weak} refused`)
  }

  const strict = await startTestGateway(tlsConfig(first, { minVersion: 'TLSv1.3' }))
  assert.equal((await handshake(strict.port, { maxVersion: 'TLSv1.2' })).ok, false)
  assert.equal((await handshake(strict.port)).ok, true)
})

test('a session cookie set over HTTPS is Secure and __Host-, even from loopback', async () => {
  const gw = await startTestGateway({
    ...tlsConfig(first),
    secrets: { jwt: { secret: JWT_SECRET } },
    users: await makeUsers(),
  })
  const res = await get(gw.port, '/api/authorize', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: ALICE_PW, token_type: 'session' }),
  })
  assert.equal(res.status, 200, res.body)
  const cookie = String(res.headers['set-cookie'])
  assert.match(cookie, /^__Host-keygate_session=/)
  assert.match(cookie, /; Secure/)
})

test('a missing or mismatched key is a start-up error, not a listener without TLS', async () => {
  await assert.rejects(startTestGateway(tlsConfig({ ...first, key: join(dir, 'absent.key') })), /ENOENT/)
  await assert.rejects(
    startTestGateway(tlsConfig({ ...first, key: second.key })),
    /key values mismatch|KEY_VALUES_MISMATCH/i,
  )
})

/** Connects anew every few ms until stopped: every answer must be a 200; returns the fingerprints seen. */
function keepConnecting(port: number) {
  const seen: string[] = []
  const failures: string[] = []
  let running = true
  const done = (async () => {
    while (running) {
      try {
        const res = await get(port, '/ping')
        if (res.status !== 200) failures.push(`status ${res.status}`)
        seen.push(res.fingerprint)
      } catch (err) {
        failures.push((err as Error).message)
      }
    }
  })()
  return {
    seen,
    failures,
    async stop() {
      running = false
      await done
    },
  }
}

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out')
    await sleep(20)
  }
}

test('rotation in place: new handshakes get the new certificate, no request fails, an open connection keeps going', async () => {
  const live = join(dir, 'inplace')
  mkdirSync(live)
  copyFileSync(first.cert, join(live, 'tls.crt'))
  copyFileSync(first.key, join(live, 'tls.key'))
  const gw = await startTestGateway(tlsConfig({ ...first, cert: join(live, 'tls.crt'), key: join(live, 'tls.key') }))
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  assert.equal((await get(gw.port, '/open', { agent })).fingerprint, fingerprintOf(first))

  const client = keepConnecting(gw.port)
  await waitFor(() => client.seen.length >= 5)
  // certbot-style: the files are written one after the other (cert first: for a moment they do not match)
  writeFileSync(join(live, 'tls.crt'), second.certPem)
  await sleep(30)
  writeFileSync(join(live, 'tls.key'), second.keyPem)
  await waitFor(() => client.seen.at(-1) === fingerprintOf(second))
  const settled = client.seen.length
  await waitFor(() => client.seen.length >= settled + 5)
  await client.stop()

  assert.deepEqual(client.failures, [])
  assert.ok(client.seen.slice(settled).every((f) => f === fingerprintOf(second)))
  const kept = await get(gw.port, '/open', { agent })
  assert.equal(kept.status, 200)
  assert.equal(kept.fingerprint, fingerprintOf(first), 'the connection opened before still runs on its handshake')
  agent.destroy()
})

test('rotation by symlink swap (cert-manager ..data), and SIGHUP reload; broken files keep the old certificate', async () => {
  const base = join(dir, 'secret')
  mkdirSync(join(base, 'v1'), { recursive: true })
  mkdirSync(join(base, 'v2'))
  mkdirSync(join(base, 'v3'))
  for (const [v, pair] of [
    ['v1', first],
    ['v2', second],
  ] as const) {
    copyFileSync(pair.cert, join(base, v, 'tls.crt'))
    copyFileSync(pair.key, join(base, v, 'tls.key'))
  }
  symlinkSync('v1', join(base, '..data'))
  symlinkSync('..data/tls.crt', join(base, 'tls.crt'))
  symlinkSync('..data/tls.key', join(base, 'tls.key'))
  const config = tlsConfig({ ...first, cert: join(base, 'tls.crt'), key: join(base, 'tls.key') })
  const configFile = join(base, '..', 'gateway-symlink.yaml')
  writeFileSync(configFile, stringify(config))
  const gw = await startTestGateway(config, { configFile })

  const client = keepConnecting(gw.port)
  await waitFor(() => client.seen.length >= 3)
  symlinkSync('v2', join(base, '..data_tmp'))
  renameSync(join(base, '..data_tmp'), join(base, '..data'))
  await waitFor(() => client.seen.at(-1) === fingerprintOf(second))
  await client.stop()
  assert.deepEqual(client.failures, [])

  // a key that does not match: the old pair keeps serving, on a change and on SIGHUP alike
  copyFileSync(first.cert, join(base, 'v3', 'tls.crt'))
  copyFileSync(second.key, join(base, 'v3', 'tls.key'))
  symlinkSync('v3', join(base, '..data_tmp'))
  renameSync(join(base, '..data_tmp'), join(base, '..data'))
  await sleep(400)
  assert.equal(await gw.reload(), true, 'the rest of the config reloads')
  assert.equal((await get(gw.port, '/x')).fingerprint, fingerprintOf(second))
  assert.ok(gw.logs.some((l) => /TLS certificate not reloaded/.test(l)))

  // SIGHUP alone (no file event: the watch is told nothing when only the config names other files)
  const moved = join(dir, 'moved')
  mkdirSync(moved)
  copyFileSync(first.cert, join(moved, 'a.crt'))
  copyFileSync(first.key, join(moved, 'a.key'))
  writeFileSync(configFile, stringify(tlsConfig({ ...first, cert: join(moved, 'a.crt'), key: join(moved, 'a.key') })))
  assert.equal(await gw.reload(), true)
  assert.equal((await get(gw.port, '/x')).fingerprint, fingerprintOf(first))
})
