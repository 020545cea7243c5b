import { existsSync } from 'node:fs'
import { appendFile, mkdir } from 'node:fs/promises'
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, hasCommand, makeTempDir, startProcess, waitForPort } from './processes.js'

// A throwaway MediaWiki from Debian's `mediawiki` package: the code tree stays where the package
// put it (/usr/share/mediawiki, read-only to us); the database (SQLite), LocalSettings.php and
// caches live in a temp dir, named to MediaWiki by MW_CONFIG_FILE. Nothing under /etc or /var is
// touched. `php -S` serves /w/api.php and /w/rest.php through a small router. The wiki loads the
// shipped KeygateAuth extension from the repository, as a wiki admin would install it.

export const MW_CODE = '/usr/share/mediawiki'
const ROUTER = fileURLToPath(new URL('./mediawiki-router.php', import.meta.url))
export const EXTENSION = fileURLToPath(
  new URL('../../integrations/mediawiki/KeygateAuth/extension.json', import.meta.url),
)

export const ADMIN_PASSWORD = 'Admin-Password-For-A-Throwaway-Wiki-0123'

/** What is missing for a real wiki, or null when php, pdo_sqlite and MediaWiki are all there. */
export function missingWikiPackages(): string | null {
  const missing: string[] = []
  if (!hasCommand('php')) missing.push('php-cli')
  else if (spawnSync('php', ['-r', 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);']).status !== 0)
    missing.push('php-sqlite3')
  if (!existsSync(join(MW_CODE, 'maintenance', 'install.php'))) missing.push('mediawiki')
  return missing.length ? missing.join(', ') : null
}

export interface Wiki {
  readonly url: string
  readonly port: number
  readonly dir: string
  /** runs a maintenance script against this wiki */
  maintenance(script: string, args: readonly string[]): Promise<string>
}

async function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c) => {
    out += c
  })
  child.stderr.on('data', (c) => {
    out += c
  })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-4000)}`)
  return out
}

/** $wgKeygateAuth* settings (integrations/mediawiki/KeygateAuth/extension.json lists them all). */
export type KeygateAuthSettings = Readonly<Record<string, string | number | boolean | readonly string[]>>

/**
 * Installs a wiki (install.php, SQLite) into a temp dir and serves it on 127.0.0.1, with the
 * KeygateAuth extension loaded and configured by `keygateAuth` (e.g. {JwksUrl, Audience}).
 */
export async function startWiki(opts: { keygateAuth: KeygateAuthSettings }): Promise<Wiki> {
  const dir = await makeTempDir('mediawiki')
  const data = join(dir, 'data')
  const cache = join(dir, 'cache')
  await mkdir(data)
  await mkdir(cache)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const settings = join(dir, 'LocalSettings.php')
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    MW_INSTALL_PATH: MW_CODE,
    MW_CONFIG_FILE: settings,
  }
  const maintenance = (script: string, args: readonly string[]) =>
    run('php', [join(MW_CODE, 'maintenance', `${script}.php`), ...args], env, dir)

  await maintenance('install', [
    '--dbtype',
    'sqlite',
    '--dbpath',
    data,
    '--dbname',
    'keygatewiki',
    '--server',
    url,
    '--scriptpath',
    '/w',
    '--lang',
    'en',
    '--pass',
    ADMIN_PASSWORD,
    '--confpath',
    dir,
    'Keygate Test Wiki',
    'Admin',
  ])
  const php = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
  const phpValue = (v: KeygateAuthSettings[string]): string =>
    typeof v === 'string' ? php(v) : Array.isArray(v) ? `[ ${v.map(php).join(', ')} ]` : String(v)
  await appendFile(
    settings,
    [
      '',
      '# --- added by test/support/mediawiki.ts',
      `$wgServer = ${php(url)};`,
      // sessions and CSRF tokens must outlive a request without APCu (php-cli has none)
      '$wgMainCacheType = CACHE_DB;',
      '$wgSessionCacheType = CACHE_DB;',
      `$wgCacheDirectory = ${php(cache)};`,
      '$wgEnableUploads = false;',
      // the shipped extension: the wiki believes keygate's signed assertion, never plain headers
      `wfLoadExtension( 'KeygateAuth', ${php(EXTENSION)} );`,
      ...Object.entries(opts.keygateAuth).map(([k, v]) => `$wgKeygateAuth${k} = ${phpValue(v)};`),
      '',
    ].join('\n'),
  )

  // several workers: keygate asks the wiki (identityFromUpstream) while a client may be waiting on it
  const server = startProcess('php', ['-S', `127.0.0.1:${port}`, ROUTER], {
    env: { ...env, PHP_CLI_SERVER_WORKERS: '4' },
    cwd: dir,
  })
  await waitForPort(port, server)
  return { url, port, dir, maintenance }
}

/** A minimal cookie jar: what a browser would send back to one host. */
export function cookieJar() {
  const cookies = new Map<string, string>()
  return {
    take(res: Response) {
      for (const line of res.headers.getSetCookie()) {
        const [pair = ''] = line.split(';')
        const eq = pair.indexOf('=')
        if (eq <= 0) continue
        const name = pair.slice(0, eq).trim()
        const value = pair.slice(eq + 1).trim()
        if (value === '' || value === 'deleted' || /max-age=0\b/i.test(line)) cookies.delete(name)
        else cookies.set(name, value)
      }
    },
    header: () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; '),
    names: () => [...cookies.keys()],
  }
}
