import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import { refused, type Refused } from '../errors.js'

/**
 * Whether the request declares a body at all (chunked, or a non-zero Content-Length); over
 * HTTP/2, whether its HEADERS frame left the stream open for DATA (no Content-Length needed).
 */
export const hasBody = (req: IncomingMessage): boolean =>
  req.httpVersionMajor === 2
    ? !(req as unknown as Http2ServerRequest).stream.endAfterHeaders
    : req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')

/**
 * Whether body bytes may still be on the wire. A bodiless request is not `complete` yet while
 * its 'request' event runs (the parser finishes it right after), so `complete` alone would
 * count every synchronous answer as sent "before the body".
 */
export const bodyPending = (req: IncomingMessage): boolean => !req.complete && hasBody(req)

const TOO_LARGE = refused('E1030', 'body_too_large', { message: 'Request body is larger than the gateway accepts' })
const CUT_OFF = refused('E1030', 'body_cut_off', { message: 'Request body was cut off' })

/** A request body read whole, or why it could not be. */
export type BodyRead = { readonly ok: true; readonly body: Buffer } | Refused

/** Reads a body into memory up to maxBytes; over the bound → E1030 and nothing more is read. */
export function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<BodyRead> {
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
      resolve({ ok: true, body: Buffer.concat(chunks, size) })
    }
    const onError = () => {
      cleanup()
      resolve(CUT_OFF)
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
