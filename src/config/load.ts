import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseDocument } from 'yaml'
import type { ZodIssue, ZodType, ZodTypeDef } from 'zod'
import { canonicalHeaderName } from '../util/header-names.js'
import { reservedNameProblem, templateProblem } from '../identity/mapping.js'
import { GatewaySchema, UsersFileSchema, usernamePrefixOf, type GatewayConfig, type UserConfig } from './schema.js'

export interface ConfigProblem {
  file: string
  path: string
  message: string
}

export type LoadResult = { ok: true; config: GatewayConfig; file: string; source: string } | Problems

export const formatProblem = (p: ConfigProblem): string => `${p.file}: ${p.path || '(top)'}: ${p.message}`

/** A refused config for people: how many problems, then each on its own line. */
export const describeProblems = (problems: readonly ConfigProblem[]): string =>
  `invalid configuration: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` +
  problems.map((p) => `  ${formatProblem(p)}`).join('\n')

/** The config file of a command: --config, else $KEYGATE_CONFIG, else ./gateway.yaml. */
export const configFileFrom = (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string =>
  flag ?? env.KEYGATE_CONFIG ?? 'gateway.yaml'

const KEY_HASH = /^sha256:[0-9a-f]{64}$/
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/** Reads, interpolates and validates a config file; every problem is reported, each with its key path. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const read = readText(file, 'cannot read the file')
  if (!read.ok) return read
  const result = parseConfigText(read.source, file, env)
  return result.ok ? { ...result, file, source: read.source } : result
}

export function parseConfigText(
  source: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): { ok: true; config: GatewayConfig } | Problems {
  const parsed = parseYaml(source, file, GatewaySchema, env)
  if (!parsed.ok) return parsed
  const config = parsed.data
  const problems: ConfigProblem[] = []
  if (config.usersFile) {
    const users = loadUsersFile(resolve(dirname(file), config.usersFile), env)
    if (users.ok) config.users = [...config.users, ...users.users]
    else problems.push(...users.problems)
  }
  problems.push(...semanticProblems(file, config))
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config }
}

function loadUsersFile(file: string, env: NodeJS.ProcessEnv): { ok: true; users: UserConfig[] } | Problems {
  const read = readText(file, 'cannot read usersFile')
  if (!read.ok) return read
  const parsed = parseYaml(read.source, file, UsersFileSchema, env)
  return parsed.ok ? { ok: true, users: parsed.data.users } : parsed
}

type Problems = { ok: false; problems: ConfigProblem[] }

function readText(file: string, cannot: string): { ok: true; source: string } | Problems {
  try {
    return { ok: true, source: readFileSync(file, 'utf8') }
  } catch (err) {
    const message = `${cannot}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
    return { ok: false, problems: [{ file, path: '', message }] }
  }
}

/** YAML with unique keys, `${VAR}` interpolated, checked against the schema: every problem, each with its key path. */
function parseYaml<T>(
  source: string,
  file: string,
  schema: ZodType<T, ZodTypeDef, unknown>,
  env: NodeJS.ProcessEnv,
): { ok: true; data: T } | Problems {
  const doc = parseDocument(source, { uniqueKeys: true })
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ file, path: '', message: `YAML: ${e.message.split('\n')[0]}` })),
    }
  }
  const problems: ConfigProblem[] = []
  const raw = interpolate(doc.toJS() ?? {}, [], env, (path, message) => problems.push({ file, path, message }))
  const parsed = schema.safeParse(raw)
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((i) => toProblems(file, i)))
  return problems.length > 0 || !parsed.success ? { ok: false, problems } : { ok: true, data: parsed.data }
}

/** `${VAR}` / `${VAR:-default}` in string values only, so a value can never change the YAML's structure. */
function interpolate(
  value: unknown,
  path: (string | number)[],
  env: NodeJS.ProcessEnv,
  report: (path: string, message: string) => void,
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      report(path.join('.'), `environment variable ${name} is not set`)
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, i], env, report))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, [...path, k], env, report)]))
  }
  return value
}

// zod reports an unknown key on its parent object, with the names in `keys`: put them into the path.
function toProblems(file: string, issue: ZodIssue): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ file, path: [...issue.path, k].join('.'), message: 'unknown key' }))
  }
  if (issue.code === 'invalid_union') {
    // Report the branch that got furthest, rather than "Invalid input".
    const deepest = issue.unionErrors.flatMap((e) => e.issues).sort((a, b) => b.path.length - a.path.length)[0]
    if (deepest && deepest.path.length > issue.path.length) return toProblems(file, deepest)
  }
  const message =
    issue.code === 'invalid_type' && issue.received === 'undefined'
      ? `required (expected ${issue.expected})`
      : issue.message
  return [{ file, path: issue.path.join('.'), message }]
}

