// Where a keygate case spends its CPU: runs one case (default 6, Bearer + Redis) exactly as
// `npm run bench` does, with `node --cpu-prof` on the keygate process, and prints the top
// self-time frames of the measured window (start-up and warm-up left out).
// Case 3 (the bare undici proxy) profiles the floor, to tell keygate's own cost from Node's;
// cases 23 and 24 the same floor over HTTPS and HTTP/2, beside keygate's (20) and (22).
// usage: node --import tsx bench/profile.ts [CASE] [TOP]     e.g. `… bench/profile.ts 5 10`
import { copyFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCase } from './lib/cases.js'
import { summarize, type CpuProfile, type FrameTime } from './lib/cpuprofile.js'
import { openSession, runScript } from './lib/session.js'
import { CASES, readSettings } from './lib/settings.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
/** cases whose system under test is one node process (not nginx, not workers) */
const PROFILED: ReadonlySet<number> = new Set([3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 18, 20, 22, 23, 24])
const say = (line = '') => process.stdout.write(`${line}\n`)

const table = (rows: readonly FrameTime[]) =>
  [
    '| self ms | % of busy | frame |',
    '|---:|---:|---|',
    ...rows.map((r) => `| ${r.selfMs.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.frame}\` |`),
  ].join('\n')

async function main(argv: readonly string[]): Promise<number> {
  const caseArg = argv[0] ?? '6'
  const top = Number(argv[1] ?? 5)
  const spec = CASES.find((c) => String(c.id) === caseArg || c.key === caseArg)
  if (!spec || !PROFILED.has(spec.id)) {
    process.stderr.write(
      `profile: CASE must be 3, 23 or 24 (bare proxy) or a single-process keygate case (${CASES.filter(
        (c) => c.keygate && PROFILED.has(c.id),
      )
        .map((c) => c.id)
        .join(', ')}), not "${caseArg}"\n`,
    )
    return 2
  }
  // One case only, no baselines: a profile needs no ratio.
  const settings = readSettings({ ...process.env, BENCH_BASELINES: '0' }, [String(spec.id)])
  const session = await openSession(settings, ROOT)
  if (!session) return 2
  const { ctx } = session
  try {
    const profDir = join(ctx.dir, 'cpuprofile')
    mkdirSync(profDir)
    const how = !spec.keygate
      ? 'via tsx'
      : ctx.runner.kind === 'dist'
        ? 'keygate from dist/'
        : `keygate via tsx (${ctx.runner.why}; line numbers are those of tsx's output)`
    say(`profiling (${spec.id}) ${spec.title}: ${settings.warmupS} s warm-up + ${settings.durationS} s, ${how}`)
    say(`pinning: ${ctx.pinning.description}`)
    const { result, window } = await runCase(ctx, spec, {
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250'],
      stopGraceMs: 20_000, // the profile is written when the process exits after SIGTERM
    })
    if (result.status !== 'ok' || !window) {
      say(`(${spec.id}) ${result.status}: ${result.reason}`)
      return result.status === 'skipped' ? 0 : 1
    }
    say(
      `(${spec.id}) ${Math.round(result.rps ?? 0).toLocaleString('en-US')} req/s under the profiler (slower than without it), ${result.cpuUsPerRequest?.toFixed(0)} µs CPU/request`,
    )
    // The main thread's profile: CPU.<date>.<time>.<pid>.<thread 0>.<seq>.cpuprofile
    const file = readdirSync(profDir).find((f) => f.includes(`.${window.pid}.0.`) && f.endsWith('.cpuprofile'))
    if (!file) {
      say(
        `no CPU profile: the process did not exit cleanly on SIGTERM within 20 s, so node could not write it (that is a finding in itself)`,
      )
      return 1
    }
    const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile
    const fromUs = (window.from - window.sutStartedAt) * 1000
    const toUs = (window.to - window.sutStartedAt) * 1000
    const summary = summarize(profile, ROOT, fromUs, toUs, top)
    const kept = join(ROOT, 'bench', 'results', `${spec.key}.cpuprofile`)
    copyFileSync(join(profDir, file), kept)
    say()
    say(
      `measured window ${summary.windowMs.toFixed(0)} ms: busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`,
    )
    say()
    say(`top ${top} self-time frames:`)
    say(table(summary.frames))
    say()
    say(`self time by file / package:`)
    say(table(summary.files))
    if (summary.ownTotals.length) {
      say()
      say(`keygate's own functions by total time (callees included):`)
      say(table(summary.ownTotals).replace('| self ms |', '| total ms |'))
    }
    say()
    say(`profile kept as ${relative(process.cwd(), kept)} (open it in Chrome DevTools → Performance, or VS Code)`)
    return 0
  } finally {
    await session.close()
  }
}

runScript('profile', main)
