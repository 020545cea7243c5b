import pino, { type Logger } from 'pino'
import type { ErrorCode } from './errors.js'
import type { Scheme } from './principal.js'

export type { Logger }

// Belt and braces: request lines are built from chosen fields only, but anything that
// ever logs a request or headers object must not leak credentials. No wildcard paths: they
// would be walked on every request line.
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'password',
  'token',
  'secret',
  'key',
]

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  // epoch-ms timestamps (pino's default): an ISO date string per line cost 2.5 % of a request's CPU
  return pino({ level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' } }, destination)
}

/**
 * stdout, buffered: lines are gathered and written 64 KiB at a time, or every 200 ms when fewer
 * arrive, where a write system call per line cost a fifth of a proxied request's CPU.
 * `flush` on shutdown writes what is left.
 */
export function createStdoutLog(level: string): { logger: Logger; flush: () => void } {
  const destination = pino.destination({ dest: 1, sync: false, maxWrite: 1024 * 1024, contentMode: 'buffer' })
  // in contentMode 'buffer' sonic-boom writes Buffers (its types name strings only)
  const batch = createLineBatch(destination as unknown as BufferSink)
  const timer = setInterval(() => batch.flush(), 200)
  timer.unref()
  return {
    logger: createLogger(level, batch),
    flush: () => {
      clearInterval(timer)
      batch.flush()
      destination.flushSync()
    },
  }
}

const BATCH_BYTES = 64 * 1024

interface BufferSink {
  write(chunk: Buffer): unknown
}

/**
 * Lines encoded one by one into a buffer that is written whole: joining them into one string
 * first, then encoding that for the write, cost a request 1.7 µs of its CPU (a tenth of what
 * keygate adds to a Bearer request); sonic-boom alone measured each line again (3.6 µs).
 */
function createLineBatch(destination: BufferSink) {
  let buffer = Buffer.allocUnsafe(BATCH_BYTES)
  let used = 0
  const flush = () => {
    if (used === 0) return
    destination.write(buffer.subarray(0, used))
    // the written buffer is the destination's until its write is done: the next lines take a new one
    buffer = Buffer.allocUnsafe(BATCH_BYTES)
    used = 0
  }
  return {
    write(line: string) {
      // UTF-8 takes at most 3 bytes per UTF-16 code unit
      const most = line.length * 3
      if (used + most > BATCH_BYTES) {
        flush()
        if (most > BATCH_BYTES) return void destination.write(Buffer.from(line))
      }
      used += buffer.write(line, used)
    },
    flush,
  }
}

/** The fields of the one line written per request. */
export interface RequestLine {
  readonly reqId: string
  readonly method: string
  /** already without tokens (redactPath) */
  readonly path: string
  readonly status: number
  readonly durationMs: number
  readonly decision: 'allow' | 'deny'
  readonly code: ErrorCode | undefined
  readonly scheme: Scheme | 'anonymous'
  readonly principal: string | undefined
  readonly route: string | undefined
  readonly clientIp: string | undefined
  readonly traceId: string | undefined
}

/** Characters JSON must escape in a string (and lone surrogates, which JSON.stringify escapes too). */
const NEEDS_ESCAPE = /["\\\x00-\x1f\ud800-\udfff]/

/** A JSON string: most values (paths, names, addresses) need no escaping, and skip JSON.stringify's pass. */
const jsonString = (value: string): string => (NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`)

const field = (key: string, value: string | undefined): string =>
  value === undefined ? '' : `,"${key}":${jsonString(value)}`

/**
 * The request line, in the shape pino writes (level, time, the logger's bindings, then the
 * fields), built as one string and handed to the logger's own destination: pino's generic
 * serialisation of the same object cost a tenth of a proxied request's CPU. Written only while
 * the logger's level lets info through, as with logger.info(). `decision`, `scheme` and `code`
 * are keygate's own words and the request id its own characters: written without a check.
 */
export function createRequestLog(logger: Logger): { enabled(): boolean; write(line: RequestLine): void } {
  const destination = (logger as unknown as Record<symbol, { write(s: string): void }>)[pino.symbols.streamSym]!
  const bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? ''
  const start = `{"level":${logger.levels.values.info},"time":`
  return {
    /** ask first: with request lines off (logLevel warn) the caller gathers no fields at all */
    enabled: () => logger.isLevelEnabled('info'),
    write: (l) =>
      destination.write(
        `${start}${Date.now()}${bindings},"req_id":"${l.reqId}","method":${jsonString(l.method)},"path":${jsonString(l.path)},"status":${l.status},"duration_ms":${Math.round(l.durationMs * 100) / 100},"decision":"${l.decision}"${l.code === undefined ? '' : `,"code":"${l.code}"`},"scheme":"${l.scheme}"${field('principal', l.principal)}${field('route', l.route)}${field('client_ip', l.clientIp)}${field('trace_id', l.traceId)}}\n`,
      ),
  }
}

const TOKEN_IN_PATH = /(\/(?:user-token\/verify|app-token\/verify|app-token))\/+[^/?]+/g
/** a run of letters and digits this long is a word in a long page title, or part of a secret */
const ALNUM_STRETCH = /[A-Za-z0-9]{12,}/
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g
const LONG_PIECE = /[A-Za-z0-9_-]{24,}/g
const HAS_DIGIT = /[0-9]/
const HAS_LETTER = /[A-Za-z]/

/** hex or base64url: long, digits and letters, and a long stretch without '_' or '-' (unlike Page_Title_2019) */
const looksLikeToken = (piece: string) => HAS_DIGIT.test(piece) && HAS_LETTER.test(piece) && ALNUM_STRETCH.test(piece)

/**
 * Paths may carry tokens (/user-token/verify/{token}, /app-token/{token}), in any spelling a
 * client chose: log them without, and without anything else token-shaped (JWTs, long hex or
 * base64url runs). Most paths have no long run of letters and digits and are returned as they are.
 */
export function redactPath(path: string): string {
  const out = path.includes('-token') ? path.replace(TOKEN_IN_PATH, '$1/[redacted]') : path
  if (!ALNUM_STRETCH.test(out)) return out
  return out
    .replace(JWT_SHAPED, '[redacted]')
    .replace(LONG_PIECE, (piece) => (looksLikeToken(piece) ? '[redacted]' : piece))
}
