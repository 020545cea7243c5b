/**
 * A value now, or later. The hot path (anonymous routes, ApiKeys, cached tokens) answers
 * synchronously, which spares a promise and a trip through the microtask queue per stage.
 */
export type MaybePromise<T> = T | Promise<T>

/** `next(value)` at once when the value is ready, else when it settles. */
export function andThen<T, U>(value: MaybePromise<T>, next: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value)
}
