const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const DURATION = /^(\d+)(ms|s|m|h|d)$/

/** "30s" → 30000; null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text.trim())
  if (!m) return null
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]
}

const UNIT_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const
const SIZE = /^(\d+)\s*(b|kb|mb|gb)$/i

/** "16KB" → 16384; null when the text is not a size. */
export function parseByteSize(text: string): number | null {
  const m = SIZE.exec(text.trim())
  if (!m) return null
  return Number(m[1]) * UNIT_BYTES[m[2]!.toLowerCase() as keyof typeof UNIT_BYTES]
}
