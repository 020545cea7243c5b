import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { parse, parseAllDocuments } from 'yaml'
import { parseConfigText } from '../src/config/load.js'
import type { GatewayConfig } from '../src/config/schema.js'

// The deployment files are parsed and checked against each other and against the config loader:
// ports, probe paths, the forward-auth path and the identity headers must agree everywhere.

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const exists = (path: string) => existsSync(new URL(`../${path}`, import.meta.url))
type Doc = Record<string, any>

function loadGateway(text: string, file: string, env: NodeJS.ProcessEnv = {}): GatewayConfig {
  const r = parseConfigText(text, file, env)
  assert.ok(r.ok, `${file} does not load: ${r.ok ? '' : r.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`)
  return r.config
}

// The repository's own gateway.yaml is the reference: its listen port and forward-auth path.
const reference = loadGateway(read('gateway.yaml'), 'gateway.yaml')
const PORT = reference.listen.port
const AUTH_PATH = reference.forwardAuth.path
const ids = reference.identityHeaders
const IDENTITY = [ids.user, ids.userId, ids.email, ids.groups, ids.scheme]
const lower = (list: readonly string[]) => list.map((s) => s.toLowerCase()).sort()

// The Secret example gives the env the ConfigMaps' ${VARS} need.
const secretDocs = parseAllDocuments(read('deploy/k8s/secret.example.yaml')).map((d) => d.toJS() as Doc)
const secret = secretDocs.find((d) => d.kind === 'Secret')!
const secretEnv: Record<string, string> = secret.stringData

test('the reference values the other files are checked against', () => {
  assert.equal(PORT, 8080)
  assert.equal(AUTH_PATH, '/_keygate/auth')
  assert.deepEqual(IDENTITY, ['X-Auth-User', 'X-Auth-User-Id', 'X-Auth-Email', 'X-Auth-Groups', 'X-Auth-Scheme'])
})

test('Dockerfile: multi-stage on node:20-slim, npm ci, build, dev deps pruned, non-root, health check on /_keygate/health', () => {
  const text = read('Dockerfile')
  const lines = text.split('\n').map((l) => l.trim())
  const froms = lines.filter((l) => /^FROM /i.test(l))
  assert.ok(froms.length >= 2, `multi-stage: ${froms.join(' | ')}`)
  assert.ok(
    froms.every((f) => /^FROM node:20-slim\b/.test(f)),
    `node:20-slim everywhere: ${froms.join(' | ')}`,
  )
  assert.match(text, /^RUN npm ci\b/m, 'npm ci')
  assert.match(text, /npm run build/, 'build')
  assert.match(text, /npm prune --omit=dev/, 'dev dependencies pruned')
  // the last stage copies from the build stage and runs as a non-root user
  const finalStage = text.slice(text.lastIndexOf('\nFROM '))
  assert.match(finalStage, /COPY --from=build \/app\/node_modules/, 'pruned node_modules from the build stage')
  const user = /^USER (\S+)/m.exec(finalStage)?.[1]
  assert.ok(user && user !== 'root' && user !== '0', `non-root USER: ${user}`)
  const health = /HEALTHCHECK[\s\S]*?CMD (\[.*\])/.exec(text)
  assert.ok(health, 'a HEALTHCHECK')
  const cmd = JSON.parse(health[1]!) as string[]
  assert.deepEqual(cmd.slice(0, 2), ['node', '-e'], 'node -e, no curl in the image')
  assert.match(cmd[2]!, new RegExp(`fetch\\('http://127\\.0\\.0\\.1:${PORT}/_keygate/health'\\)`), cmd[2])
  assert.match(finalStage, new RegExp(`^EXPOSE ${PORT}$`, 'm'), 'EXPOSE the listen port')
  const listen = /KEYGATE_LISTEN=(\S+)/.exec(finalStage)?.[1]
  assert.equal(listen, `0.0.0.0:${PORT}`, 'the image listens on all interfaces, on the same port')
  // the image's default config is the repository's gateway.yaml, read with the image's env
  assert.match(finalStage, /^COPY gateway\.yaml \.\/$/m, 'gateway.yaml in the image')
  const inImage = loadGateway(read('gateway.yaml'), 'gateway.yaml', { KEYGATE_LISTEN: listen })
  assert.deepEqual(inImage.listen, { host: '0.0.0.0', port: PORT })
  // every file the build copies exists
  for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(/\s+/)) assert.ok(exists(src), `COPY source ${src} exists`)
  }
})

