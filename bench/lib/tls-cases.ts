import { existsSync, readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchContext, CaseOptions, Target } from './context.js'
import { Skip, startKeygate } from './keygate.js'
import { findExecutable, type Proc, type ProcessSet } from './procs.js'
import type { CaseSpec, TlsCaseId } from './settings.js'
import { startBareProxy, startNginxProxy } from './upstream.js'
import type { WrkLoad, WrkResult } from './wrk.js'

// Issue 17: keygate terminating TLS — HTTPS (HTTP/1.1, wrk) and HTTP/2 (h2load) — beside nginx
// terminating TLS in front of the same upstream, in the same run, and beside the bare proxy (3)
// behind Node's own listener (23, 24), the floor bench:paired pairs keygate with. All use one
// ECDSA P-256 certificate made for the run; neither load tool verifies it (loopback, nothing to protect).

/** h2load's clients and streams per client: 64 requests in flight, as wrk's 64 connections. */
const STREAMS_PER_CLIENT = 8

interface Certificate {
  readonly cert: string
  readonly key: string
}

/** The run's server certificate (self-signed, localhost and 127.0.0.1), made once with openssl. */
async function certificate(ctx: BenchContext): Promise<Certificate> {
  const cert = join(ctx.dir, 'tls.crt')
  const key = join(ctx.dir, 'tls.key')
  if (existsSync(cert) && existsSync(key)) return { cert, key }
  if (!findExecutable('openssl')) throw new Skip('openssl is not installed (apt-get install -y openssl)')
  const r = await ctx.procs.run({
    name: 'openssl',
    role: 'any',
    cmd: 'openssl',
    args: [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    timeoutMs: 30_000,
  })
  if (r.code !== 0) throw new Skip(`openssl could not make a certificate: ${r.stderr.trim().split('\n').pop() ?? ''}`)
  return { cert, key }
}

/** One GET over HTTPS that trusts the run's certificate; the status and the start of the body. */
function httpsGet(url: string, cert: Certificate, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(url, { headers, ca: readFileSync(cert.cert), timeout: 5_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.slice(0, 200) }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')))
    req.on('error', reject)
    req.end()
  })
}

const describe = (a: { status: number; body: string }) => `${a.status} ${JSON.stringify(a.body.slice(0, 80))}`

/** waitForHttp over HTTPS: polls until anything answers, failing early when the process exits. */
function waitForHttps(cert: Certificate) {
  return async (url: string, proc: Proc, timeoutMs: number): Promise<void> => {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline) {
      if (!proc.isRunning()) throw new Error(`${proc.name} exited during start-up:\n${proc.logTail(6)}`)
      if (
        await httpsGet(url, cert).then(
          () => true,
          () => false,
        )
      )
        return
      await sleep(100)
    }
    throw new Error(`${proc.name} did not answer ${url} within ${timeoutMs / 1000} s`)
  }
}

/**
 * h2load, writing its per-request logs into the run's directory, one file per run (bench:paired
 * runs two at once); a Skip when it is not installed.
 */
function h2loadTool(dir: string, name: string): LoadTool {
  if (!findExecutable('h2load')) throw new Skip('h2load is not installed (apt-get install -y nghttp2-client)')
  let runs = 0
  return (procs, _root, load) => runH2load(procs, join(dir, `h2load-${name}-${++runs}.log`), load)
}

type LoadTool = (procs: ProcessSet, root: string, load: WrkLoad) => Promise<WrkResult>

