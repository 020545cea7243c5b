import type { IpMatcher } from '../util/cidr.js'
import type { Metrics } from '../metrics/catalogue.js'
import type { EndpointHandler } from './types.js'

/** GET /_keygate/metrics: the gateway's own numbers, to the addresses `metrics.allow` lets in. */
export function createMetricsEndpoint(metrics: Metrics | null, allowed: IpMatcher): EndpointHandler {
  return async (ctx) => {
    if (!metrics) return ctx.refuse({ code: 'E1004', status: 404, message: 'Metrics are disabled (metrics.enabled)' })
    if (!allowed(ctx.client.clientIp)) return ctx.refuse({ code: 'E1004' })
    const text = await metrics.render()
    ctx.res.writeHead(200, {
      'content-type': metrics.contentType,
      'cache-control': 'no-store',
      'x-request-id': ctx.requestId,
      'content-length': String(Buffer.byteLength(text)),
    })
    ctx.res.end(text)
  }
}