test('.dockerignore keeps node_modules, dist, .git and tests out of the build context, but not what COPY needs', () => {
  const ignored = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  for (const p of ['node_modules', 'dist', '.git', 'test']) assert.ok(ignored.includes(p), `${p} ignored`)
  for (const p of [
    'src',
    'package.json',
    'package-lock.json',
    'gateway.yaml',
    'tsconfig.json',
    'tsconfig.build.json',
  ]) {
    assert.ok(!ignored.includes(p), `${p} must reach the build`)
  }
})

test('docker-compose.yml: keygate + Redis + MediaWiki, secrets from the environment, ports and paths agree', () => {
  const compose = parse(read('docker-compose.yml')) as Doc
  const { keygate, redis, wiki } = compose.services
  assert.ok(keygate && redis && wiki, 'three services')
  assert.match(wiki.image, /^mediawiki:/, 'the MediaWiki image')
  assert.match(redis.image, /^redis:/, 'Redis')
  assert.equal(wiki.ports, undefined, 'the wiki is not published: only through keygate')
  assert.equal(redis.ports, undefined, 'Redis is not published')
  for (const name of ['KEYGATE_SALT', 'KEYGATE_SIGNING_KEY', 'CHATBOT_KEY']) {
    assert.match(
      String(keygate.environment[name]),
      new RegExp(`^\\$\\{${name}:\\?`),
      `${name} comes from the environment and is required`,
    )
  }
  assert.equal(keygate.environment.REDIS_URL, 'redis://redis:6379')
  // the mounted config is the one keygate is told to serve, and it loads
  const [mount] = keygate.volumes as string[]
  const [hostPath, containerPath] = mount!.split(':')
  assert.deepEqual(keygate.command, ['serve', '--config', containerPath])
  const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString()
  const env = { ...secretEnv, REDIS_URL: keygate.environment.REDIS_URL, KEYGATE_SIGNING_KEY: signingKey }
  const config = loadGateway(read(hostPath!.replace(/^\.\//, '')), hostPath!, env)
  assert.equal(config.upstream, 'http://wiki:80', 'upstream is the wiki service')
  assert.equal(config.store.redis, 'redis://redis:6379')
  assert.deepEqual(keygate.ports, [`${config.listen.port}:${config.listen.port}`], 'published port = listen port')
  assert.equal(config.listen.host, '0.0.0.0')
  assert.ok(config.identityFromUpstream, 'identityFromUpstream for wiki logins')
  // the wiki runs the shipped KeygateAuth extension, configured for keygate's assertion and keys
  assert.equal(config.identityAssertion?.audience, 'wiki')
  assert.equal(config.secrets.jwt.keys?.[0]?.alg, 'ES256', 'a key pair: the wiki gets only the public half')
  const volumes = wiki.volumes as string[]
  assert.ok(volumes.includes('./integrations/mediawiki/KeygateAuth:/var/www/html/extensions/KeygateAuth:ro'))
  const setup = volumes.find((v) => v.endsWith(':/usr/local/bin/keygate-wiki-setup:ro'))!
  assert.deepEqual(wiki.entrypoint, ['sh', '/usr/local/bin/keygate-wiki-setup'])
  const script = read(setup.split(':')[0]!.replace(/^\.\//, ''))
  assert.match(script, /wfLoadExtension\( 'KeygateAuth' \);/)
  assert.match(
    script,
    new RegExp(`\\$wgKeygateAuthJwksUrl = 'http://keygate:${config.listen.port}/\\.well-known/jwks\\.json';`),
  )
  assert.match(script, new RegExp(`\\$wgKeygateAuthAudience = '${config.identityAssertion.audience}';`))
  assert.match(script, new RegExp(`\\$wgKeygateAuthServiceUser = '${config.serviceUser.name}';`))
  assert.ok(exists('integrations/mediawiki/KeygateAuth/extension.json'))
})

/** redis-server arguments as option → value ("--appendonly yes" → appendonly: yes). */
function redisOptions(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (let i = 0; i < args.length; i++)
    if (args[i]!.startsWith('--')) out.set(args[i]!.slice(2), args[i + 1]!.startsWith('--') ? '' : args[++i]!)
  return out
}

/** What keygate needs of Redis (issue 12, item 6): an fsynced append-only file on storage that outlives the server. */
function assertRedisPersists(file: string, args: readonly string[]): void {
  const o = redisOptions(args)
  assert.equal(o.get('appendonly'), 'yes', `${file}: appendonly yes (${args.join(' ')})`)
  assert.ok(['everysec', 'always'].includes(o.get('appendfsync') ?? ''), `${file}: appendfsync everysec or always`)
  const dir = o.get('dir') ?? '/data'
  assert.equal(dir, '/data', `${file}: the data directory is the mounted volume`)
}

test('Redis persists in the shipped files: compose and deploy/k8s/redis.yaml keep an fsynced AOF on a volume', () => {
  const compose = parse(read('docker-compose.yml')) as Doc
  const { redis, keygate } = compose.services
  const command = redis.command as string[]
  assert.equal(command[0], 'redis-server')
  assertRedisPersists('docker-compose.yml', command.slice(1))
  const data = (redis.volumes as string[]).map((v) => v.split(':')).find(([, path]) => path === '/data')
  assert.ok(data, 'docker-compose.yml: /data is a volume')
  assert.ok(
    data[0]! in (compose.volumes ?? {}),
    `docker-compose.yml: ${data[0]} is a named volume, not the container's own layer`,
  )

  const docs = k8s('deploy/k8s/redis.yaml')
  const set = docs.find((d) => d.kind === 'StatefulSet')
  assert.ok(set, 'deploy/k8s/redis.yaml: a StatefulSet')
  const [c] = set.spec.template.spec.containers as Doc[]
  assertRedisPersists('deploy/k8s/redis.yaml', c!.args as string[])
  const mount = (c!.volumeMounts as Doc[]).find((m) => m.mountPath === '/data')
  assert.ok(mount, 'deploy/k8s/redis.yaml: /data is mounted')
  assert.ok(
    (set.spec.volumeClaimTemplates as Doc[]).some((t) => t.metadata.name === mount.name),
    'deploy/k8s/redis.yaml: /data is a PersistentVolumeClaim (not emptyDir)',
  )
  // the Service is what every keygate's REDIS_URL names
  const service = docs.find((d) => d.kind === 'Service')
  const url = new URL(secretEnv.REDIS_URL!)
  assert.equal(service?.metadata.name, url.hostname, 'the Service is the host of REDIS_URL')
  assert.equal(service.spec.ports[0].port, Number(url.port), 'and its port')
  assert.equal(keygate.environment.REDIS_URL, secretEnv.REDIS_URL, 'compose and k8s name Redis alike')
})

function k8s(path: string): Doc[] {
  const docs = parseAllDocuments(read(path))
  for (const d of docs) assert.deepEqual(d.errors, [], `${path}: YAML errors`)
  return docs.map((d) => d.toJS() as Doc).filter(Boolean)
}

/** The gateway.yaml a keygate container serves: its ConfigMap, mounted where --config points. */
function servedConfig(docs: Doc[], pod: Doc, container: Doc, file: string): GatewayConfig {
  const configArg = container.args[container.args.indexOf('--config') + 1] as string
  const mount = (container.volumeMounts as Doc[]).find((m) => configArg.startsWith(`${m.mountPath}/`))
  assert.ok(mount, `${file}: --config ${configArg} is inside a mounted volume`)
  const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name)
  assert.ok(volume?.configMap, `${file}: the volume ${mount.name} is a ConfigMap`)
  const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === volume.configMap.name)
  assert.ok(cm, `${file}: ConfigMap ${volume.configMap.name} is in the file`)
  const key = configArg.slice(mount.mountPath.length + 1)
  assert.ok(typeof cm.data[key] === 'string', `${file}: ConfigMap key ${key}`)
  // the env the container gets: its Secret's keys
  for (const ref of container.envFrom as Doc[])
    assert.equal(ref.secretRef?.name, secret.metadata.name, `${file}: secrets from the Secret ${secret.metadata.name}`)
  return loadGateway(cm.data[key], `${file}#${cm.metadata.name}/${key}`, secretEnv)
}

function checkKeygateContainer(file: string, c: Doc, config: GatewayConfig): void {
  const http = (c.ports as Doc[]).find((p) => p.name === 'http')
  assert.equal(http?.containerPort, config.listen.port, `${file}: containerPort = listen port`)
  assert.equal(config.listen.host, '0.0.0.0', `${file}: listens beyond the Pod's loopback`)
  assert.equal(c.readinessProbe?.httpGet?.path, '/_keygate/ready', `${file}: readiness`)
  assert.equal(c.livenessProbe?.httpGet?.path, '/_keygate/health', `${file}: liveness`)
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    assert.ok(
      probe.httpGet.port === 'http' || probe.httpGet.port === config.listen.port,
      `${file}: probe port ${probe.httpGet.port}`,
    )
  }
  assert.equal(c.securityContext?.runAsNonRoot, true, `${file}: non-root`)
  assert.ok(config.store.redis, `${file}: replicas share a Redis store`)
}

test('deploy/k8s/sidecar.yaml: keygate in front of the app on localhost, probes, ConfigMap and Secret agree', () => {
  const file = 'deploy/k8s/sidecar.yaml'
  const docs = k8s(file)
  const deployment = docs.find((d) => d.kind === 'Deployment')!
  const pod = deployment.spec.template.spec
  const keygate = (pod.containers as Doc[]).find((c) => c.name === 'keygate')!
  const app = (pod.containers as Doc[]).find((c) => c.name !== 'keygate')
  assert.ok(keygate && app, 'two containers: keygate and the app')
  const config = servedConfig(docs, pod, keygate, file)
  checkKeygateContainer(file, keygate, config)
  const upstream = new URL(config.upstream)
  assert.equal(upstream.hostname, '127.0.0.1', "the app is reached on the Pod's localhost")
  assert.equal(
    Number(upstream.port || 80),
    (app.ports as Doc[])[0]!.containerPort,
    "upstream port = the app container's port",
  )
  // the Service reaches keygate only, never the app's port
  const service = docs.find((d) => d.kind === 'Service')!
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels, 'the Service selects the Pods')
  for (const p of service.spec.ports as Doc[])
    assert.ok(
      p.targetPort === 'http' || p.targetPort === config.listen.port,
      `Service targets keygate: ${p.targetPort}`,
    )
})

test('deploy/k8s/forward-auth.yaml: keygate Deployment + Service, and an Ingress whose auth-url is forwardAuth.path', () => {
  const file = 'deploy/k8s/forward-auth.yaml'
  const docs = k8s(file)
  const deployment = docs.find((d) => d.kind === 'Deployment')!
  const pod = deployment.spec.template.spec
  const keygate = (pod.containers as Doc[]).find((c) => c.name === 'keygate')!
  const config = servedConfig(docs, pod, keygate, file)
  checkKeygateContainer(file, keygate, config)
  assert.ok(config.trustedProxies.length > 0, 'the ingress controller is a trusted proxy')

  const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'keygate')!
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels)
  const servicePort = (service.spec.ports as Doc[])[0]!
  assert.ok(servicePort.targetPort === 'http' || servicePort.targetPort === config.listen.port, 'Service → keygate')

  const ingress = docs.find(
    (d) => d.kind === 'Ingress' && d.metadata.annotations?.['nginx.ingress.kubernetes.io/auth-url'],
  )!
  const authUrl = new URL(ingress.metadata.annotations['nginx.ingress.kubernetes.io/auth-url'])
  assert.equal(authUrl.pathname, config.forwardAuth.path, 'auth-url path = forwardAuth.path')
  assert.equal(authUrl.hostname.split('.')[0], service.metadata.name, 'auth-url host is the keygate Service')
  assert.equal(Number(authUrl.port), servicePort.port, 'auth-url port = the Service port')
  const copied = String(ingress.metadata.annotations['nginx.ingress.kubernetes.io/auth-response-headers'])
    .split(',')
    .map((s) => s.trim())
  const h = config.identityHeaders
  assert.deepEqual(
    lower(copied),
    lower([h.user, h.userId, h.email, h.groups, h.scheme]),
    'every identity header is copied',
  )
  // the app behind the Ingress is the Service keygate itself talks to
  const backend = ingress.spec.rules[0].http.paths[0].backend.service
  const upstream = new URL(config.upstream)
  assert.equal(upstream.hostname.split('.')[0], backend.name, "keygate's upstream is the Ingress backend")
  assert.equal(Number(upstream.port || 80), backend.port.number)
})

