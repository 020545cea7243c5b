import { isTokenType, type TokenType } from '../principal.js'
import type { GatewayConfig } from '../config/schema.js'

// Suffit mounts /authorize once per token type (token_type => 'session' | 'access' | 'api');
// keygate's `tokenApi.authorize` does the same, and a route without a type reads the request's field.

/** The token type a request to one of the authorize paths asks for, or null (E1020). */
export function createTokenTypeOf(config: Pick<GatewayConfig, 'tokenApi'>) {
  const fixed = new Map(config.tokenApi.authorize.map((a) => [a.path, a.tokenType]))
  return (path: string, fields: Record<string, string>): TokenType | null => {
    const asked = fields.token_type || fields.type
    const routeType = fixed.get(path)
    // A field that names another type than the route's is a contradiction, not a choice.
    if (routeType) return asked && asked !== routeType ? null : routeType
    const type = asked || 'access'
    return isTokenType(type) ? type : null
  }
}
