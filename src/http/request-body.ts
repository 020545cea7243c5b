import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'

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
