// keygate's own endpoint paths (default forwardAuth.path and tokenApi mounts), with what attackers
// appended to them: a proxy asking about its app's path must never get "anonymous" from these.

const MOUNTS = ['/mws/v1', '/w/rest.php/mws/v1']

export const OWN_ENDPOINT_PATHS: readonly string[] = [
  '/_keygate/health',
  '/_keygate/ready',
  '/_keygate/metrics',
  '/_keygate/auth',
  '/.well-known/jwks.json',
  '/api/authorize',
  '/api/logout',
  '/api/refresh',
  ...MOUNTS.flatMap((m) => [
    `${m}/user-token/generate`,
    `${m}/user-token/verify`,
    `${m}/app-token/generate`,
    `${m}/app-token/verify`,
    `${m}/app-token`,
  ]),
]

/** '' is the endpoint itself; the others are the app's paths under it. */
export const SUFFIXES: readonly string[] = ['', '/', '/x', '/x?title=Secret_Page&action=raw', '/secret/page', '/foo/']
export const METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE']

export interface Probe {
  readonly method: string
  readonly target: string
  /** the endpoint itself (keygate may answer it), not a path under it */
  readonly exact: boolean
}

export const OWN_ENDPOINT_PROBES: readonly Probe[] = OWN_ENDPOINT_PATHS.flatMap((path) =>
  SUFFIXES.flatMap((suffix) => METHODS.map((method) => ({ method, target: path + suffix, exact: suffix === '' }))),
)

/** Runs fn over items, `width` at a time, in order of the items. */
export async function eachLimited<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker))
  return out
}
