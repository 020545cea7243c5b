const PERIOD_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const
const RATE = /^(\d+)\/(s|m|h)$/

/** A rate as configured: `count` requests per `periodMs`. */
export interface Rate {
  readonly count: number
  readonly periodMs: number
}

/** "10/s" → { count: 10, periodMs: 1000 }; null when the text is not a rate. */
export function parseRate(text: string): Rate | null {
  const m = RATE.exec(text.trim())
  if (!m) return null
  return { count: Number(m[1]), periodMs: PERIOD_MS[m[2] as keyof typeof PERIOD_MS] }
}
