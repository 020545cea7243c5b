import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync, spawnSync } from 'node:child_process'
import { parseConfigText, loadConfigFile } from '../src/config/load.js'

const SECRET = 'x'.repeat(32)
const broken: Array<{ yaml: string; path: string; message?: RegExp }> = [
  { yaml: 'listen: 8080\nbogus: 1', path: 'bogus', message: /unknown key/ },
  {
    yaml: 'apiKeys: [{name: a, key: "' + SECRET + '", cidr: ["10.0.0.0/33"]}]',
    path: 'apiKeys.0.cidr.0',
    message: /CIDR/,
  },
  { yaml: 'tokens: {userToken: {ttl: soon}}', path: 'tokens.userToken.ttl', message: /duration/ },
  { yaml: 'listen: "localhost"', path: 'listen', message: /host:port/ },
  { yaml: 'listen: 127.0.0.1:99999', path: 'listen', message: /port must be 0-65535/ },
  { yaml: 'listen: "99999"', path: 'listen', message: /port must be 0-65535/ },
  { yaml: 'secrets: {salt: short}', path: 'secrets.salt', message: /32 bytes/ },
  { yaml: 'secrets: {jwt: {secret: short}}', path: 'secrets.jwt.secret', message: /32 bytes/ },
  { yaml: 'secrets: {jwt: {alg: HS512}}', path: 'secrets.jwt.alg' },
  { yaml: 'secrets: {jwt: {alg: RS256}}', path: 'secrets.jwt.privateKey', message: /required/ },
  { yaml: 'apiKeys: [{name: a}]', path: 'apiKeys.0', message: /key/ },
  { yaml: 'apiKeys: [{name: a, keyHash: "md5:abc"}]', path: 'apiKeys.0.keyHash', message: /sha256/ },
  {
    yaml: `apiKeys: [{name: a, key: "${SECRET}"}, {name: a, key: "${SECRET}y"}]`,
    path: 'apiKeys.1.name',
    message: /duplicate/,
  },
  {
    yaml: 'apiKeys: [{name: a, key: "' + SECRET + '", allow: {paths: [/x], modules: [edit]}}]',
    path: 'apiKeys.0.allow.modules',
    message: /unknown key/,
  },
  {
    yaml: 'apiKeys: [{name: a, key: "' + SECRET + '", allow: {actionModules: ["Query Search"]}}]',
    path: 'apiKeys.0.allow.actionModules.0',
  },
  { yaml: 'routes: [{path: admin}]', path: 'routes.0.path', message: /absolute path/ },
  { yaml: 'routes: [{path: /a/, methods: ["GET /"]}]', path: 'routes.0.methods.0' },
  { yaml: 'defaultPolicy: allow', path: 'defaultPolicy' },
  { yaml: 'limits: {maxBodyBytes: lots}', path: 'limits.maxBodyBytes', message: /size/ },
  { yaml: 'upstream: ftp://x', path: 'upstream' },
  { yaml: 'store: {redis: {sentinels: []}}', path: 'store.redis.sentinels' },
  {
    yaml: 'secrets:\n  salt: ${KEYGATE_TEST_UNSET_VAR}',
    path: 'secrets.salt',
    message: /KEYGATE_TEST_UNSET_VAR is not set/,
  },
  {
    yaml: `apiKeys: [{name: a, key: "${SECRET}", allow: {paths: [/mws/v1/app-token/generate]}}]`,
    path: 'secrets.salt',
    message: /app tokens/,
  },
  { yaml: 'workers: 2', path: 'workers', message: /shared store/ },
  {
    yaml: 'issuers: [{issuer: corp, publicKey: x, usernamePrefix: corp-}]\nusers: [{username: corp-admin, passwordHash: "scrypt$x", uid: 1}]',
    path: 'users.0.username',
    message: /usernamePrefix of issuer corp/,
  },
  {
    yaml: 'issuers: [{issuer: "https://idp.test"}]\nusers: [{username: "https://idp.test#admin", passwordHash: "scrypt$x", uid: 1}]',
    path: 'users.0.username',
    message: /usernamePrefix/,
  },
  { yaml: 'issuers: [{issuer: corp, usernamePrefix: "a\\tb"}]', path: 'issuers.0.usernamePrefix' },
  { yaml: 'listen: [', path: '', message: /YAML/ },
]

for (const c of broken) {
  test(`config problem at ${c.path || '(yaml)'}: ${c.yaml.slice(0, 60)}`, () => {
    const r = parseConfigText(c.yaml, 'gw.yaml', {})
    assert.equal(r.ok, false)
    if (r.ok) return
    const hit = r.problems.find((p) => p.path === c.path)
    assert.ok(hit, `no problem at ${c.path}: ${JSON.stringify(r.problems)}`)
    assert.equal(hit.file, 'gw.yaml')
    if (c.message) assert.match(hit.message, c.message)
  })
}

