import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, waitForHttp } from './net.js'
import { findExecutable, type CpuRole, type ProcessSet, type Proc } from './procs.js'

/**
 * What the upstream answers to every request: a fixed JSON body of about 200 bytes, the size
 * PERF-BASELINE.md was measured with. No `$` (nginx would read a variable) and no `'`.
 */
export const UPSTREAM_BODY = padJson(
  {
    batchcomplete: true,
    query: {
      pages: { 4242: { pageid: 4242, ns: 0, title: 'Main Page', touched: '2024-01-01T00:00:00Z', length: 1234 } },
    },
    user: { id: 3, name: 'Test User' },
  },
  200,
)

function padJson(value: Record<string, unknown>, bytes: number): string {
  const bare = JSON.stringify({ ...value, pad: '' })
  return JSON.stringify({ ...value, pad: 'x'.repeat(Math.max(0, bytes - bare.length)) })
}

export interface Upstream {
  readonly kind: 'nginx' | 'node'
  readonly origin: string
  readonly proc: Proc
  readonly description: string
}

export interface NginxInfo {
  readonly path: string
  readonly version: string
  readonly tempPathDirectives: readonly string[]
}

/**
 * nginx and which temp-path directives its build knows (nginx-light lacks some modules, and an
 * unknown directive is a config error). Each temp path points into our own directory, because
 * the compiled-in /var/lib/nginx is not writable for a non-root user.
 */
export function findNginx(): NginxInfo | null {
  const path = findExecutable('nginx')
  if (!path) return null
  const r = spawnSync(path, ['-V'], { encoding: 'utf8' })
  if (r.error) return null
  const build = `${r.stdout}${r.stderr}`
  const version = build.match(/nginx version: nginx\/(\S+)/)?.[1] ?? '?'
  const known: Array<[flag: string, directive: string]> = [
    ['client-body', 'client_body_temp_path'],
    ['proxy', 'proxy_temp_path'],
    ['fastcgi', 'fastcgi_temp_path'],
    ['uwsgi', 'uwsgi_temp_path'],
    ['scgi', 'scgi_temp_path'],
  ]
  const tempPathDirectives = known
    .filter(([flag]) => build.includes(`--http-${flag}-temp-path`) || flag === 'client-body')
    .map(([, d]) => d)
  return { path, version, tempPathDirectives }
}

function nginxConf(dir: string, name: string, nginx: NginxInfo, http: string): string {
  const temp = join(dir, `${name}-temp`)
  mkdirSync(temp, { recursive: true })
  return `# written by bench/run.ts for one run; removed with its directory
worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
${nginx.tempPathDirectives.map((d) => `  ${d} ${join(temp, d)};`).join('\n')}
  # wrk's 64 connections must stay open for the whole run (the default closes them every 1000 requests)
  keepalive_requests 10000000;
  keepalive_timeout 60s;
${http}
}
`
}

export async function startNginx(
  procs: ProcessSet,
  dir: string,
  name: string,
  nginx: NginxInfo,
  role: 'sut' | 'load',
  http: string,
  port: number,
): Promise<Proc> {
  const conf = join(dir, `${name}.conf`)
  writeFileSync(conf, nginxConf(dir, name, nginx, http))
  const proc = procs.start({
    name,
    role,
    cmd: nginx.path,
    // -e: the error log before the config is read (the compiled-in /var/log/nginx may not be writable)
    args: ['-c', conf, '-p', dir, '-e', join(dir, `${name}-error.log`), '-g', 'daemon off;'],
    logFile: join(dir, `${name}.log`),
  })
  await waitForHttp(`http://127.0.0.1:${port}/`, proc, 10_000)
  return proc
}

