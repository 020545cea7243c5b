import pino from 'pino'
import type { AuditEvent, Observer } from './observe.js'

// The audit trail: one JSON line per audit event of its gateway's Observer, on its own pino stream so that it can
// go to a file an operator keeps (or ships) apart from the request log. Events carry jtis and
// token hashes only; the redact list is a second line of defence should a field ever carry a
// credential by mistake.

export type AuditSetting = false | true | { readonly file: string }

export interface AuditOptions {
  /** the config's `audit`: off, stdout, or a file (appended to, directories created) */
  readonly audit: AuditSetting
  /** the gateway whose events are written; none for a trail written only by write() (the admin command line) */
  readonly observer?: Observer
  /** where the lines go instead (tests, or a host app); overrides `audit`'s target */
  readonly destination?: pino.DestinationStream
  /** who writes the trail, for lines an admin command writes (`source: "admin-cli"`) */
  readonly source?: string
}

export interface Audit {
  /** writes one event directly (the admin command line, which has no gateway publishing for it) */
  write(event: AuditEvent): void
  /** stops listening and flushes the file */
  close(): void
}

const REDACT = [
  'token',
  'password',
  'secret',
  'key',
  'value',
  'envelope',
  'authorization',
  'cookie',
  '*.token',
  '*.password',
  '*.secret',
  '*.key',
  '*.value',
  '*.envelope',
  '*.authorization',
  '*.cookie',
]

export function createAudit(opts: AuditOptions): Audit {
  if (opts.audit === false && !opts.destination) return { write() {}, close() {} }
  // Synchronous writes: audit events are rare (issuance, revocation, refusals, reloads) and a
  // line must not be lost in a buffer when the process is killed right after a revocation.
  const destination =
    opts.destination ??
    pino.destination({
      dest: opts.audit === true || opts.audit === false ? 1 : opts.audit.file,
      sync: true,
      mkdir: true,
      append: true,
    })
  const logger = pino(
    {
      base: opts.source ? { source: opts.source } : undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      // the level says nothing in an audit line; `audit: true` tells the lines apart on a shared stdout
      formatters: { level: () => ({ audit: true }) },
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    destination,
  )

  const write = (event: AuditEvent): void => {
    logger.info({ ...event })
  }
  const unlisten = opts.observer?.onAudit(write)

  let closed = false
  return {
    write,
    close() {
      if (closed) return
      closed = true
      unlisten?.()
      // stdout belongs to the process; only a file of our own is closed
      if (!opts.destination && typeof opts.audit === 'object') {
        const sonic = destination as ReturnType<typeof pino.destination>
        sonic.flushSync()
        sonic.end()
      }
    },
  }
}