/** Rules a schema cannot express. */
function semanticProblems(file: string, c: GatewayConfig): ConfigProblem[] {
  const out: ConfigProblem[] = []
  const add = (path: string, message: string) => out.push({ file, path, message })
  const jwt = c.secrets.jwt
  if (jwt.alg === 'HS256' && (jwt.privateKey || jwt.publicKey))
    add('secrets.jwt', 'HS256 takes `secret`, not privateKey/publicKey')
  if (jwt.alg !== 'HS256' && jwt.secret)
    add('secrets.jwt.secret', `${jwt.alg} takes privateKey (and optionally publicKey), not a shared secret`)
  if (jwt.alg !== 'HS256' && !jwt.privateKey && !jwt.keys) add('secrets.jwt.privateKey', `required for ${jwt.alg}`)
  if (jwt.keys) {
    if (jwt.secret || jwt.privateKey || jwt.publicKey)
      add('secrets.jwt', '`keys` replaces secret / privateKey / publicKey: give every key as an entry of `keys`')
    const kids = new Set<string>()
    jwt.keys.forEach((k, i) => {
      const at = `secrets.jwt.keys.${i}`
      if (kids.has(k.kid)) add(`${at}.kid`, `duplicate kid "${k.kid}"`)
      kids.add(k.kid)
      if (k.alg === 'HS256' && (k.privateKey || k.publicKey)) add(at, 'HS256 takes `secret`, not privateKey/publicKey')
      if (k.alg === 'HS256' && !k.secret) add(`${at}.secret`, 'required for HS256')
      if (k.alg !== 'HS256' && k.secret) add(`${at}.secret`, `${k.alg} takes privateKey or publicKey, not a secret`)
      if (k.alg !== 'HS256' && !k.privateKey && !k.publicKey) add(at, `${k.alg} needs privateKey or publicKey`)
    })
    if (jwt.keys[0]!.alg !== 'HS256' && !jwt.keys[0]!.privateKey)
      add('secrets.jwt.keys.0.privateKey', 'the first key signs: it needs its private half')
  }

  const names = new Set<string>()
  c.apiKeys.forEach((k, i) => {
    if (names.has(k.name)) add(`apiKeys.${i}.name`, `duplicate api key name "${k.name}"`)
    names.add(k.name)
    if (!k.key && !k.keyHash) add(`apiKeys.${i}`, 'needs `key` or `keyHash`')
    k.keyHash?.forEach((v, j) => {
      if (!KEY_HASH.test(v))
        add(
          `apiKeys.${i}.keyHash${k.keyHash!.length > 1 ? `.${j}` : ''}`,
          'expected sha256: followed by 64 hex digits (see `keygate hash-key`)',
        )
    })
  })
  // a client shares the `key:<name>` rate-limit bucket and log name space with the api keys
  c.clients.forEach((client, i) => {
    if (names.has(client.name)) add(`clients.${i}.name`, `duplicate name "${client.name}" (api keys and clients)`)
    names.add(client.name)
  })
  if (c.clients.length > 0 && !c.tls?.clientCa) add('tls.clientCa', 'required: `clients` are client certificates')
  if (c.tls && !c.tls.clientCa && c.tls.clientCert === 'required')
    add('tls.clientCa', 'required by clientCert: required')
  const usernames = new Set<string>()
  c.users.forEach((u, i) => {
    if (usernames.has(u.username)) add(`users.${i}.username`, `duplicate username "${u.username}"`)
    usernames.add(u.username)
    const issuer = c.issuers.find((iss) => usernamePrefixOf(iss) !== '' && u.username.startsWith(usernamePrefixOf(iss)))
    if (issuer)
      add(
        `users.${i}.username`,
        `"${u.username}" starts with the usernamePrefix of issuer ${issuer.issuer}: it could pass for that issuer's users`,
      )
  })
  if (!c.secrets.salt && c.apiKeys.some((k) => k.allow.paths.some((p) => /\/app-token(\/|$)/.test(p) || p === '/'))) {
    add('secrets.salt', 'required: an api key may generate app tokens, which are salted envelopes')
  }
  c.routes.forEach((r, i) => {
    if (r.assertionAudience !== undefined && !c.identityAssertion)
      add(`routes.${i}.assertionAudience`, 'needs identityAssertion (its header and ttl)')
    if (r.anonymous && r.require.groups.length > 0)
      add(`routes.${i}`, '`anonymous: true` cannot be combined with require.groups')
    if (r.anonymous && r.deny) add(`routes.${i}`, '`anonymous` and `deny` exclude each other')
  })
  const h = c.identityHeaders
  const fixed = [h.user, h.userId, h.email, h.groups, h.scheme].map(canonicalHeaderName)
  if (c.identityAssertion && fixed.includes(canonicalHeaderName(c.identityAssertion.header)))
    add('identityAssertion.header', 'is already one of identityHeaders')
  const taken = [...fixed, ...(c.identityAssertion ? [canonicalHeaderName(c.identityAssertion.header)] : [])]
  const checkMappings = (custom: Readonly<Record<string, string>>, at: string) => {
    for (const [name, template] of Object.entries(custom)) {
      const canonical = canonicalHeaderName(name)
      const nameProblem = taken.includes(canonical)
        ? 'is already a fixed identity header or the assertion header'
        : reservedNameProblem(canonical)
      if (nameProblem) add(`${at}.${name}`, nameProblem)
      const problem = templateProblem(template)
      if (problem) add(`${at}.${name}`, problem)
    }
  }
  checkMappings(h.custom, 'identityHeaders.custom')
  c.routes.forEach((r, i) => {
    if (r.identityHeaders) checkMappings(r.identityHeaders.custom, `routes.${i}.identityHeaders.custom`)
  })
  if (c.store.redis === undefined && c.workers !== 1)
    add('workers', 'several workers need a shared store (store.redis); the in-memory store is per process')
  if (c.workers !== 1 && !jwt.secret && !jwt.privateKey && !jwt.keys)
    add('secrets.jwt', 'several workers need a configured JWT key: an ephemeral one would differ in every worker')
  if (c.identityFromUpstream && c.upstream === 'demo' && !/^https?:\/\//.test(c.identityFromUpstream.url))
    add('identityFromUpstream.url', 'a full URL is needed when upstream is demo')
  return out
}
