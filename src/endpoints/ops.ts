import { refuse } from '../errors.js'
import type { EndpointHandler } from './types.js'

export const methodNotAllowed: EndpointHandler = (ctx) => {
  // a refusal (counted and logged as deny), with the status the method deserves
  ctx.refuse({ code: 'E1004', status: 405, message: 'Method not allowed' })
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
