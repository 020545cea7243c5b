/**
 * Issue 17's cases, run by bench/lib/tls-cases.ts: keygate and nginx terminating TLS, and the bare
 * proxy (3) behind Node's own HTTPS and HTTP/2 listeners, the floors bench:paired sets (20) and (22) beside.
 */
export const TLS_CASES = [
  { id: 19, key: 'nginx-https', title: 'nginx proxy_pass, HTTPS (TLS 1.3, HTTP/1.1)', keygate: false },
  { id: 20, key: 'keygate-https', title: 'keygate, anonymous route, HTTPS (TLS 1.3, HTTP/1.1)', keygate: true },
  { id: 21, key: 'nginx-h2', title: 'nginx proxy_pass, HTTP/2 over TLS (h2load)', keygate: false },
  { id: 22, key: 'keygate-h2', title: 'keygate, anonymous route, HTTP/2 over TLS (h2load)', keygate: true },
  { id: 23, key: 'bare-https', title: 'bare undici proxy, HTTPS (TLS 1.3, HTTP/1.1)', keygate: false },
  { id: 24, key: 'bare-h2', title: 'bare undici proxy, HTTP/2 over TLS (h2load)', keygate: false },
] as const

export type TlsCaseId = (typeof TLS_CASES)[number]['id']

/**
 * The eight cases of issue 6 in the order they run, (9) the anonymous case without metrics (issue 7:
 * counting costs next to nothing), and issue 16's rate limits: (10) is (5) and (11) is (6) with a
 * limit that counts every request but is never reached; (12) a key that is over its limit;
 * (15) issue 14's browser session cookie, which must cost no more than (6)'s Bearer; (16) and (17)
 * issue 18's forward-auth behind a real nginx (bench/lib/forward-auth.ts); (18) is (8) with one process,
 * placed as (8) is (unpinned, beside wrk and the upstream): the workers' scaling is (8) / (18);
 * (19)-(22) issue 17's HTTPS and HTTP/2, keygate beside nginx terminating TLS, and (23), (24) the bare
 * proxy over the same (bench/lib/tls-cases.ts).
 */
export const CASES = [
  { id: 1, key: 'upstream', title: 'upstream directly', keygate: false },
  { id: 2, key: 'nginx-proxy', title: 'nginx proxy_pass, upstream keepalive', keygate: false },
  { id: 3, key: 'bare-undici', title: 'bare undici proxy (bench/bare-proxy.ts)', keygate: false },
  { id: 4, key: 'keygate-anonymous', title: 'keygate, anonymous route', keygate: true },
  { id: 5, key: 'keygate-apikey', title: 'keygate, ApiKey', keygate: true },
  { id: 6, key: 'keygate-bearer', title: 'keygate, Bearer JWT HS256 + Redis', keygate: true },
  { id: 7, key: 'keygate-forward-auth', title: 'keygate, forward-auth decision (Bearer)', keygate: true },
  { id: 8, key: 'keygate-workers', title: 'keygate, workers: auto, Bearer + Redis', keygate: true },
  {
    id: 9,
    key: 'keygate-anonymous-no-metrics',
    title: 'keygate, anonymous route, metrics.enabled: false',
    keygate: true,
  },
  {
    id: 10,
    key: 'keygate-apikey-limited',
    title: 'keygate, ApiKey under its rate limit (memory store)',
    keygate: true,
  },
  {
    id: 11,
    key: 'keygate-bearer-limited',
    title: 'keygate, Bearer + Redis under a per-user rate limit',
    keygate: true,
  },
  {
    id: 12,
    key: 'keygate-apikey-blocked',
    title: 'keygate, ApiKey over its rate limit: every request 429 (Redis)',
    keygate: true,
  },
  {
    id: 13,
    key: 'keygate-apikey-assertion',
    title: 'keygate, ApiKey + signed identity assertion',
    keygate: true,
  },
  {
    id: 14,
    key: 'keygate-bearer-assertion',
    title: 'keygate, Bearer + Redis + signed identity assertion',
    keygate: true,
  },
  {
    id: 15,
    key: 'keygate-session',
    title: 'keygate, browser session cookie + Redis (signIn configured)',
    keygate: true,
  },
  {
    id: 16,
    key: 'nginx-auth-floor',
    title: 'nginx auth_request to a node:http server answering 200',
    keygate: false,
  },
  {
    id: 17,
    key: 'nginx-auth-keygate',
    title: 'nginx auth_request to keygate /_keygate/auth (Bearer + Redis)',
    keygate: true,
  },
  {
    id: 18,
    key: 'keygate-one-worker',
    title: 'keygate, one process unpinned, Bearer + Redis (the twin of (8))',
    keygate: true,
  },
  ...TLS_CASES,
] as const

export type CaseSpec = (typeof CASES)[number]

/** Issue 6: requests/s of these cases against the bare undici proxy (3), in one run. */
export const TARGET_RATIOS = { 4: 0.95, 5: 0.9, 6: 0.85 } as const

/**
 * Issue 18: the CPU µs per request keygate may add over the bare proxy (3), measured side by side
 * (bench:paired); issue 14: a browser's session cookie (15) no more than Bearer (6) in the same run.
 */
export const ADDED_US_MAX = { 4: 10, 5: 10, 6: 15 } as const
export const SESSION_CASE = { id: 15, comparedWith: 6 } as const

/**
 * bench:paired's paced pass: each side's 64 connections together ask about this many requests a
 * second (wrk's delay() between answer and next request), a third to a half of what one core
 * serves here, so p99 is the latency of a request rather than the wait in a saturated queue.
 */
export const PACED_RPS = 3000

