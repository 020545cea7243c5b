import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir, renderTemplate, startProcess, waitForPort } from './processes.js'

// The shipped examples, run as they are: nginx with examples/nginx/keygate.conf.template and
// Caddy with examples/caddy/Caddyfile, each on a port of the test's choosing.

export const NGINX_TEMPLATE = fileURLToPath(new URL('../../examples/nginx/keygate.conf.template', import.meta.url))
export const CADDYFILE = fileURLToPath(new URL('../../examples/caddy/Caddyfile', import.meta.url))

/**
 * nginx with `httpLines` in its http{} block; everything it writes stays in `dir`, and it runs as
 * one process, so no worker switches to another user (the tests may run as root). Checked with
 * `nginx -t` first; stopped after the test file.
 */
export async function startNginx(dir: string, httpLines: readonly string[], port: number): Promise<void> {
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
  for (const d of temps) await mkdir(join(dir, d))
  const conf = join(dir, 'nginx.conf')
  await writeFile(
    conf,
    [
      'master_process off;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 128; }',
      'http {',
      '  access_log off;',
      ...temps.map((d) => `  ${d}_temp_path ${join(dir, d)};`),
      ...httpLines.map((l) => `  ${l}`),
      '}',
      '',
    ].join('\n'),
  )
  const check = spawnSync('nginx', ['-t', '-q', '-p', dir, '-c', conf, '-g', 'daemon off;'], { encoding: 'utf8' })
  assert.equal(check.status, 0, `nginx -t refused the config: ${check.stderr}`)
  const proc = startProcess('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'])
  await waitForPort(port, proc)
}

export async function startNginxExample(opts: { port: number; keygatePort: number; appAddr: string }): Promise<void> {
  const dir = await makeTempDir('nginx')
  const server = renderTemplate(await readFile(NGINX_TEMPLATE, 'utf8'), {
    NGINX_LISTEN: `127.0.0.1:${opts.port}`,
    KEYGATE_ADDR: `127.0.0.1:${opts.keygatePort}`,
    APP_ADDR: opts.appAddr,
  })
  await writeFile(join(dir, 'keygate.conf'), server)
  await startNginx(dir, [`include ${join(dir, 'keygate.conf')};`], opts.port)
}

export async function startCaddyExample(opts: { port: number; keygatePort: number; appAddr: string }): Promise<void> {
  const dir = await makeTempDir('caddy')
  // Caddy keeps data and autosaved config under HOME / XDG dirs: all of them in the temp dir.
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    CADDY_PORT: String(opts.port),
    CADDY_BIND: '127.0.0.1',
    KEYGATE_ADDR: `127.0.0.1:${opts.keygatePort}`,
    APP_ADDR: opts.appAddr,
  }
  const check = spawnSync('caddy', ['validate', '--config', CADDYFILE, '--adapter', 'caddyfile'], {
    env,
    encoding: 'utf8',
  })
  assert.equal(check.status, 0, `caddy validate refused the example: ${check.stderr.slice(-2000)}`)
  const proc = startProcess('caddy', ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], { env, cwd: dir })
  await waitForPort(opts.port, proc)
}
