export interface Clock {
  /** epoch milliseconds */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

export interface ManualClock extends Clock {
  advance(ms: number): void
}

export function createManualClock(startMs = 0): ManualClock {
  let t = startMs
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}
