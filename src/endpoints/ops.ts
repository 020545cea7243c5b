import { refuse } from '../errors.js'
import type { EndpointHandler } from './types.js'

export const methodNotAllowed: EndpointHandler = (ctx) => {
  ctx.send(405, { status: false, code: 'E1004', message: 'Method not allowed' })
}

export const health: EndpointHandler = (ctx) => ctx.send(200, { status: true })

/** Ready only while the store answers: a gateway that cannot check tokens must not get traffic. */
export function createReady(ping: () => Promise<void>): EndpointHandler {
  return async (ctx) => {
    try {
      await ping()
      ctx.send(200, { status: true, store: 'ok' })
    } catch {
      ctx.refuse(refuse('E1006'))
    }
  }
}