test('examples/traefik: forwardAuth asks forwardAuth.path, passes only credentials, copies and strips the identity headers', () => {
  const dynamic = parse(read('examples/traefik/dynamic.yml')) as Doc
  const staticConf = parse(read('examples/traefik/traefik.yml')) as Doc
  const fa = dynamic.http.middlewares.keygate.forwardAuth
  const address = new URL(fa.address)
  assert.equal(address.pathname, AUTH_PATH)
  assert.equal(Number(address.port), PORT)
  assert.equal(fa.trustForwardHeader, false, 'Traefik sets X-Forwarded-* itself')
  assert.deepEqual(lower(fa.authRequestHeaders), ['authorization', 'cookie'], 'no client X-Original-* reaches keygate')
  assert.deepEqual(lower(fa.authResponseHeaders), lower(IDENTITY))
  // Traefik removes every request header matching the regex before copying: all spellings
  const re = new RegExp(String(fa.authResponseHeadersRegex).replace(/^\(\?i\)/, ''), 'i')
  for (const name of [
    ...IDENTITY,
    'X-Auth_User',
    'x_auth_user',
    'X_AUTH-GROUPS',
    'X-Auth.User',
    'x.auth.email',
    'X_Auth.Groups',
  ])
    assert.match(name, re, `${name} is stripped`)
  assert.doesNotMatch('Authorization', re, 'the regex is narrow')
  const router = dynamic.http.routers.wiki
  assert.deepEqual(router.middlewares, ['keygate'])
  assert.ok(staticConf.entryPoints[router.entryPoints[0]], "the router's entry point exists")
  const keygateService = dynamic.http.services.keygate.loadBalancer.servers[0].url
  assert.equal(new URL(keygateService).port, String(PORT))
})

