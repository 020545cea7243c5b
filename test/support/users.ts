import { after } from 'node:test'
import { createHash, createHmac, randomBytes, sign as signWith, type KeyObject } from 'node:crypto'
import { rawRequest, TEST_SECRET, type RawResponse } from '../helpers.js'
import { hashPassword } from '../../src/tokens/password.js'
import { createRedisStore } from '../../src/store/redis.js'

// Shared by the users/tokens and sessions tests: users with cheap scrypt hashes, both stores,
// request helpers over raw sockets, and JWTs built by hand with node:crypto alone (no jose).

export const REDIS_URL = 'redis://127.0.0.1:6379'
export const JWT_SECRET = TEST_SECRET
export const SALT = 'user-token-test-salt-0123456789abcdef0123'
export const PUBLIC_BASE = 'https://wiki.example.org/w/rest.php'
export const VERIFY_KEY = 'verifier-key-0123456789abcdef0123456789abcdef'
export const OTHER_KEY = 'other-key-0123456789abcdef0123456789abcdef0123'
export const ALICE_PW = 'correct horse battery staple'
export const BOB_PW = 'hunter2-but-longer'

// Small scrypt parameters: the tests log in often. (Unknown users still cost the default-cost dummy.)
const CHEAP = { N: 1024, r: 8, p: 1 }

export async function makeUsers() {
  return [
    {
      username: 'alice',
      passwordHash: await hashPassword(ALICE_PW, CHEAP),
      uid: 3,
      name: 'Alice Example',
      email: 'Alice@Example.org',
      groups: ['user', 'editors'],
      flags: 5,
    },
    {
      username: 'bob',
      passwordHash: await hashPassword(BOB_PW, CHEAP),
      uid: 4,
      name: 'Bob Admin',
      email: 'bob@example.org',
      groups: ['user', 'sysop'],
      role: 'bureaucrat',
    },
  ]
}

export type StoreKind = 'memory' | 'redis'
export const STORE_KINDS: readonly StoreKind[] = ['memory', 'redis']

/** One prefix per test file run; every Redis gateway gets its own sub-prefix under it. */
export function redisPrefixes(file: string) {
  const base = `kgtest:${process.pid}:${randomBytes(4).toString('hex')}:${file}:`
  after(async () => {
    const s = createRedisStore({ redis: REDIS_URL, prefix: base })
    try {
      await Promise.all((await s.keys('')).map((k) => s.del(k)))
    } finally {
      await s.close()
    }
  })
  return {
    base,
    /** the `store` config for a fresh gateway of this kind (a new Redis prefix each time) */
    store(kind: StoreKind, shared?: string): Record<string, unknown> {
      return kind === 'redis'
        ? { store: { redis: REDIS_URL, prefix: `${base}${shared ?? randomBytes(4).toString('hex')}:` } }
        : {}
    },
  }
}

export const md5 = (text: string) => createHash('md5').update(text).digest('hex')

export function send(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string | Buffer; localAddress?: string } = {},
): Promise<RawResponse> {
  const body =
    opts.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body)
  const headers = { ...(opts.headers ?? {}) }
  const hasBody = opts.body !== undefined || method === 'POST' || method === 'DELETE'
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: gw.test\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}` + `${hasBody ? `Content-Length: ${body.length}\r\n` : ''}Connection: close\r\n\r\n`
  return rawRequest(
    port,
    Buffer.concat([Buffer.from(head, 'latin1'), body]),
    opts.localAddress ? { localAddress: opts.localAddress } : {},
  )
}

export const postJson = (
  port: number,
  path: string,
  value: unknown,
  headers: Record<string, string> = {},
  localAddress?: string,
) =>
  send(port, 'POST', path, {
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(value),
    ...(localAddress ? { localAddress } : {}),
  })

export const postForm = (
  port: number,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) =>
  send(port, 'POST', path, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  })

export function postMultipart(
  port: number,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const boundary = `----kgtest${randomBytes(6).toString('hex')}`
  const body =
    Object.entries(fields)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('') + `--${boundary}--\r\n`
  return send(port, 'POST', path, {
    headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, ...headers },
    body,
  })
}

/** POST /api/authorize as JSON; asserts nothing. */
export const login = (
  port: number,
  fields: Record<string, unknown>,
  headers: Record<string, string> = {},
  localAddress?: string,
) => postJson(port, '/api/authorize', fields, headers, localAddress)

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// ---- JWTs by hand: node:crypto only ----

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

export function decodeJwtPart(token: string, part: 0 | 1): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[part]!, 'base64url').toString('utf8'))
}

export const nowSec = () => Math.floor(Date.now() / 1000)

/** The claims keygate's own tokens carry, for alice; override any of them. */
export function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSec()
  return {
    iss: 'keygate',
    sub: 'alice',
    jti: randomBytes(16).toString('hex'),
    iat: now,
    exp: now + 600,
    type: 'access',
    uid: 3,
    groups: ['user', 'editors'],
    ...over,
  }
}

export function hs256(
  payload: Record<string, unknown>,
  secret: string | Buffer = JWT_SECRET,
  header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' },
): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

export function rs256(
  payload: Record<string, unknown>,
  privateKey: KeyObject | string,
  header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' },
): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${signWith('sha256', Buffer.from(input), privateKey).toString('base64url')}`
}

export function unsigned(payload: Record<string, unknown>): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`
}

/** Log lines are written as the response finishes; wait until a line matching `re` has been written. */
export async function waitForLog(logs: string[], re: RegExp, timeoutMs = 1000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (logs.some((l) => re.test(l))) return true
    await sleep(10)
  }
  return false
}
