import type { Principal } from '../principal.js'
import { encodeGroupsHeader, encodeHeaderValue } from '../util/identity-value.js'
import { claimAt, isStringArray } from '../util/claims.js'
import { HOP_BY_HOP, SET_BY_GATEWAY } from '../util/header-names.js'

// identityHeaders.custom: free header names with templates such as "{username}" or
// "{claim:realm_access.roles}", compiled once per config. Every value goes through the one
// header encoding of identity values (util/identity-value.ts), so no user name, claim or wiki
// answer can put a control character into a header, and a group cannot forge another.

const PLACEHOLDER = /\{([a-z]+)(?::([^{}]*))?\}/g
const FIELDS = ['username', 'uid', 'name', 'email', 'groups', 'scheme'] as const
type Field = (typeof FIELDS)[number]
const CLAIM_PATH = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/
// Literal text of a template: printable ASCII, so that the template itself is a valid header value.
const LITERAL = /^[\x20-\x7e]*$/
// Names a mapping may not take: the request framing, the caller's credentials, and what keygate sets itself.
const RESERVED: ReadonlySet<string> = new Set([
  'authorization',
  'cookie',
  'content-length',
  'content-type',
  ...HOP_BY_HOP,
  ...SET_BY_GATEWAY,
])

type Part = { readonly text: string } | { readonly field: Field } | { readonly claim: string }

interface CompiledHeader {
  readonly name: string
  readonly parts: readonly Part[]
}

/** One set of custom headers (the global one, or a route's with its overrides). */
export type HeaderMapping = readonly CompiledHeader[]

/** What is wrong with a template, or null: for the config checks, with the header's key path. */
export function templateProblem(template: string): string | null {
  let rest = template
  for (const m of template.matchAll(PLACEHOLDER)) {
    const [whole, kind, arg] = m
    if (kind === 'claim') {
      if (arg === undefined || !CLAIM_PATH.test(arg)) return `{claim:…} needs a dotted claim path, not "${whole}"`
    } else if (arg !== undefined || !(FIELDS as readonly string[]).includes(kind!)) {
      return `unknown placeholder ${whole} (expected ${FIELDS.map((f) => `{${f}}`).join(', ')} or {claim:dotted.path})`
    }
    rest = rest.replace(whole, '')
  }
  if (/[{}]/.test(rest)) return 'a "{" or "}" that is not part of a placeholder'
  if (!LITERAL.test(rest)) return 'the text around placeholders must be printable ASCII'
  return null
}

/** Why a header name cannot be mapped (canonical name given), or null. */
export const reservedNameProblem = (canonical: string): string | null =>
  RESERVED.has(canonical) ? 'keygate sets or reads this header itself: it cannot carry a mapping' : null

export function compileMapping(custom: Readonly<Record<string, string>>): HeaderMapping {
  return Object.entries(custom).map(([name, template]) => ({ name, parts: compileTemplate(template) }))
}

function compileTemplate(template: string): Part[] {
  const parts: Part[] = []
  let last = 0
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (m.index > last) parts.push({ text: template.slice(last, m.index) })
    parts.push(m[1] === 'claim' ? { claim: m[2]! } : { field: m[1] as Field })
    last = m.index + m[0].length
  }
  if (last < template.length) parts.push({ text: template.slice(last) })
  return parts
}

/** The mapped headers of one caller; a header whose value comes out empty is left out. */
export function renderMapping(mapping: HeaderMapping, principal: Principal, out: Record<string, string>): void {
  for (const header of mapping) {
    let value = ''
    for (const part of header.parts)
      value +=
        'text' in part ? part.text : 'field' in part ? field(principal, part.field) : claim(principal, part.claim)
    if (value !== '') out[header.name] = value
  }
}

function field(p: Principal, f: Field): string {
  switch (f) {
    case 'username':
      return encodeHeaderValue(p.username)
    case 'uid':
      return String(p.uid)
    case 'name':
      return encodeHeaderValue(p.realName)
    case 'email':
      return encodeHeaderValue(p.email)
    case 'groups':
      return encodeGroupsHeader(p.groups)
    case 'scheme':
      return p.scheme
  }
}

/** A claim of an external issuer's token: strings encoded, lists as groups, numbers and booleans as text, anything else empty. */
function claim(p: Principal, path: string): string {
  const v = claimAt(p.claims, path)
  if (typeof v === 'string') return encodeHeaderValue(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (isStringArray(v)) return encodeGroupsHeader(v)
  return ''
}