/** Which paths a Traefik rule made of Path(`…`) and PathPrefix(`…`) joined by || matches. */
function traefikPathRule(rule: string): (path: string) => boolean {
  const parts = rule.split('||').map((p) => /^\s*(Path|PathPrefix)\(`([^`]+)`\)\s*$/.exec(p))
  assert.ok(
    parts.every((m) => m !== null),
    `only Path and PathPrefix joined by ||: ${rule}`,
  )
  return (path) => parts.some((m) => (m[1] === 'Path' ? path === m[2] : path.startsWith(m[2]!)))
}

test('examples/traefik: the sign-in page, sign-out and the callbacks reach keygate without forwardAuth', () => {
  const dynamic = parse(read('examples/traefik/dynamic.yml')) as Doc
  const routers: Doc[] = Object.values(dynamic.http.routers)
  const signIn = routers.filter((r) => r.service === 'keygate' && traefikPathRule(r.rule)('/_keygate/sign-in'))
  assert.equal(signIn.length, 1, 'one router sends the sign-in page to keygate')
  const router = signIn[0]!
  assert.equal(router.middlewares, undefined, 'no forwardAuth in front of the sign-in page (it would loop)')
  assert.ok(router.priority > 0, 'above the catch-all wiki router')
  const matches = traefikPathRule(router.rule)
  for (const path of ['/_keygate/sign-in', '/_keygate/sign-out', '/_keygate/oauth2/callback/corp'])
    assert.ok(matches(path), `${path} goes to keygate`)
  for (const path of [
    '/',
    '/wiki/Main_Page',
    AUTH_PATH,
    '/_keygate/metrics',
    '/_keygate/sign-in-x',
    '/_keygate/oauth2',
  ])
    assert.ok(!matches(path), `${path} is not one of keygate's pages`)
})

