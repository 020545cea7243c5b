// The contract's error table (CONTRACT §6), in one place. Messages are fixed strings:
// never put a token, a key or client input into them.
export const ERRORS = {
  E1000: { status: 401, message: 'No token or session' },
  E1001: { status: 401, message: 'Invalid or expired token.' },
  E1002: { status: 401, message: 'Token revoked' },
  E1003: { status: 401, message: 'Session not authorized or expired' },
  E1004: { status: 403, message: 'Access denied' },
  E1005: { status: 503, message: 'Store not ready' },
  E1006: { status: 503, message: 'Cannot reach the store' },
  E1020: { status: 400, message: 'Incorrect token type' },
  E1021: { status: 401, message: 'No username' },
  E1022: { status: 401, message: 'No password' },
  E1023: { status: 400, message: 'RSA decode error' },
  E1024: { status: 500, message: 'Cannot generate JWT' },
  E1025: { status: 500, message: 'Cannot store token' },
  E1026: { status: 401, message: 'Incorrect username or password' },
  E1030: { status: 400, message: 'Request refused as ambiguous' },
  E1031: { status: 429, message: 'Too many attempts' },
  E1032: { status: 502, message: 'Upstream unreachable' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** A refusal as a value: the code, and optionally a status or message that the table allows to vary. */
export interface Refusal {
  readonly code: ErrorCode
  /** Overrides the table's status where the contract gives two (E1032: 502 or 504; verify endpoints: 400). */
  readonly status?: number
  /** A more precise fixed explanation (never client input). */
  readonly message?: string
  /** Seconds, for 429. */
  readonly retryAfterSec?: number
}

export const refuse = (code: ErrorCode, extra?: Omit<Refusal, 'code'>): Refusal => ({ code, ...extra })

/**
 * The "not ok" of every step that can refuse (`{ ok: true, … } | Refused`): the refusal to answer
 * with, and for logs, metrics and tests only a fixed reason (never client input).
 */
export interface Refused {
  readonly ok: false
  readonly refusal: Refusal
  readonly reason?: string
}

export const refused = (code: ErrorCode, reason?: string, extra?: Omit<Refusal, 'code'>): Refused =>
  reason === undefined
    ? { ok: false, refusal: refuse(code, extra) }
    : { ok: false, refusal: refuse(code, extra), reason }

export const statusOf = (r: Refusal): number => r.status ?? ERRORS[r.code].status

export const errorBody = (r: Refusal) => ({
  status: false as const,
  code: r.code,
  message: r.message ?? ERRORS[r.code].message,
})

/** Thrown only at the edges (start-up, CLI); the request path passes Refusal values (StoreUnavailableError aside). */
export class KeygateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    options?: ErrorOptions,
  ) {
    super(message ?? ERRORS[code].message, options)
    this.name = 'KeygateError'
  }
}

/**
 * The store (or the user directory) could not be reached: thrown by the store, whose every caller
 * would otherwise pass it on by hand. It carries its code, E1006, like any refusal.
 */
export class StoreUnavailableError extends KeygateError {
  declare readonly code: 'E1006'
  constructor(options?: ErrorOptions) {
    super('E1006', 'store unavailable', options)
    this.name = 'StoreUnavailableError'
  }
}

const STORE_UNAVAILABLE = refuse('E1006')

/**
 * What an error thrown on the request path answers: the store's outage is E1006 like any refusal;
 * anything else is a failure (null), answered E1005 and logged.
 */
export const refusalFor = (err: unknown): Refusal | null =>
  err instanceof StoreUnavailableError ? STORE_UNAVAILABLE : null
