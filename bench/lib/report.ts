import type { CaseResult } from './cases.js'
import { FORWARD_AUTH_TARGET, P99_ADDED_MAX_MS, TARGET_RATIOS, type TlsCaseId } from './settings.js'

export interface RatedResult extends CaseResult {
  /** req/s divided by (3)'s and (1)'s in the same run; null when either side is missing */
  readonly vsBare: number | null
  readonly vsUpstream: number | null
  /** p99 minus (3)'s p99, in ms */
  readonly p99AddedOverBareMs: number | null
}

export interface TargetCheck {
  readonly what: string
  readonly value: string
  /** null: not measured in this run */
  readonly met: boolean | null
}

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * One case's rounds as one row: the median of each figure over the rounds that ran (as
 * PERF-BASELINE.md does with interleaved samples), errors and requests summed, RSS the largest.
 */
export function combineRounds(rounds: readonly CaseResult[]): CaseResult {
  const ok = rounds.filter((r) => r.status === 'ok')
  if (ok.length === 0 || rounds.length === 1) return rounds[0]!
  const med = (f: (r: CaseResult) => number | null) => median(ok.map(f).filter((v): v is number => v !== null))
  const notOk = rounds.filter((r) => r.status !== 'ok')
  const sum = (f: (e: NonNullable<CaseResult['errors']>) => number) =>
    ok.reduce((n, r) => n + (r.errors ? f(r.errors) : 0), 0)
  return {
    ...ok[0]!,
    notes: [
      ...ok[0]!.notes,
      `median of ${ok.length} rounds`,
      ...notOk.map((r) => `one round ${r.status}: ${r.reason}`),
    ],
    rps: med((r) => r.rps),
    p50Ms: med((r) => r.p50Ms),
    p99Ms: med((r) => r.p99Ms),
    p999Ms: med((r) => r.p999Ms),
    cpuUsPerRequest: med((r) => r.cpuUsPerRequest),
    loadCpuUsPerRequest: med((r) => r.loadCpuUsPerRequest),
    requests: ok.reduce((n, r) => n + (r.requests ?? 0), 0),
    errors: {
      connect: sum((e) => e.connect),
      read: sum((e) => e.read),
      write: sum((e) => e.write),
      status: sum((e) => e.status),
      timeout: sum((e) => e.timeout),
      total: sum((e) => e.total),
    },
    peakRssMiB: Math.max(...ok.map((r) => r.peakRssMiB ?? 0)) || null,
  }
}

export function rate(results: readonly CaseResult[]): RatedResult[] {
  const ok = (id: number) => results.find((r) => r.id === id && r.status === 'ok' && r.rps)
  const bare = ok(3)
  const upstream = ok(1)
  return results.map((r) => ({
    ...r,
    vsBare: r.rps !== null && bare?.rps ? r.rps / bare.rps : null,
    vsUpstream: r.rps !== null && upstream?.rps ? r.rps / upstream.rps : null,
    p99AddedOverBareMs: r.p99Ms !== null && bare?.p99Ms != null ? r.p99Ms - bare.p99Ms : null,
  }))
}

/** The targets of issue 6, as far as this run measured them. */
export function checkTargets(rated: readonly RatedResult[]): TargetCheck[] {
  const get = (id: number) => rated.find((r) => r.id === id && r.status === 'ok')
  const ratio = (id: number, min: number, label: string): TargetCheck => {
    const r = get(id)
    return r?.vsBare != null
      ? { what: `(${id}) ${label} ≥ ${min.toFixed(2)} × (3)`, value: `${r.vsBare.toFixed(2)} ×`, met: r.vsBare >= min }
      : { what: `(${id}) ${label} ≥ ${min.toFixed(2)} × (3)`, value: notMeasured(rated, id), met: null }
  }
  const p99 = (id: number): TargetCheck => {
    const r = get(id)
    return r?.p99AddedOverBareMs != null
      ? {
          what: `(${id}) p99 added over (3) ≤ ${P99_ADDED_MAX_MS} ms`,
          value: `${signed(r.p99AddedOverBareMs)} ms`,
          met: r.p99AddedOverBareMs <= P99_ADDED_MAX_MS,
        }
      : { what: `(${id}) p99 added over (3) ≤ ${P99_ADDED_MAX_MS} ms`, value: notMeasured(rated, id), met: null }
  }
  // (18) is (8)'s twin (one process, placed the same); (6) is pinned to a core of its own.
  const one = get(18) ?? get(6)
  const many = get(8)
  const scalingWhat = `(8) workers: auto ≥ 1.7 × (${one?.id ?? 18})`
  const scaling: TargetCheck =
    one?.rps && many?.rps
      ? {
          what: scalingWhat,
          value: `${(many.rps / one.rps).toFixed(2)} × on ${many.notes.find((n) => n.includes('worker')) ?? '?'}${scalingBound(one, many)}`,
          met: many.rps / one.rps >= 1.7,
        }
      : { what: scalingWhat, value: notMeasured(rated, one ? 8 : 18), met: null }
  const floor = get(16)
  const behindNginx = get(17)
  const forwardAuth: TargetCheck =
    floor?.rps && behindNginx?.rps
      ? {
          what: `(17) keygate behind nginx auth_request ≥ ${FORWARD_AUTH_TARGET.toFixed(2)} × (16)`,
          value: `${(behindNginx.rps / floor.rps).toFixed(2)} ×`,
          met: behindNginx.rps / floor.rps >= FORWARD_AUTH_TARGET,
        }
      : {
          what: `(17) keygate behind nginx auth_request ≥ ${FORWARD_AUTH_TARGET.toFixed(2)} × (16)`,
          value: notMeasured(rated, floor ? 17 : 16),
          met: null,
        }
  return [
    ratio(4, TARGET_RATIOS[4], 'anonymous'),
    ratio(5, TARGET_RATIOS[5], 'ApiKey'),
    ratio(6, TARGET_RATIOS[6], 'Bearer + Redis'),
    p99(5),
    p99(6),
    scaling,
    forwardAuth,
  ]
}

