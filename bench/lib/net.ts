import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Proc } from './procs.js'

/** A port the kernel just handed out on 127.0.0.1 (closed again; the race is harmless on a bench box). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port from the kernel')
  return address.port
}

/**
 * Polls `url` until anything answers over HTTP. Fails early, with the process's last output,
 * when the process exits first (a missing module, a refused config).
 */
export async function waitForHttp(url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (!proc.isRunning()) {
      const tail = proc.logTail(6)
      throw new Error(`${proc.name} exited during start-up${tail ? `:\n${indent(tail)}` : ''}`)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) })
      await res.arrayBuffer()
      return
    } catch {
      /* not listening yet */
    }
    await sleep(100)
  }
  throw new Error(`${proc.name} did not answer ${url} within ${timeoutMs / 1000} s`)
}

export interface Probe {
  readonly status: number
  readonly body: string
  readonly headers: Headers
}

/** One request before the load: a case runs only if this answers 2xx. */
export async function probe(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Probe> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) })
  return { status: res.status, body: await res.text(), headers: res.headers }
}

/** "404 E1004 Not found" from a keygate refusal body, or the status and the start of the body */
export function describeAnswer(p: Probe): string {
  try {
    const json = JSON.parse(p.body) as { code?: unknown; message?: unknown }
    if (typeof json.code === 'string')
      return `${p.status} ${json.code} "${typeof json.message === 'string' ? json.message : ''}"`
  } catch {
    /* not JSON */
  }
  return `${p.status} ${JSON.stringify(p.body.slice(0, 80))}`
}

export const indent = (text: string, by = '    '): string =>
  text
    .split('\n')
    .map((l) => by + l)
    .join('\n')
