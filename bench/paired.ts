// Paired ratios: keygate and the bare undici proxy (3) loaded AT THE SAME TIME, both pinned to
// the system-under-test CPU, each by its own wrk (h2load for HTTP/2). They share one core and
// whatever else the machine is doing at that moment, so the ratio of their CPU per request is
// steady where `npm run bench` (one case after the other) swings by ±15 % between runs on a shared
// VM. Each side's p99 latency comes from its own wrk over the same seconds: their difference is the
// p99 keygate adds (issues 6 and 18: ≤ 1 ms at 64 connections), at saturation and again paced at
// PACED_RPS, where it is a request's latency rather than a saturated core's queue.
// usage: node --import tsx bench/paired.ts [CASES…]   (default 4 5 6; BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP apply)
// Issue 16's rate-limit cost: bench/paired.ts 5 10 6 11 (each limited case beside its unlimited twin's run).
// Issue 15's identity assertion: bench/paired.ts 5 13 6 14.
// Issue 18's forward-auth behind nginx: bench/paired.ts 17 (paired with (16), not (3): PAIRED_FLOORS).
// Issue 17's HTTPS and HTTP/2: bench/paired.ts 20 22, beside the bare proxy behind Node's own HTTPS
// (23, wrk) and HTTP/2 (24, h2load) listener, so Node's TLS and HTTP/2 cost is on both sides.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { prepare, stopTarget, sutPids } from './lib/cases.js'
import { Skip } from './lib/keygate.js'
import { cpuSecondsBetween, cpuTicks } from './lib/procs.js'
import { openSession, runScript } from './lib/session.js'
import {
  ASSERTION_TWINS,
  CASES,
  P99_ADDED_MAX_MS,
  PACED_RPS,
  PAIRED_FLOORS,
  PAIRED_TARGETS,
  RATE_LIMIT_BUDGET,
  readSettings,
  ADDED_US_MAX,
  SESSION_CASE,
} from './lib/settings.js'
import { runWrk } from './lib/wrk.js'
import type { BenchContext, Target } from './lib/context.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const say = (line = '') => process.stdout.write(`${line}\n`)
const signedMs = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(2)} ms`
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
/** what a case is paired with: the bare proxy (3), or its own floor (PAIRED_FLOORS) */
const floorOf = (id: number) => CASES.find((c) => c.id === (PAIRED_FLOORS[id] ?? 3))!

interface Pair {
  readonly bareUs: number
  readonly keygateUs: number
  readonly bareRps: number
  readonly keygateRps: number
  /** wrk's p99 latency of each over the same measured seconds, in ms */
  readonly bareP99Ms: number
  readonly keygateP99Ms: number
  /** the same, both paced at PACED_RPS */
  readonly bareP99PacedMs: number
  readonly keygateP99PacedMs: number
}

/**
 * Both under load at once: warm-up, then the measured seconds; CPU µs per request and p99 of each.
 * The floor gets the very headers keygate's case sends (a browser's cookies and Accept, a Bearer
 * token): parsing and passing them on is not what keygate adds, and the floor pays for it too.
 * Each side is loaded by its case's own tool (wrk, or h2load for HTTP/2: a floor uses its case's).
 */
async function measurePair(ctx: BenchContext, bare: Target, keygate: Target): Promise<Pair> {
  const load = (t: Target, seconds: number, delayMs?: number) =>
    (t.runLoad ?? runWrk)(ctx.procs, ctx.root, {
      url: t.url,
      headers: keygate.headers,
      seconds,
      connections: ctx.settings.connections,
      threads: ctx.settings.threads,
      delayMs,
    })
  await Promise.all([load(bare, ctx.settings.warmupS), load(keygate, ctx.settings.warmupS)])
  const before = [bare, keygate].map((t) => cpuTicks(sutPids(t)))
  const [b, k] = await Promise.all([load(bare, ctx.settings.durationS), load(keygate, ctx.settings.durationS)])
  const cpuUs = [bare, keygate].map(
    (t, i) => cpuSecondsBetween(before[i]!, cpuTicks(sutPids(t)), ctx.ticksPerSecond) * 1e6,
  )
  // each connection waits so that all of them together ask about PACED_RPS a second
  const delayMs = Math.round((ctx.settings.connections * 1000) / PACED_RPS)
  const [bp, kp] = await Promise.all([
    load(bare, ctx.settings.durationS, delayMs),
    load(keygate, ctx.settings.durationS, delayMs),
  ])
  return {
    bareUs: cpuUs[0]! / b.requests,
    keygateUs: cpuUs[1]! / k.requests,
    bareRps: b.rps,
    keygateRps: k.rps,
    bareP99Ms: b.p99Ms,
    keygateP99Ms: k.p99Ms,
    bareP99PacedMs: bp.p99Ms,
    keygateP99PacedMs: kp.p99Ms,
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const wanted = argv.length ? argv : ['4', '5', '6']
  const settings = readSettings({ ...process.env, BENCH_BASELINES: '0' }, wanted)
  const specs = settings.cases.filter((c) => c.keygate && c.id !== 8)
  if (specs.length === 0) {
    process.stderr.write('paired: give single-process keygate cases (4-7, 9-17, 20, 22)\n')
    return 2
  }
  const session = await openSession(settings, ROOT)
  if (!session) return 2
  const { ctx } = session
  try {
    if (!ctx.pinning.enabled)
      say(`note: no pinning (${ctx.pinning.description}); the pair still shares the machine, but not one core`)
    say(
      `paired: each case runs beside its floor (the bare undici proxy (3) unless said), both on CPU ${ctx.pinning.enabled ? ctx.pinning.sutCpu : '-'}, ${settings.warmupS} s warm-up + ${settings.durationS} s, ${settings.rounds} round(s)`,
    )
    say(
      `keygate from ${ctx.runner.kind === 'dist' ? 'dist/' : `src/ via tsx (${ctx.runner.why})`}, logLevel ${settings.logLevel}${settings.quick ? '; BENCH_QUICK: the numbers are not meaningful' : ''}`,
    )
    const rows: Array<{ id: number; title: string; ratios: number[]; pairs: Pair[]; skipped?: string }> = []
    for (const spec of specs) rows.push({ id: spec.id, title: spec.title, ratios: [], pairs: [] })
    for (let round = 1; round <= settings.rounds; round++) {
      for (const [i, spec] of specs.entries()) {
        const row = rows[i]!
        if (row.skipped) continue
        let bare: Target | null = null
        let keygate: Target | null = null
        try {
          bare = await prepare(ctx, floorOf(spec.id))
          keygate = await prepare(ctx, spec)
          const pair = await measurePair(ctx, bare, keygate)
          // Same core, same moment: the ratio of CPU per request is what keygate keeps of the floor.
          const ratio = pair.bareUs / pair.keygateUs
          row.ratios.push(ratio)
          row.pairs.push(pair)
          say(
            `(${spec.id}) [${round}/${settings.rounds}] ${spec.title}: ${pair.keygateUs.toFixed(0)} µs/req beside ${pair.bareUs.toFixed(0)} µs/req for (${floorOf(spec.id).id}) → ${ratio.toFixed(2)} ×, +${(pair.keygateUs - pair.bareUs).toFixed(0)} µs; p99 ${pair.keygateP99Ms.toFixed(2)} ms beside ${pair.bareP99Ms.toFixed(2)} ms → ${signedMs(pair.keygateP99Ms - pair.bareP99Ms)}; paced at ${PACED_RPS}/s: ${pair.keygateP99PacedMs.toFixed(2)} ms beside ${pair.bareP99PacedMs.toFixed(2)} ms → ${signedMs(pair.keygateP99PacedMs - pair.bareP99PacedMs)}`,
          )
        } catch (err) {
          if (!(err instanceof Skip)) throw err
          row.skipped = err.message
          say(`(${spec.id}) skipped: ${err.message}`)
        } finally {
          for (const t of [keygate, bare]) if (t?.ownsSut) await stopTarget(ctx, t)
        }
      }
    }
    say()
    say(
      `| # | case | paired with | × floor, median | rounds | CPU µs/req added, median | target | p99 ms, floor → keygate, medians | p99 added, median (≤ ${P99_ADDED_MAX_MS} ms) | p99 added at ${PACED_RPS}/s, median |`,
    )
    say('|---|---|---:|---:|---|---:|---:|---:|---:|---:|')
    const addedUs = (r: (typeof rows)[number]): number | null =>
      r.pairs.length ? median(r.pairs.map((p) => p.keygateUs - p.bareUs)) : null
    const sessionBound = rows.find((r) => r.id === SESSION_CASE.comparedWith)
    /** issue 18's µs budget, or issue 14's for the session cookie: what (6) added in this run */
    const addedMax = (id: number): number | null =>
      id in ADDED_US_MAX
        ? ADDED_US_MAX[id as keyof typeof ADDED_US_MAX]
        : id === SESSION_CASE.id && sessionBound
          ? addedUs(sessionBound)
          : null
    for (const r of rows) {
      const target = PAIRED_TARGETS[r.id]
      const got = r.ratios.length ? median(r.ratios) : null
      const mark = got === null || target === undefined ? '' : got >= target ? ' ✓' : ' ✗'
      const us = addedUs(r)
      const max = addedMax(r.id)
      const added =
        us === null ? '—' : `${us.toFixed(1)}${max === null ? '' : `${us <= max ? ' ✓' : ' ✗'} (≤ ${max.toFixed(1)})`}`
      // the median of each round's difference (both measured at the same moment), not of the medians
      const p99Added = r.pairs.length ? median(r.pairs.map((p) => p.keygateP99Ms - p.bareP99Ms)) : null
      const p99s = r.pairs.length
        ? `${median(r.pairs.map((p) => p.bareP99Ms)).toFixed(2)} → ${median(r.pairs.map((p) => p.keygateP99Ms)).toFixed(2)}`
        : '—'
      const withMark = (ms: number | null) =>
        ms === null ? '—' : `${signedMs(ms)}${ms <= P99_ADDED_MAX_MS ? ' ✓' : ' ✗'}`
      const p99Mark = withMark(p99Added)
      const pacedMark = withMark(
        r.pairs.length ? median(r.pairs.map((p) => p.keygateP99PacedMs - p.bareP99PacedMs)) : null,
      )
      say(
        `| ${r.id} | ${r.title} | (${floorOf(r.id).id}) | ${got === null ? `skipped: ${r.skipped}` : `${got.toFixed(2)}${mark}`} | ${r.ratios.map((x) => x.toFixed(2)).join(', ')} | ${added} | ${target === undefined ? '—' : `≥ ${target.toFixed(2)}`} | ${p99s} | ${p99Mark} | ${pacedMark} |`,
      )
    }
    for (const [limited, twin] of Object.entries(RATE_LIMIT_BUDGET.twins)) {
      const [a, b] = [rows.find((r) => r.id === Number(limited)), rows.find((r) => r.id === twin)]
      if (!a?.ratios.length || !b?.ratios.length) continue
      const loss = median(b.ratios) - median(a.ratios)
      const ok = loss <= RATE_LIMIT_BUDGET.maxLoss
      say(
        `rate limit cost: (${limited}) keeps ${median(a.ratios).toFixed(2)} × of (3), (${twin}) ${median(b.ratios).toFixed(2)} ×: ${loss.toFixed(2)} × of the bare proxy ${ok ? '✓' : '✗'} (budget ≤ ${RATE_LIMIT_BUDGET.maxLoss.toFixed(2)})`,
      )
    }
    for (const [signed, twin] of Object.entries(ASSERTION_TWINS)) {
      const [a, b] = [rows.find((r) => r.id === Number(signed)), rows.find((r) => r.id === twin)]
      if (!a?.ratios.length || !b?.ratios.length) continue
      say(
        `assertion cost: (${signed}) keeps ${median(a.ratios).toFixed(2)} × of (3), (${twin}) ${median(b.ratios).toFixed(2)} ×: ${(median(b.ratios) - median(a.ratios)).toFixed(2)} × of the bare proxy`,
      )
    }
    const out = join(ROOT, 'bench', 'results', 'paired.json')
    writeFileSync(
      out,
      `${JSON.stringify({ date: new Date().toISOString(), pinning: ctx.pinning.description, settings: { warmupS: settings.warmupS, durationS: settings.durationS, rounds: settings.rounds, connections: settings.connections }, rows }, null, 2)}\n`,
    )
    say(`\nwritten to bench/results/paired.json`)
    return 0
  } finally {
    await session.close()
  }
}

runScript('paired', main)