/** A case of TLS_CASES: what it puts under load, with its own load tool for HTTP/2 and its own check. */
export async function prepareTlsCase(ctx: BenchContext, spec: CaseSpec, opts: CaseOptions): Promise<Target> {
  const id = spec.id as TlsCaseId
  const http2 = id === 21 || id === 22 || id === 24
  const runLoad = http2 ? h2loadTool(ctx.dir, spec.key) : undefined
  const cert = await certificate(ctx)
  const path = id === 20 || id === 22 ? '/public/page' : '/bench/page'
  let origin: string
  let sut: Proc
  let notes: string[]
  if (id === 19 || id === 21) {
    if (!ctx.nginx) throw new Skip('nginx is not installed (apt-get install -y nginx)')
    ;({ origin, proc: sut } = await startNginxProxy(ctx.procs, ctx.dir, ctx.nginx, ctx.upstream, { ...cert, http2 }))
    notes = ['nginx, 1 worker, keepalive 64 to the upstream, ECDSA P-256']
  } else if (id === 23 || id === 24) {
    ;({ origin, proc: sut } = await startBareProxy(ctx.procs, ctx.dir, ctx.root, ctx.upstream, {
      nodeArgs: opts.nodeArgs,
      tls: { ...cert, http2 },
      waitFor: waitForHttps(cert),
    }))
    notes = [
      `undici Pool.stream, tsx, ${http2 ? 'http2.createSecureServer (allowHTTP1, compatibility API)' : 'https.createServer'}`,
      "keygate's cipher suites, ECDSA P-256",
    ]
  } else {
    const config = {
      upstream: ctx.upstream.origin,
      logLevel: ctx.settings.logLevel,
      routes: [{ path: '/public/', methods: ['GET', 'HEAD'], anonymous: true }],
      tls: { cert: cert.cert, key: cert.key, http2 },
    }
    const kg = await startKeygate(ctx, spec.key, config, {
      role: 'sut',
      nodeArgs: opts.nodeArgs,
      scheme: 'https',
      waitFor: waitForHttps(cert),
    })
    ;({ origin, proc: sut } = kg)
    notes = [ctx.runner.kind === 'dist' ? 'keygate from dist/' : 'keygate via tsx', 'memory store, ECDSA P-256']
  }
  const url = `${origin}${path}`
  const check = async () => describe(await httpsGet(url, cert))
  const first = await check().catch((err: Error) => err.message)
  if (!first.startsWith('2')) {
    await ctx.procs.stop(sut)
    throw new Skip(`GET ${path} over ${http2 ? 'HTTP/2' : 'HTTPS'} answers ${first} instead of 2xx`)
  }
  if (http2)
    notes.push(`h2load -c N/${STREAMS_PER_CLIENT} -m ${STREAMS_PER_CLIENT}: the same requests in flight as wrk's N`)
  return { url, headers: {}, sut, notes, ownsSut: true, runLoad, check }
}

/**
 * h2load in wrk's place: the same load shape (requests in flight, seconds) and the same figures,
 * the percentiles read from its per-request log. Paced (`delayMs`), each client is held to its
 * share of the rate wrk's connections would ask (`--rps`, requests a second per client).
 */
async function runH2load(procs: ProcessSet, log: string, load: WrkLoad): Promise<WrkResult> {
  const clients = Math.max(1, Math.round(load.connections / STREAMS_PER_CLIENT))
  const paced =
    load.delayMs === undefined
      ? []
      : [`--rps=${Math.max(1, Math.round((load.connections * 1000) / Math.max(1, load.delayMs) / clients))}`]
  const r = await procs.run({
    name: 'h2load',
    role: 'load',
    cmd: 'h2load',
    args: [
      '-c',
      String(clients),
      '-m',
      String(STREAMS_PER_CLIENT),
      '-t',
      String(load.threads),
      '-D',
      String(load.seconds),
      // h2load 1.52 in timing mode now and then never finishes when a client stalls: end such a client
      '--connection-inactivity-timeout=3',
      ...paced,
      `--log-file=${log}`,
      ...Object.entries(load.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
      load.url,
    ],
    timeoutMs: (load.seconds + 20) * 1_000,
  })
  const out = r.stdout
  const finished = out.match(/finished in ([\d.]+)(m?s), ([\d.]+) req\/s/)
  const counts = out.match(
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
  )
  const statuses = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/)
  if (r.code !== 0 || !finished || !counts || !statuses)
    throw new Error(`h2load failed (exit ${r.code}): ${(r.stderr || out).trim().slice(0, 400)}`)
  const durationS = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1)
  const done = Number(counts[3])
  const micros = readFileSync(log, 'utf8')
    .split('\n')
    .map((line) => line.split('\t'))
    .filter((cols) => cols.length === 3 && cols[1] !== '-1')
    .map((cols) => Number(cols[2]))
    .sort((a, b) => a - b)
  const at = (q: number) =>
    micros.length ? micros[Math.min(micros.length - 1, Math.floor(q * micros.length))]! / 1000 : 0
  const failed = Number(counts[5]) + Number(counts[6])
  const status = Number(statuses[3]) + Number(statuses[4])
  const timeout = Number(counts[7])
  return {
    requests: done,
    durationS,
    rps: Number(finished[3]),
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    p999Ms: at(0.999),
    maxMs: at(1),
    meanMs: micros.length ? micros.reduce((a, b) => a + b, 0) / micros.length / 1000 : 0,
    errors: { connect: 0, read: failed, write: 0, status, timeout, total: failed + status + timeout },
  }
}