/** Issues 6 and 18: keygate's p99 latency minus the bare proxy's at 64 connections, at most this (ms). */
export const P99_ADDED_MAX_MS = 1

/** Issue 16: a limited case may cost at most this much of the bare proxy's rate more than its unlimited twin. */
export const RATE_LIMIT_BUDGET = { twins: { 10: 5, 11: 6 }, maxLoss: 0.1 } as const
export type CaseId = CaseSpec['id']

/** Issue 15: the identity assertion's cases beside their twins without it (bench:paired 5 13 6 14). */
export const ASSERTION_TWINS = { 13: 5, 14: 6 } as const

/**
 * Issue 18: the floor a case is paired with when it is not the bare proxy (3) — keygate behind nginx
 * auth_request (17) against the same nginx asking a server that decides nothing (16), ≥ 0.9 ×;
 * keygate's HTTPS (20) and HTTP/2 (22) against the bare proxy behind the same kind of listener.
 */
export const PAIRED_FLOORS: Readonly<Partial<Record<number, CaseId>>> = { 17: 16, 20: 23, 22: 24 }
export const FORWARD_AUTH_TARGET = 0.9
/** What bench:paired judges each case's ratio to its floor by (none yet for HTTPS and HTTP/2). */
export const PAIRED_TARGETS: Readonly<Partial<Record<number, number>>> = { ...TARGET_RATIOS, 17: FORWARD_AUTH_TARGET }

/** The ratios are taken against these; a selection of cases gets them added unless BENCH_BASELINES=0. */
export const BASELINE_IDS: readonly CaseId[] = [1, 3]

export interface Settings {
  readonly durationS: number
  readonly warmupS: number
  readonly connections: number
  readonly threads: number
  /** every case this many times, interleaved; the table shows medians */
  readonly rounds: number
  readonly quick: boolean
  readonly cases: readonly CaseSpec[]
  /** the selection added baselines the user did not name */
  readonly addedBaselines: readonly CaseId[]
  readonly redisUrl: string
  readonly logLevel: string
  readonly keepTemp: boolean
}

export const USAGE = `usage: npm run bench [-- CASE…]

CASE: a number 1-24, a range like 4-7, or a name (${CASES.map((c) => c.key).join(', ')}).
Without CASE every case runs. A selection also runs (1) and (3), the ratios' baselines,
unless BENCH_BASELINES=0.

environment:
  BENCH_DURATION=8     measured seconds per case (whole seconds: wrk's unit)
  BENCH_WARMUP=5       warm-up seconds per case, not measured (V8 needs 3-4 s under load to
                       optimise keygate's hot path; measuring earlier measures the JIT)
  BENCH_QUICK=1        smoke check: 1 s warm-up + 1 s measured per case
  BENCH_ROUNDS=1       run every case this many times, interleaved, and report medians
                       (e.g. BENCH_ROUNDS=2 BENCH_DURATION=5 for steadier ratios in ~4 min)
  BENCH_CONNECTIONS=64 wrk connections (one wrk thread)
  BENCH_REDIS_URL      Redis for the Bearer cases (default redis://127.0.0.1:6379; \`own\`: start a
                       private redis-server on the load CPU)
  BENCH_LOG_LEVEL=info keygate's logLevel (info = one log line per request, as in production)
  BENCH_PIN=0          no taskset pinning
  BENCH_KEEP=1         keep the temporary directory (configs, logs) and print where it is
`

function wholeSeconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 600)
    throw new Error(`${name}=${raw}: expected whole seconds (wrk takes no fractions), 0-600`)
  return n
}

function select(args: readonly string[]): CaseSpec[] {
  const ids = new Set<number>()
  for (const arg of args) {
    const range = arg.match(/^(\d+)-(\d+)$/)
    const byKey = CASES.find((c) => c.key === arg)
    if (range) for (let i = Number(range[1]); i <= Number(range[2]); i++) ids.add(i)
    else if (/^\d+$/.test(arg)) ids.add(Number(arg))
    else if (byKey) ids.add(byKey.id)
    else throw new Error(`unknown case "${arg}"`)
  }
  for (const id of ids) if (!CASES.some((c) => c.id === id)) throw new Error(`no case ${id} (1-${CASES.length})`)
  return CASES.filter((c) => ids.has(c.id))
}

export function readSettings(env: NodeJS.ProcessEnv, args: readonly string[]): Settings {
  const quick = env.BENCH_QUICK === '1'
  const named = args.length ? select(args) : [...CASES]
  const addedBaselines =
    args.length && env.BENCH_BASELINES !== '0' ? BASELINE_IDS.filter((id) => !named.some((c) => c.id === id)) : []
  const cases = CASES.filter((c) => named.includes(c) || addedBaselines.includes(c.id))
  const durationS = quick ? 1 : wholeSeconds(env, 'BENCH_DURATION', 8)
  if (durationS < 1) throw new Error('BENCH_DURATION must be at least 1')
  const rounds = quick ? 1 : Number(env.BENCH_ROUNDS || 1)
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20)
    throw new Error(`BENCH_ROUNDS=${env.BENCH_ROUNDS}: expected 1-20`)
  const connections = Number(env.BENCH_CONNECTIONS ?? 64)
  if (!Number.isInteger(connections) || connections < 1)
    throw new Error(`BENCH_CONNECTIONS=${env.BENCH_CONNECTIONS}: expected a positive integer`)
  return {
    durationS,
    warmupS: quick ? 1 : wholeSeconds(env, 'BENCH_WARMUP', 5),
    connections,
    threads: 1,
    rounds,
    quick,
    cases,
    addedBaselines,
    redisUrl: env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
    logLevel: env.BENCH_LOG_LEVEL || 'info',
    keepTemp: env.BENCH_KEEP === '1',
  }
}
