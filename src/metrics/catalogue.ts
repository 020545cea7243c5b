import cluster from 'node:cluster'
import { Counter, Gauge, Registry } from 'prom-client'
import type { AuditEvent, Observer, RequestEvent, StoreEvent } from '../observe.js'
import { createHistogram, createTally } from './series.js'
import { createWorkerSide } from './cluster.js'

// The catalogue of Prometheus metrics fed by one gateway's Observer (observe.ts): the request path only emits,
// this module counts.
//
// Each gateway gets its OWN Registry: a test process runs several gateways, and the global
// registry would mix their numbers (and refuse the second registration of a name).
// Label values are bounded by construction: decision, code, scheme, kind and result are fixed
// sets, route names come from the config, token types and store ops from the code. Never a
// path, a user name or an IP.

export interface MetricsOptions {
  /** hash of the config now serving, for keygate_config_info{hash} */
  readonly configHash: () => string
  /** the store heartbeat's verdict, for keygate_store_healthy */
  readonly storeHealthy: () => boolean
  /** the gateway's events: this registry counts them and nothing else */
  readonly observer: Observer
  /**
   * In a node:cluster worker: render() asks the primary for the numbers of ALL workers
   * (the primary must run createClusterMetrics()). Default: this process alone.
   */
  readonly cluster?: boolean
  /** how long render() waits for the primary in cluster mode */
  readonly clusterTimeoutMs?: number
}

export interface Metrics {
  /** Prometheus text exposition format */
  render(): Promise<string>
  readonly contentType: string
  /** stops listening to the observer; render() still answers with the numbers so far */
  close(): void
}

// Seconds; a gateway answers refusals in well under a millisecond, and upstreams take longer.
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

const DEFAULT_CLUSTER_TIMEOUT_MS = 5_000

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry()

  const requests = createTally(registry, {
    name: 'keygate_requests_total',
    help: 'Requests by decision, error code (none when allowed), scheme and route',
    labelNames: ['decision', 'code', 'scheme', 'route'],
  })
  const requestDuration = createHistogram(registry, {
    name: 'keygate_request_duration_seconds',
    help: 'Whole request, from the first byte read to the response end',
    buckets: REQUEST_BUCKETS,
  })
  const upstreamDuration = createHistogram(registry, {
    name: 'keygate_upstream_duration_seconds',
    help: 'Time spent waiting on the upstream, for requests that went there',
    buckets: UPSTREAM_BUCKETS,
  })
  const upstreamErrors = createTally(registry, {
    name: 'keygate_upstream_errors_total',
    help: 'Upstream unreachable (502) or timed out (504)',
    labelNames: ['kind'],
  })
  const rateLimited = createTally(registry, {
    name: 'keygate_rate_limit_requests_total',
    help: 'Requests counted by a rate limit, by limit name and result (allowed, limited, store-down)',
    labelNames: ['limit', 'result'],
  })
  const storeOps = createTally(registry, {
    name: 'keygate_store_ops_total',
    help: 'Store round trips by operation and outcome',
    labelNames: ['op', 'ok'],
  })
  new Gauge({
    name: 'keygate_store_healthy',
    help: '1 while the store heartbeat succeeds, else 0',
    registers: [registry],
    aggregator: 'min',
    collect() {
      this.set(opts.storeHealthy() ? 1 : 0)
    },
  })
  // Audit events are rare: plain prom-client counters.
  const tokensIssued = new Counter({
    name: 'keygate_tokens_issued_total',
    help: 'Tokens issued by type (access, session, refresh, api, user, app)',
    labelNames: ['type'] as const,
    registers: [registry],
  })
  const tokensRevoked = new Counter({
    name: 'keygate_tokens_revoked_total',
    help: 'Tokens and sessions revoked by type',
    labelNames: ['type'] as const,
    registers: [registry],
  })
  const loginFailures = new Counter({
    name: 'keygate_login_failures_total',
    help: 'Failed /api/authorize logins',
    registers: [registry],
  })
  const lockouts = new Counter({
    name: 'keygate_lockouts_total',
    help: 'Login lockouts started, by scope (user or ip)',
    labelNames: ['scope'] as const,
    registers: [registry],
  })
  const apiKeyRefusals = new Counter({
    name: 'keygate_apikey_refusals_total',
    help: 'ApiKey callers refused by CIDR, path or Action API module, by configured key name',
    labelNames: ['key', 'reason'] as const,
    registers: [registry],
  })
  const reloads = new Counter({
    name: 'keygate_config_reloads_total',
    help: 'Config reloads by result (ok or failed)',
    labelNames: ['result'] as const,
    registers: [registry],
  })
  new Gauge({
    name: 'keygate_config_info',
    help: 'The loaded config, by the hash of its source (value 1)',
    labelNames: ['hash'] as const,
    registers: [registry],
    aggregator: 'max',
    collect() {
      // reset first: after a reload only the new hash is shown
      this.reset()
      this.set({ hash: opts.configHash() }, 1)
    },
  })

  // Series with a fixed label set start at 0, so rate() and alerts see them before the first event.
  for (const kind of ['unreachable', 'timeout']) upstreamErrors.inc([kind], 0)
  for (const result of ['ok', 'failed']) reloads.inc({ result }, 0)
  for (const scope of ['user', 'ip']) lockouts.inc({ scope }, 0)

  const onRequest = (e: RequestEvent): void => {
    requests.inc([e.decision, e.code ?? 'none', e.scheme, e.route])
    requestDuration.observe(e.durationMs / 1000)
    if (e.upstreamMs !== null) upstreamDuration.observe(e.upstreamMs / 1000)
    if (e.upstreamError !== null) upstreamErrors.inc([e.upstreamError])
    if (e.rateLimit) rateLimited.inc([e.rateLimit.limit, e.rateLimit.result])
  }
  const onStore = (e: StoreEvent): void => {
    storeOps.inc([e.op, e.ok ? 'true' : 'false'])
  }
  const onAudit = (e: AuditEvent): void => {
    switch (e.kind) {
      case 'token.issued':
        tokensIssued.inc({ type: e.type })
        break
      case 'token.revoked':
        tokensRevoked.inc({ type: e.type })
        break
      case 'login.failed':
        loginFailures.inc()
        break
      case 'login.lockout':
        lockouts.inc({ scope: e.scope })
        break
      case 'apikey.refused':
        apiKeyRefusals.inc({ key: e.keyName, reason: e.reason })
        break
      case 'config.reloaded':
        reloads.inc({ result: e.ok ? 'ok' : 'failed' })
        break
    }
  }
  const unlisten = [opts.observer.onRequest(onRequest), opts.observer.onStore(onStore), opts.observer.onAudit(onAudit)]

  let render = (): Promise<string> => registry.metrics()
  let stopWorker = (): void => {}
  if (opts.cluster && cluster.isWorker) {
    const worker = createWorkerSide(registry, opts.clusterTimeoutMs ?? DEFAULT_CLUSTER_TIMEOUT_MS)
    render = worker.render
    stopWorker = worker.close
  }

  let closed = false
  return {
    render: () => render(),
    contentType: registry.contentType,
    close() {
      if (closed) return
      closed = true
      for (const stop of unlisten) stop()
      stopWorker()
    },
  }
}
