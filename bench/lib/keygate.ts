import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { stringify } from 'yaml'
import { describeAnswer, freePort, probe, waitForHttp } from './net.js'
import type { CpuRole, Proc, ProcessSet } from './procs.js'

/** A case that cannot run yet: printed with its reason, never dropped silently. */
export class Skip extends Error {}

export interface KeygateRunner {
  readonly kind: 'dist' | 'tsx'
  /** node arguments before the keygate command (`serve`, `hash-password` …) */
  readonly args: readonly string[]
  readonly why: string
}

function filesUnder(dir: string, suffix: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...filesUnder(full, suffix))
    else if (entry.name.endsWith(suffix)) out.push(full)
  }
  return out
}

/**
 * dist/ when every src/**.ts has a compiled file that is newer than it; else tsx.
 * tsx compiles each module once at start-up: it adds start-up time, not per-request cost.
 */
export function chooseRunner(root: string): KeygateRunner {
  const tsx: KeygateRunner = { kind: 'tsx', args: ['--import', 'tsx', join(root, 'src', 'cli.ts')], why: '' }
  const dist = join(root, 'dist')
  if (!existsSync(join(dist, 'cli.js'))) return { ...tsx, why: 'no dist/ (run `npm run build` to use compiled code)' }
  for (const src of filesUnder(join(root, 'src'), '.ts')) {
    const out = join(dist, relative(join(root, 'src'), src)).replace(/\.ts$/, '.js')
    if (src.endsWith('.d.ts')) continue
    if (!existsSync(out))
      return { ...tsx, why: `dist/ lacks ${relative(root, out)} (src changed since the last build)` }
    if (statSync(out).mtimeMs < statSync(src).mtimeMs)
      return { ...tsx, why: `${relative(root, src)} is newer than dist/` }
  }
  return { kind: 'dist', args: [join(dist, 'cli.js')], why: 'dist/ is fresher than src/' }
}

export interface KeygateSetup {
  readonly procs: ProcessSet
  readonly root: string
  readonly dir: string
  readonly runner: KeygateRunner
}

/** `keygate hash-password` with the password on stdin, as a user would make the users: entry */
export async function hashPassword(k: KeygateSetup, password: string): Promise<string> {
  const r = await k.procs.run({
    name: 'hash-password',
    role: 'any',
    cmd: process.execPath,
    args: [...k.runner.args, 'hash-password'],
    cwd: k.root,
    input: `${password}\n`,
    timeoutMs: 60_000,
  })
  const hash = r.stdout.trim()
  if (r.code !== 0 || !hash.startsWith('scrypt$'))
    throw new Skip(`keygate hash-password failed (exit ${r.code}): ${r.stderr.trim().split('\n').pop() ?? ''}`)
  return hash
}

/** `keygate check-config`: null when the config is accepted, else the problems it printed */
export async function checkConfig(k: KeygateSetup, file: string): Promise<string | null> {
  const r = await k.procs.run({
    name: 'check-config',
    role: 'any',
    cmd: process.execPath,
    args: [...k.runner.args, 'check-config', '--config', file],
    cwd: k.root,
    timeoutMs: 60_000,
  })
  return r.code === 0 ? null : (r.stderr || r.stdout).trim()
}

/** The config as a user would write it (YAML), into the run's directory. */
export function writeConfig(k: KeygateSetup, name: string, config: Record<string, unknown>, listen: string): string {
  const file = join(k.dir, `${name}.yaml`)
  writeFileSync(file, `# written by bench/run.ts for case ${name}\n${stringify({ listen, ...config })}`)
  return file
}

export interface RunningKeygate {
  readonly proc: Proc
  readonly origin: string
  readonly configFile: string
}

/** Writes the config (YAML, as a user would) and starts `keygate serve` with it. */
export async function startKeygate(
  k: KeygateSetup,
  name: string,
  config: Record<string, unknown>,
  opts: { role: CpuRole; nodeArgs?: readonly string[]; scheme?: 'https'; waitFor?: typeof waitForHttp },
): Promise<RunningKeygate> {
  const port = await freePort()
  const configFile = writeConfig(k, name, config, `127.0.0.1:${port}`)
  const proc = k.procs.start({
    name: `keygate (${name})`,
    role: opts.role,
    cmd: process.execPath,
    args: [...(opts.nodeArgs ?? []), ...k.runner.args, 'serve', '--config', configFile],
    cwd: k.root,
    logFile: join(k.dir, `${name}.log`),
    ipc: true,
  })
  const origin = `${opts.scheme ?? 'http'}://127.0.0.1:${port}`
  try {
    await (opts.waitFor ?? waitForHttp)(`${origin}/_keygate/health`, proc, 30_000)
  } catch (err) {
    await k.procs.stop(proc)
    throw new Skip(`keygate did not start: ${(err as Error).message}`)
  }
  return { proc, origin, configFile }
}

/** POST /api/authorize for an access token; a 404 means the endpoint is not there yet. */
export async function login(
  origin: string,
  username: string,
  password: string,
  tokenType: 'access' | 'session' = 'access',
): Promise<string> {
  const answer = await probe(`${origin}/api/authorize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, token_type: tokenType }),
  })
  if (answer.status === 404)
    throw new Skip(
      `POST /api/authorize answers ${describeAnswer(answer)}: Bearer login is not served by this keygate yet`,
    )
  if (answer.status !== 200) throw new Skip(`POST /api/authorize answered ${describeAnswer(answer)}`)
  let token: unknown
  try {
    token = (JSON.parse(answer.body) as { token?: unknown }).token
  } catch {
    /* below */
  }
  if (typeof token !== 'string' || token.split('.').length !== 3)
    throw new Skip(`POST /api/authorize gave no JWT in "token": ${answer.body.slice(0, 120)}`)
  return token
}

/** The request the load will repeat must pass first; otherwise the case measures refusals. */
export async function requirePass(url: string, headers: Record<string, string>, what: string): Promise<void> {
  const answer = await probe(url, { headers })
  if (answer.status < 200 || answer.status > 299)
    throw new Skip(`${what}: keygate answers ${describeAnswer(answer)} instead of 2xx`)
}