/** The fast upstream every case ends at: nginx `return 200`, or a minimal node:http server. */
export async function startUpstream(
  procs: ProcessSet,
  dir: string,
  nginx: NginxInfo | null,
  root: string,
): Promise<Upstream> {
  if (nginx) {
    const port = await freePort()
    const origin = `http://127.0.0.1:${port}`
    const proc = await startNginx(
      procs,
      dir,
      'upstream',
      nginx,
      'load',
      `  server {
    listen 127.0.0.1:${port};
    location / {
      default_type application/json;
      return 200 '${UPSTREAM_BODY}';
    }
  }`,
      port,
    )
    return {
      kind: 'nginx',
      origin,
      proc,
      description: `nginx ${nginx.version} return 200 (${UPSTREAM_BODY.length}-byte JSON) on ${origin}`,
    }
  }
  const { proc, origin } = await startScript(procs, {
    dir,
    root,
    script: 'node-upstream',
    role: 'load',
    args: [UPSTREAM_BODY],
  })
  return {
    kind: 'node',
    origin,
    proc,
    description: `node:http fallback (nginx not installed: apt-get install -y nginx) answering ${UPSTREAM_BODY.length}-byte JSON on ${origin}; it is slower than nginx, so (1) is a lower ceiling`,
  }
}

/**
 * What a proxy of the TLS cases terminates TLS with (nginx in 19 and 21, the bare proxy in 23 and
 * 24): the PEM files, and whether it offers HTTP/2.
 */
export interface TlsListener {
  readonly cert: string
  readonly key: string
  readonly http2: boolean
}

/**
 * Case (2): nginx proxy_pass with an upstream keepalive pool, on the system-under-test CPU. With
 * `tls`, the same nginx terminating TLS: cases (19) and (21) differ from (2) in the listener alone.
 */
export async function startNginxProxy(
  procs: ProcessSet,
  dir: string,
  nginx: NginxInfo,
  upstream: Upstream,
  tls?: TlsListener,
): Promise<{ proc: Proc; origin: string }> {
  const port = await freePort()
  const listener = tls
    ? `listen 127.0.0.1:${port} ssl${tls.http2 ? ' http2' : ''};
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;`
    : `listen 127.0.0.1:${port};`
  const proc = await startNginx(
    procs,
    dir,
    tls ? (tls.http2 ? 'nginx-h2' : 'nginx-https') : 'nginx-proxy',
    nginx,
    'sut',
    `  upstream bench_upstream {
    server ${upstream.origin.replace('http://', '')};
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    ${listener}
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
    port,
  )
  return { proc, origin: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` }
}

/**
 * Case (3): bench/bare-proxy.ts, the floor keygate's ratios are taken against. With `tls`, cases
 * (23) and (24): the same proxy behind Node's HTTPS or HTTP/2 listener, answering before this
 * returns to `waitFor` (the run's certificate is not one fetch trusts).
 */
export async function startBareProxy(
  procs: ProcessSet,
  dir: string,
  root: string,
  upstream: Upstream,
  opts: { nodeArgs?: readonly string[]; tls?: TlsListener; waitFor?: typeof waitForHttp } = {},
): Promise<{ proc: Proc; origin: string }> {
  const { tls } = opts
  return startScript(procs, {
    dir,
    root,
    script: 'bare-proxy',
    role: 'sut',
    args: tls ? [upstream.origin, tls.http2 ? 'h2' : 'https', tls.cert, tls.key] : [upstream.origin],
    nodeArgs: opts.nodeArgs,
    scheme: tls ? 'https' : 'http',
    waitFor: opts.waitFor,
  })
}

/**
 * bench/<script>.ts under tsx, logging to <script>.log in the run's directory: its first argument
 * is a free port, on which it answers HTTP (or `scheme`, polled with `waitFor`) before this returns.
 */
export async function startScript(
  procs: ProcessSet,
  opts: {
    dir: string
    root: string
    script: string
    role: CpuRole
    /** after the port */
    args?: readonly string[]
    nodeArgs?: readonly string[]
    scheme?: 'http' | 'https'
    waitFor?: typeof waitForHttp
  },
): Promise<{ proc: Proc; origin: string }> {
  const port = await freePort()
  const proc = procs.start({
    name: opts.script,
    role: opts.role,
    cmd: process.execPath,
    args: [
      ...(opts.nodeArgs ?? []),
      '--import',
      'tsx',
      join(opts.root, 'bench', `${opts.script}.ts`),
      String(port),
      ...(opts.args ?? []),
    ],
    cwd: opts.root,
    logFile: join(opts.dir, `${opts.script}.log`),
  })
  const origin = `${opts.scheme ?? 'http'}://127.0.0.1:${port}`
  await (opts.waitFor ?? waitForHttp)(`${origin}/`, proc, 20_000)
  return { proc, origin }
}
