import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { errorBody, statusOf, type Refusal } from '../errors.js'
import { JSON_CONTENT_TYPE } from '../util/json-type.js'
import { bodyPending } from './request-body.js'

// Every refusal keygate writes goes out here: as an HTTP response, or straight onto a socket
// that has no response object (a parse error, an upgrade).

export const BODY_TIMED_OUT: Refusal = { code: 'E1030', status: 408, message: 'Request body timed out' }
export const REQUEST_TIMED_OUT: Refusal = { code: 'E1030', status: 408, message: 'Request timed out' }
export const HEADERS_TOO_LARGE: Refusal = { code: 'E1030', status: 431, message: 'Request headers too large' }
export const MALFORMED_REQUEST: Refusal = { code: 'E1030', message: 'Malformed request' }

/** What a refusal carries besides its code. */
export interface RefusalExtras {
  /** WWW-Authenticate, for a 401 */
  readonly challenge?: string | null
  /** further headers (RateLimit, the sign-in page's address) */
  readonly headers?: Readonly<Record<string, string>> | null
}

export function sendRefusal(res: ServerResponse, refusal: Refusal, requestId: string, extras?: RefusalExtras): void {
  // An answer already went out (a body timeout answered first): nothing more can be said.
  if (res.headersSent) return void res.destroy()
  const body = JSON.stringify(errorBody(refusal))
  const headers: Record<string, string> = {
    ...extras?.headers,
    'content-type': JSON_CONTENT_TYPE,
    'x-request-id': requestId,
    'cache-control': 'no-store',
    // without it Node sends the body chunked
    'content-length': String(Buffer.byteLength(body)),
  }
  if (extras?.challenge) headers['www-authenticate'] = extras.challenge
  if (refusal.retryAfterSec !== undefined) headers['retry-after'] = String(refusal.retryAfterSec)
  // A refused request whose body is still arriving: close rather than read (and discard) it all.
  // A request without a body is not `complete` yet while it is decided synchronously (the parser
  // marks it after the 'request' event): keep its connection, or every refusal costs a reconnect.
  // (HTTP/2 has no Connection header: the stream ends with the answer, the connection stays.)
  if (bodyPending(res.req) && res.req.httpVersionMajor < 2) headers.connection = 'close'
  res.writeHead(statusOf(refusal), headers)
  res.end(body)
}

/** A refusal written straight to a socket that has no ServerResponse (parse errors, upgrades), then closed. */
export function endSocketWithRefusal(
  socket: Duplex,
  refusal: Refusal,
  requestId: string,
  extras?: RefusalExtras,
): void {
  const body = JSON.stringify(errorBody(refusal))
  const status = statusOf(refusal)
  // the same Retry-After and extra (RateLimit) headers as sendRefusal
  const headers: Record<string, string> = { ...extras?.headers }
  if (extras?.challenge) headers['www-authenticate'] = extras.challenge
  if (refusal.retryAfterSec !== undefined) headers['retry-after'] = String(refusal.retryAfterSec)
  const lines = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Refused'}\r\ncontent-type: ${JSON_CONTENT_TYPE}\r\nx-request-id: ${requestId}\r\n${lines}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
  // http.Server sockets are half-open: end() alone would wait for a client that may never close.
  ;(socket as Socket).destroySoon?.()
}