test('examples/envoy: ext_authz HTTP with path_prefix = forwardAuth.path, identity headers stripped first and copied after', () => {
  const envoy = parse(read('examples/envoy/envoy.yaml')) as Doc
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
  assert.equal(
    hcm.common_http_protocol_options.headers_with_underscores_action,
    'REJECT_REQUEST',
    'X-Auth_User cannot sneak in',
  )
  const filters = hcm.http_filters as Doc[]
  const names = filters.map((f) => f.name)
  const mutation = names.indexOf('envoy.filters.http.header_mutation')
  const authz = names.indexOf('envoy.filters.http.ext_authz')
  assert.ok(mutation !== -1 && authz !== -1 && mutation < authz, `strip, then ask: ${names.join(', ')}`)
  assert.equal(names.at(-1), 'envoy.filters.http.router')
  const removed = (filters[mutation]!.typed_config.mutations.request_mutations as Doc[]).map((m) => m.remove)
  assert.deepEqual(lower(removed), lower(IDENTITY), 'every client identity header removed')
  const ext = filters[authz]!.typed_config
  assert.equal(ext.failure_mode_allow, false, 'fail closed')
  assert.equal(ext.http_service.path_prefix, AUTH_PATH)
  const sent = (ext.allowed_headers.patterns as Doc[]).map((p) => p.exact)
  assert.ok(sent.includes('authorization') && sent.includes('cookie'), `credentials go to keygate: ${sent.join(', ')}`)
  assert.ok(
    !sent.some((h: string) => /^x-(original|forwarded)-(uri|method)$/.test(h)),
    'no client X-Original-*/X-Forwarded-Uri',
  )
  const upstreamHeaders = (ext.http_service.authorization_response.allowed_upstream_headers.patterns as Doc[]).map(
    (p) => p.exact,
  )
  assert.deepEqual(lower(upstreamHeaders), lower(IDENTITY))
  const clientHeaders = (ext.http_service.authorization_response.allowed_client_headers.patterns as Doc[]).map(
    (p) => p.exact,
  )
  assert.ok(clientHeaders.includes('www-authenticate'), 'a 401 keeps its challenge')
  const clusterName = ext.http_service.server_uri.cluster
  const cluster = (envoy.static_resources.clusters as Doc[]).find((c) => c.name === clusterName)
  assert.ok(cluster, `cluster ${clusterName}`)
  const port = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value
  assert.equal(port, PORT)
  assert.equal(new URL(ext.http_service.server_uri.uri).port, String(PORT))
})

