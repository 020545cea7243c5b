// `npm run bench`: keygate against nginx, a bare undici proxy and the upstream itself, in one
// run on one upstream, so that only ratios are compared (absolute numbers swing 15–70% between
// runs on shared machines, PERF-BASELINE.md). Everything it starts is stopped at the end, also
// on an error or Ctrl-C. It installs nothing: a missing tool is named with its apt-get line.
import { mkdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCase, type CaseResult } from './lib/cases.js'
import {
  checkTargets,
  combineRounds,
  footnotes,
  markdownTable,
  rate,
  targetLines,
  tlsRatioLines,
} from './lib/report.js'
import { openSession, runScript, type Session } from './lib/session.js'
import { readSettings, USAGE, type Settings } from './lib/settings.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const say = (line = '') => process.stdout.write(`${line}\n`)
/** 1-minute load average */
const loadAverage = (): number => loadavg()[0] ?? 0

function estimateSeconds(s: Settings): number {
  const startUp = s.cases.filter((c) => c.keygate).length * 3 + 5 // tsx start-up, hash-password, probes
  return s.rounds * (s.cases.length * (s.warmupS + s.durationS) + startUp)
}

function oneLine(r: CaseResult): string {
  if (r.status !== 'ok') return `${r.status}: ${r.reason}`
  const errors = r.errors?.total ? `, ${r.errors.total} errors` : ''
  return `${Math.round(r.rps ?? 0).toLocaleString('en-US')} req/s, p99 ${r.p99Ms?.toFixed(2)} ms${errors}`
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    say(USAGE)
    return 0
  }
  let settings: Settings
  try {
    settings = readSettings(process.env, argv)
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const started = new Date()
  let session: Session | null
  try {
    session = await openSession(settings, ROOT)
  } catch (err) {
    process.stderr.write(`bench: cannot start the upstream: ${(err as Error).message}\n`)
    return 1
  }
  if (!session) return 2
  const { ctx, wrk } = session
  try {
    say(`# keygate benchmark — ${started.toISOString()}`)
    say()
    say(`machine:  ${cpus()[0]?.model ?? '?'} × ${availableParallelism()}, Linux ${release()}, Node ${process.version}`)
    say(
      `load:     wrk ${wrk}, -t${settings.threads} -c${settings.connections}, ${settings.warmupS} s warm-up + ${settings.durationS} s per case${settings.rounds > 1 ? `, ${settings.rounds} interleaved rounds (medians)` : ''}${settings.quick ? ' (BENCH_QUICK smoke check: numbers are not meaningful)' : ''}; only 127.0.0.1`,
    )
    say(`pinning:  ${ctx.pinning.description}`)
    // Other work on the box (a test suite, a build) moves every figure; say so rather than hide it.
    const busyBefore = loadAverage()
    if (busyBefore > 0.5)
      say(
        `warning:  load average ${busyBefore.toFixed(2)} before the run: something else is using the CPUs, so this run is noisy`,
      )
    say(
      `keygate:  ${ctx.runner.kind === 'dist' ? 'node dist/cli.js (dist/ is fresher than src/)' : `node --import tsx src/cli.ts — ${ctx.runner.why}; tsx adds start-up time, not per-request cost`}; logLevel ${settings.logLevel}, log lines to a file`,
    )
    if (settings.addedBaselines.length)
      say(
        `cases:    ${settings.cases.map((c) => c.id).join(', ')} (added ${settings.addedBaselines.join(' and ')} for the ratios; BENCH_BASELINES=0 leaves them out)`,
      )
    const expected = estimateSeconds(settings)
    say(
      `expected: about ${expected} s${expected > 180 ? ' — over the 3-minute budget of issue 6; lower BENCH_DURATION or BENCH_ROUNDS' : ''}`,
    )
    say(`upstream: ${ctx.upstream.description}`)
    say()

    // Rounds are interleaved (1…8, 1…8, …) so that a slow minute on a shared machine hits every case.
    const rounds = new Map<number, CaseResult[]>(settings.cases.map((c) => [c.id, []]))
    for (let round = 1; round <= settings.rounds; round++) {
      for (const spec of settings.cases) {
        process.stdout.write(
          `(${spec.id})${settings.rounds > 1 ? ` [${round}/${settings.rounds}]` : ''} ${spec.title} … `,
        )
        const { result } = await runCase(ctx, spec)
        say(oneLine(result))
        rounds.get(spec.id)!.push(result)
      }
    }
    const results = settings.cases.map((c) => combineRounds(rounds.get(c.id)!))
    const redis = await ctx.usedRedis()?.catch(() => null)
    if (redis)
      say(
        `redis:    ${redis.url}, Redis ${redis.version}, prefix ${redis.prefix}; ${redis.ownProcess ? `started by the bench${ctx.pinning.enabled ? ` on CPU ${ctx.pinning.loadCpu}` : ''}` : 'a server the bench did not start, so not pinned (BENCH_REDIS_URL=own starts a pinned one)'}`,
      )

    const busyAfter = loadAverage() // recorded only: the bench itself keeps about two CPUs busy
    const rated = rate(results)
    const targets = checkTargets(rated)
    say()
    say(markdownTable(rated))
    say()
    say(footnotes(rated))
    say()
    say('targets (issues 6 and 18; ratios from this run only):')
    say(targetLines(targets))
    const tls = tlsRatioLines(rated)
    if (tls) say(`\n${tls}`)

    const out = join(ROOT, 'bench', 'results', 'latest.json')
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(
      out,
      `${JSON.stringify(
        {
          date: started.toISOString(),
          machine: {
            cpu: cpus()[0]?.model ?? null,
            cpus: availableParallelism(),
            kernel: release(),
            node: process.version,
            nginx: ctx.nginx?.version ?? null,
            wrk,
            redis: redis ? `${redis.version}${redis.ownProcess ? ' (started by the bench)' : ''}` : null,
          },
          settings: {
            durationS: settings.durationS,
            warmupS: settings.warmupS,
            rounds: settings.rounds,
            connections: settings.connections,
            threads: settings.threads,
            quick: settings.quick,
            logLevel: settings.logLevel,
          },
          pinning: ctx.pinning.description,
          loadAverage: { before: busyBefore, after: busyAfter },
          upstream: ctx.upstream.description,
          keygate: ctx.runner.kind === 'dist' ? 'dist' : `tsx (${ctx.runner.why})`,
          cases: rated,
          targets,
        },
        null,
        2,
      )}\n`,
    )
    say()
    say(`written: ${relative(process.cwd(), out) || out}`)
    return results.some((r) => r.status === 'failed') ? 1 : 0
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`)
    return 1
  } finally {
    await session.close()
  }
}

runScript('bench', main)