test('${VAR} and ${VAR:-default} interpolate inside values only', () => {
  const r = parseConfigText(
    'upstream: ${UP:-http://127.0.0.1:9}\nsecrets: {salt: "${SALT}"}\ntokenApi: {publicBase: "x: ${COLON}"}',
    'f',
    { SALT: SECRET, COLON: 'a: [b]' },
  )
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems))
  assert.equal(r.config.upstream, 'http://127.0.0.1:9')
  assert.equal(r.config.secrets.salt, SECRET)
  assert.equal(r.config.tokenApi.publicBase, 'x: a: [b]')
})

test('durations and sizes are converted; defaults follow the contract', () => {
  const r = parseConfigText('tokens: {userToken: {ttl: 30s}, session: {ttl: 2h}}\nlimits: {maxBodyBytes: 2MB}', 'f', {})
  assert.ok(r.ok)
  assert.equal(r.config.tokens.userToken.ttl, 30_000)
  assert.equal(r.config.tokens.userToken.singleUse, true)
  assert.equal(r.config.tokens.session.ttl, 7_200_000)
  assert.equal(r.config.tokens.appToken.ttl, 3_600_000)
  assert.equal(r.config.limits.maxBodyBytes, 2 * 1024 * 1024)
  assert.equal(r.config.limits.maxHeaderBytes, 16 * 1024)
  assert.deepEqual(r.config.listen, { host: '0.0.0.0', port: 8080 })
  assert.deepEqual(r.config.tokenApi.mounts, ['/mws/v1', '/w/rest.php/mws/v1'])
})

test('the repository gateway.yaml is valid', () => {
  const r = loadConfigFile('gateway.yaml', {})
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems))
})

test('keygate check-config prints every problem with file and key path, and exits 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-'))
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'bogus: 1\nroutes: [{path: nope}]\nsecrets: {salt: short}\nlisten: 127.0.0.1:99999\n')
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'check-config', '--config', file], {
    encoding: 'utf8',
  })
  assert.equal(r.status, 1)
  assert.match(r.stderr, new RegExp(`${file}: bogus: unknown key`))
  assert.match(r.stderr, new RegExp(`${file}: routes.0.path: `))
  assert.match(r.stderr, /secrets.salt: secret is shorter than 32 bytes/)
  assert.match(r.stderr, new RegExp(`${file}: listen: port must be 0-65535`))
  const ok = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'check-config', '--config', 'gateway.yaml'],
    { encoding: 'utf8' },
  )
  assert.equal(ok.status, 0, ok.stderr)
})

test('check-config warns about forwardAuth.actionPostBodies: queryOnly (valid, exit 0) and not about refuse', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-warn-'))
  const check = (yaml: string) => {
    const file = join(dir, 'gateway.yaml')
    writeFileSync(file, yaml)
    return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'check-config', '--config', file], {
      encoding: 'utf8',
    })
  }
  // with a salt: a gateway without one is warned about too (secrets.salt)
  const salted = 'upstream: demo\nsecrets: {salt: a-salt-of-32-bytes-or-more-0123456789}\n'
  const risky = check(`${salted}forwardAuth: {actionPostBodies: queryOnly}\n`)
  assert.equal(risky.status, 0, risky.stderr)
  assert.match(risky.stdout, /: ok$/m)
  assert.match(risky.stderr, /^warning: .*gateway\.yaml: forwardAuth\.actionPostBodies: queryOnly .*POST body/m)
  const safe = check(`${salted}forwardAuth: {actionPostBodies: refuse}\n`)
  assert.equal(safe.status, 0, safe.stderr)
  assert.equal(safe.stderr, '', 'no warning for refuse')
})

test('hash-key prints sha256: + hex of stdin without its trailing newline', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'hash-key'], {
    input: 'my-key\n',
    encoding: 'utf8',
  })
  const independent = execFileSync('sh', ['-c', 'printf %s my-key | sha256sum'], { encoding: 'utf8' }).split(' ')[0]
  assert.equal(out.trim(), `sha256:${independent}`)
})

test('usersFile is read relative to the config file, and its problems carry its own file name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-users-'))
  writeFileSync(
    join(dir, 'users.yaml'),
    'users:\n  - {username: ann, uid: 5, passwordHash: "scrypt$1$2$3$4$5", groups: [user]}\n',
  )
  writeFileSync(
    join(dir, 'gateway.yaml'),
    'usersFile: users.yaml\nusers: [{username: bob, uid: 6, passwordHash: "scrypt$1$2$3$4$5"}]\n',
  )
  const ok = loadConfigFile(join(dir, 'gateway.yaml'), {})
  assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.problems))
  assert.deepEqual(
    ok.config.users.map((u) => u.username),
    ['bob', 'ann'],
  )
  writeFileSync(join(dir, 'users.yaml'), 'users:\n  - {username: ann, uid: -1, passwordHash: "md5$x"}\n')
  const bad = loadConfigFile(join(dir, 'gateway.yaml'), {})
  assert.equal(bad.ok, false)
  if (bad.ok) return
  assert.ok(
    bad.problems.some((p) => p.file === join(dir, 'users.yaml') && p.path === 'users.0.uid'),
    JSON.stringify(bad.problems),
  )
  assert.ok(
    bad.problems.some((p) => p.path === 'users.0.passwordHash'),
    JSON.stringify(bad.problems),
  )
})