test('examples/nginx and examples/caddy ask forwardAuth.path and copy every identity header', () => {
  const nginx = read('examples/nginx/keygate.conf.template')
  assert.match(nginx, new RegExp(`proxy_pass http://keygate_auth${AUTH_PATH.replace(/\//g, '\\/')};`))
  for (const h of IDENTITY) {
    const v = `$upstream_http_${h.toLowerCase().replace(/-/g, '_')}`
    assert.ok(nginx.includes(v), `auth_request_set from ${v}`)
    assert.match(nginx, new RegExp(`proxy_set_header ${h} \\$auth_`), `${h} set for the app`)
  }
  const caddy = read('examples/caddy/Caddyfile')
  assert.match(caddy, new RegExp(`^\\s*uri ${AUTH_PATH.replace(/\//g, '\\/')}$`, 'm'))
  assert.match(caddy, new RegExp(`copy_headers ${IDENTITY.join(' ')}`))
  assert.match(
    caddy,
    new RegExp(`\\{\\$KEYGATE_ADDR:127\\.0\\.0\\.1:${PORT}\\}`),
    'default keygate address on the listen port',
  )
})

test("the README's Deploy section quotes the tested files verbatim", () => {
  const readme = read('README.md')
  const text = readme.slice(readme.indexOf('## Deploy'), readme.indexOf('## Operations'))
  const blocks = [...text.matchAll(/^```[a-z]*\s+file=(\S+)\n([\s\S]*?)^```$/gm)]
  assert.ok(blocks.length >= 6, `snippets that name their file: ${blocks.length}`)
  const files = new Set<string>()
  for (const [, file, body] of blocks) {
    files.add(file!)
    assert.ok(exists(file!), `${file} exists`)
    assert.ok(read(file!).includes(body!), `the snippet from ${file} is a verbatim part of it:\n${body}`)
  }
  for (const f of [
    'examples/nginx/keygate.conf.template',
    'examples/caddy/Caddyfile',
    'examples/traefik/dynamic.yml',
    'examples/envoy/envoy.yaml',
    'deploy/k8s/sidecar.yaml',
    'deploy/k8s/forward-auth.yaml',
    'docker-compose.yml',
  ]) {
    assert.ok(files.has(f), `the Deploy section quotes ${f}`)
  }
})
