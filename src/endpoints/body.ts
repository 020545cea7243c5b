import type { IncomingMessage } from 'node:http'
import { refuse, type Refusal } from '../errors.js'
import { parseMultipart } from '../mediawiki/php-params.js'

/**
 * keygate's own endpoints (/api/authorize, /api/refresh, the token endpoints) take a few short
 * fields; their bodies are refused past this bound before any parsing, so a deeply nested or huge
 * JSON document cannot hold the event loop.
 */
export const OWN_ENDPOINT_MAX_BODY_BYTES = 8 * 1024

const TOO_LARGE = refuse('E1030', { message: 'Request body is larger than the gateway accepts' })

/** Reads a body into memory up to maxBytes; over the bound → E1030 and nothing more is read. */
export function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | Refusal> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) return Promise.resolve(TOO_LARGE)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
        cleanup()
        req.pause()
        resolve(TOO_LARGE)
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(Buffer.concat(chunks, size))
    }
    const onError = () => {
      cleanup()
      resolve(refuse('E1030', { message: 'Request body was cut off' }))
    }
    const cleanup = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('aborted', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('aborted', onError)
  })
}

/** Parses a small JSON, urlencoded or multipart body into string fields; anything else → null. */
export function parseFormFields(body: Buffer, contentType: string | undefined): Record<string, string> | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  const text = body.toString('utf8')
  if (type === 'application/json') {
    try {
      const value: unknown = JSON.parse(text || '{}')
      if (!value || typeof value !== 'object' || Array.isArray(value)) return null
      return Object.fromEntries(
        Object.entries(value)
          .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))
          .map(([k, v]) => [k, String(v)]),
      )
    } catch {
      return null
    }
  }
  if (type === 'application/x-www-form-urlencoded' || type === '') {
    const out: Record<string, string> = {}
    for (const [k, v] of new URLSearchParams(text)) out[k] = v
    return out
  }
  if (type === 'multipart/form-data') {
    const parsed = parseMultipart(body, contentType!)
    if (!parsed.ok) return null
    return Object.fromEntries(parsed.vars.filter((v) => !v.isFile).map((v) => [v.rawName, v.value]))
  }
  return null
}
