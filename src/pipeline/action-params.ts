import type { IncomingHttpHeaders } from 'node:http'
import { refused, type Refused } from '../errors.js'
import type { BodyRead } from '../http/request-body.js'
import type { AccessLimits } from '../principal.js'
import { headerValues } from '../util/raw-headers.js'
import { isAllowed, needsBody, readActionRequest } from '../mediawiki/action-api.js'

export interface ActionParamsInput {
  readonly method: string
  readonly query: string
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
  readonly limits: AccessLimits
  /** null in forward-auth mode, where the body cannot be seen */
  readonly readBody: (() => Promise<BodyRead>) | null
  readonly postBodies: 'refuse' | 'queryOnly'
}

export type ActionParamsResult = { readonly ok: true; readonly body: Buffer | null } | Refused

const FORWARD_AUTH_POST = refused('E1004', 'post_body', {
  message: 'Forward-auth cannot see a POST body: send Action API parameters in the query string',
})
const AMBIGUOUS = refused('E1030', 'two content headers')
const NOT_ALLOWED = refused('E1004', 'module')

/**
 * Judges the Action API modules a limited caller invokes, from exactly what PHP will hand
 * MediaWiki. Reads the (bounded) body only when PHP would parse it; the body read is replayed
 * unchanged to the upstream.
 */
export async function checkActionParams(input: ActionParamsInput): Promise<ActionParamsResult> {
  // Node keeps the first of two Content-Type headers; the server in front of PHP may keep the other.
  if (
    headerValues(input.rawHeaders, 'content-type').length > 1 ||
    headerValues(input.rawHeaders, 'content-encoding').length > 1
  ) {
    return AMBIGUOUS
  }
  const contentType = input.headers['content-type']
  const contentEncoding = input.headers['content-encoding']
  let body: Buffer | null = null
  // queryOnly (opted into): the body cannot be seen, so the request is judged as the query alone.
  let judgedMethod = input.method
  if (needsBody(input.method)) {
    if (!input.readBody) {
      if (input.postBodies === 'refuse') return FORWARD_AUTH_POST
      judgedMethod = 'GET'
    } else {
      const read = await input.readBody()
      if (!read.ok) return read
      body = read.body
    }
  }
  const parsed = readActionRequest({
    query: input.query,
    method: judgedMethod,
    contentType,
    contentEncoding,
    body: body ?? undefined,
  })
  if (!parsed.ok) return parsed
  if (!isAllowed(parsed.modules, input.limits.actionModules)) return NOT_ALLOWED
  return { ok: true, body }
}
