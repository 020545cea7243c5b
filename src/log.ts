import pino, { type Logger } from 'pino'

export type { Logger }

// Belt and braces: request lines are built from chosen fields only, but anything that
// ever logs a request or headers object must not leak credentials.
const REDACT = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]',
  'headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]',
  'password', '*.password', 'token', '*.token', 'secret', '*.secret', 'key', '*.key',
]

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
}

/** Paths may carry tokens (/user-token/verify/{token}, /app-token/{token}): log them without. */
export function redactPath(path: string): string {
  return path.replace(/(\/(?:user-token\/verify|app-token\/verify|app-token))\/[^/?]+/g, '$1/[redacted]')
}