/**
 * What 2 cores allow when wrk and the upstream share them: all CPU spent at (8)'s cost per request
 * (keygate's plus the load's) against one process's core at its own cost, 2 · k1 / (k8 + l8).
 */
function scalingBound(one: RatedResult, many: RatedResult): string {
  const k1 = one.cpuUsPerRequest
  const k8 = many.cpuUsPerRequest
  const l8 = many.loadCpuUsPerRequest
  if (k1 === null || k8 === null || l8 === null) return ''
  return `; the most 2 cores allow with the load on them: 2 × ${k1.toFixed(0)} / (${k8.toFixed(0)} + ${l8.toFixed(0)} load) µs = ${((2 * k1) / (k8 + l8)).toFixed(2)} ×`
}

function notMeasured(rated: readonly RatedResult[], id: number): string {
  const r = rated.find((x) => x.id === id)
  if (!r) return `(${id}) not run`
  if (r.status !== 'ok') return `(${id}) ${r.status}`
  return '(3) not measured'
}

const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(2)}`
const int = (n: number | null) => (n === null ? '—' : Math.round(n).toLocaleString('en-US'))
const fixed = (n: number | null, digits: number) => (n === null ? '—' : n.toFixed(digits))
const times = (n: number | null) => (n === null ? '—' : `${n.toFixed(2)}`)

export function markdownTable(rated: readonly RatedResult[]): string {
  const rows = [
    '| # | case | req/s | × (3) | × (1) | p50 ms | p99 ms | p99.9 ms | errors | CPU µs/req | load µs/req | peak RSS MiB |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rated) {
    if (r.status !== 'ok') {
      rows.push(`| ${r.id} | ${r.title} | ${r.status} | | | | | | | | | |`)
      continue
    }
    rows.push(
      `| ${r.id} | ${r.title} | ${int(r.rps)} | ${times(r.vsBare)} | ${times(r.vsUpstream)} | ${fixed(r.p50Ms, 2)} | ${fixed(r.p99Ms, 2)} | ${fixed(r.p999Ms, 2)} | ${int(r.errors?.total ?? null)} | ${fixed(r.cpuUsPerRequest, 0)} | ${fixed(r.loadCpuUsPerRequest, 0)} | ${fixed(r.peakRssMiB, 0)} |`,
    )
  }
  return rows.join('\n')
}

/** Why a row is empty, and what each row ran on: printed under the table. */
export function footnotes(rated: readonly RatedResult[]): string {
  const lines: string[] = []
  for (const r of rated) {
    if (r.status !== 'ok') lines.push(`- (${r.id}) ${r.status}: ${r.reason?.replace(/\n\s*/g, ' | ')}`)
    else if (r.notes.length) lines.push(`- (${r.id}) ${r.notes.join('; ')}`)
    if (r.errors && r.errors.total > 0) {
      const e = r.errors
      lines.push(
        `  (${r.id}) errors: ${e.status} HTTP ≥400, ${e.connect} connect, ${e.read} read, ${e.write} write, ${e.timeout} timeout`,
      )
    }
  }
  return lines.join('\n')
}

export function targetLines(checks: readonly TargetCheck[]): string {
  return checks
    .map((c) => `- ${c.what}: ${c.value} ${c.met === null ? '(not measured)' : c.met ? '✓' : '✗'}`)
    .join('\n')
}

/** keygate's, nginx's and the bare proxy's rows side by side: the ratios issue 17 asks for. */
const PAIRS: ReadonlyArray<{ keygate: TlsCaseId; nginx: TlsCaseId; bare: TlsCaseId; plain: number; what: string }> = [
  { keygate: 20, nginx: 19, bare: 23, plain: 4, what: 'HTTPS (HTTP/1.1)' },
  { keygate: 22, nginx: 21, bare: 24, plain: 4, what: 'HTTP/2' },
]

/** The TLS ratios of this run, under the table: keygate against nginx and the bare proxy doing the same, and against plain HTTP. */
export function tlsRatioLines(rated: readonly RatedResult[]): string {
  const rps = (id: number) => rated.find((r) => r.id === id && r.status === 'ok')?.rps ?? null
  const lines = PAIRS.flatMap(({ keygate, nginx, bare, plain, what }) => {
    const k = rps(keygate)
    if (k === null) return []
    const [n, b, p] = [rps(nginx), rps(bare), rps(plain)]
    const parts = [
      n === null ? `(${nginx}) not measured` : `${(k / n).toFixed(2)} × nginx terminating TLS (${nginx})`,
      b === null ? `(${bare}) not measured` : `${(k / b).toFixed(2)} × the bare proxy over the same (${bare})`,
      p === null ? `(${plain}) not measured` : `${(k / p).toFixed(2)} × keygate over plain HTTP (${plain})`,
    ]
    return [`- (${keygate}) keygate ${what}: ${parts.join('; ')}`]
  })
  return lines.length ? `TLS (issue 17; ratios from this run only):\n${lines.join('\n')}` : ''
}
