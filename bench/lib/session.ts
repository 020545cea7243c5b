import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createContext, type BenchContext } from './context.js'
import { chooseRunner } from './keygate.js'
import { clockTicksPerSecond, createProcessSet, detectPinning } from './procs.js'
import { deletePrefix } from './redis.js'
import type { Settings } from './settings.js'
import { findNginx, startUpstream } from './upstream.js'
import { wrkVersion } from './wrk.js'

export interface Session {
  readonly ctx: BenchContext
  readonly wrk: string
  /** stops everything started, deletes this run's Redis keys and the temp directory; idempotent */
  close(): Promise<void>
}

const say = (line: string) => process.stdout.write(`${line}\n`)

/**
 * What run.ts and profile.ts share: the tools check, pinning, a temp directory, the upstream,
 * and a cleanup that runs once — at the end, on an error, or on SIGINT / SIGTERM.
 * null (after printing how to get it) when wrk is missing: the bench installs nothing.
 */
export async function openSession(settings: Settings, root: string): Promise<Session | null> {
  const wrk = wrkVersion()
  if (!wrk) {
    process.stderr.write('bench: wrk is not installed. Install it with:\n  apt-get install -y wrk\n')
    return null
  }
  const nginx = findNginx()
  const pinning = detectPinning(process.env)
  const procs = createProcessSet(pinning)
  const dir = mkdtempSync(join(tmpdir(), 'keygate-bench-'))

  let ctx: BenchContext | null = null
  let closing: Promise<void> | null = null
  const close = () =>
    (closing ??= (async () => {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
      await procs.stopAll()
      const info = await ctx?.usedRedis()?.catch(() => null)
      if (info) {
        const n = await deletePrefix(info.url, info.prefix)
        if (n) say(`removed ${n} Redis key${n === 1 ? '' : 's'} under ${info.prefix}`)
      }
      if (settings.keepTemp) say(`kept ${dir} (configs and logs of this run)`)
      else rmSync(dir, { recursive: true, force: true })
    })())
  function onSignal(signal: NodeJS.Signals): void {
    process.stderr.write(`\nbench: ${signal}, stopping everything it started…\n`)
    void close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', () => procs.killAllNow()) // last resort, if something threw past close()

  try {
    const upstream = await startUpstream(procs, dir, nginx, root)
    ctx = createContext({
      settings,
      pinning,
      nginx,
      upstream,
      procs,
      root,
      dir,
      runner: chooseRunner(root),
      ticksPerSecond: clockTicksPerSecond(),
    })
    return { ctx, wrk, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** Runs a bench script's main with the command-line arguments; its result, or a crash, is the exit code. */
export function runScript(name: string, main: (argv: readonly string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: Error) => {
      process.stderr.write(`${name}: ${err.stack ?? err.message}\n`)
      process.exitCode = 1
    },
  )
}
