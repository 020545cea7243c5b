// Which MediaWiki Action API modules a request invokes, judged on the parameters exactly as
// PHP and MediaWiki will read them, or refused as ambiguous. Pure: no HTTP objects, no I/O.
//
// MediaWiki sources relied on (wikimedia/mediawiki, 1.4x):
//   includes/Request/WebRequest.php  $this->data = $_POST + $_GET (POST wins, cookies never);
//                                    getVal() discards arrays; interpolateTitle() is skipped for MW_API
//   includes/api/ApiMain.php         'action' => submodule, default 'help'
//   includes/api/ApiQuery.php        prop/list/meta: multi-valued submodules; export/exportnowrap: flags
//   includes/api/ApiPageSet.php      generator: a query submodule (ApiQuery, and every ApiPageSet user)
//   includes/api/Validator/ApiParamValidatorCallbacks.php  a raw value starting with U+001F is
//                                    split on U+001F before NFC normalisation
//   wikimedia/ParamValidator ParamValidator::explodeMultiValue ('' and "\x1f" are no values;
//                                    a leading U+001F selects U+001F as separator, else '|');
//                                    EnumDef::validate uses in_array(..., true): names are case-sensitive

import {
  FORM_URLENCODED,
  MULTIPART_FORM_DATA,
  parseMultipart,
  parseQueryString,
  parseUrlEncodedBody,
  phpPostContentType,
  type PhpParse,
  type PhpVar,
} from './php-params.js'
import { refused, type Refused } from '../errors.js'

/** The body media types PHP turns into $_POST (main/php_content_types.c); any other non-empty body is refused. */
export const FORM_CONTENT_TYPES: ReadonlySet<string> = new Set([FORM_URLENCODED, MULTIPART_FORM_DATA])

export interface ActionRequestInput {
  /** Raw query string, without the '?'. Must be what is forwarded upstream, byte for byte. */
  readonly query: string
  /**
   * The request method. PHP reads a body only for exactly `POST` (SAPI.c sapi_activate uses
   * strcmp). When omitted, a given body is treated as POST data.
   */
  readonly method?: string
  readonly contentType?: string
  /** PHP never decodes Content-Encoding but a front server may (mod_deflate): such bodies are refused. */
  readonly contentEncoding?: string
  /** The whole body, already bounded by the caller; required for POST (see needsBody). */
  readonly body?: Buffer
}

export type ActionRequestResult =
  { readonly ok: true; readonly action: string; readonly modules: readonly string[] } | Refused

/** Parameters that select modules: each must be unambiguous in every source. */
const SENSITIVE: ReadonlySet<string> = new Set([
  'action',
  'list',
  'prop',
  'meta',
  'generator',
  'export',
  'exportnowrap',
])

/**
 * What we accept as a module name. MediaWiki NFC-normalises non-ASCII values, so anything
 * beyond plain lower-case ASCII is refused rather than predicted.
 */
const MODULE_NAME = /^[a-z0-9_-]+$/

/** PHP would read the request otherwise than it looks, or not at all: E1030, ambiguous. */
const fail = (reason: string): Refused => refused('E1030', reason)

/**
 * Whether keygate must read the body to judge the request. PHP parses bodies only for POST;
 * for POST every body must be read: form bodies carry parameters and any other body must be
 * shown to be empty (it would otherwise be forwarded unjudged), whatever its content type.
 */
export function needsBody(method: string): boolean {
  return method === 'POST'
}

/** The sensitive parameters of one source (GET or POST), refusing arrays, repeats and files. */
function pickSensitive(vars: readonly PhpVar[], source: string): { ok: true; values: Map<string, string> } | Refused {
  const values = new Map<string, string>()
  for (const v of vars) {
    if (v.name.kind === 'dropped' || !SENSITIVE.has(v.name.key)) continue
    const key = v.name.key
    // A file part is not in $_POST, but a sensitive name on it can only mean confusion.
    if (v.isFile) return fail(`${source}: a file part is named ${key}`)
    if (v.name.kind === 'array') return fail(`${source}: ${key} uses array syntax`)
    if (values.has(key)) return fail(`${source}: ${key} appears more than once`)
    values.set(key, v.value)
  }
  return { ok: true, values }
}

const sameEntries = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)

/** $_POST as PHP would fill it, or a refusal. */
function readPost(input: ActionRequestInput): PhpParse {
  const body = input.body
  const isPost = input.method === undefined ? body !== undefined : input.method === 'POST'
  if (!isPost) {
    // PHP ignores it; keygate never judged it. Callers that follow needsBody() never get here.
    if (body !== undefined && body.length > 0) return fail('a body on a method PHP does not parse')
    return { ok: true, vars: [] }
  }
  if (body === undefined) return fail('POST body was not read')
  const encoding = input.contentEncoding?.trim().toLowerCase()
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity')
    return fail('Content-Encoding on an Action API body')
  const type = phpPostContentType(input.contentType)
  if (type === FORM_URLENCODED) return parseUrlEncodedBody(body)
  if (type === MULTIPART_FORM_DATA) return parseMultipart(body, input.contentType ?? '')
  // PHP leaves $_POST empty; a body we would forward but not judge is refused (fail closed).
  if (body.length > 0) return fail('Action API body is not a form')
  return { ok: true, vars: [] }
}

/** ParamValidator::explodeMultiValue, then our module-name check on every element (empty ones included). */
function moduleList(value: string): string[] | null {
  if (value === '' || value === '\x1f') return []
  const parts = value.startsWith('\x1f') ? value.slice(1).split('\x1f') : value.split('|')
  return parts.every((p) => MODULE_NAME.test(p)) ? parts : null
}

/**
 * The action and the modules a request invokes, as MediaWiki will see them. `modules` is
 * `[action]` for most actions; for action=query it is the `query+x` submodules, or `['query']`
 * when none is named. A `generator` is reported as `query+x` for every action, since the
 * ApiPageSet users (purge, watch, …) run query generators too.
 */
export function readActionRequest(input: ActionRequestInput): ActionRequestResult {
  const get = parseQueryString(input.query)
  if (!get.ok) return get
  const getSensitive = pickSensitive(get.vars, 'query')
  if (!getSensitive.ok) return getSensitive
  // A server configured with arg_separator.input = "&;" would split `a=1;action=edit` into two
  // variables. Whatever the configuration, the sensitive parameters must read the same.
  if (input.query.includes(';')) {
    const alt = parseQueryString(input.query, '&;')
    const altSensitive = alt.ok ? pickSensitive(alt.vars, 'query') : alt
    if (!altSensitive.ok || !sameEntries(altSensitive.values, getSensitive.values)) {
      return fail("query: ';' would change the module parameters under arg_separator.input")
    }
  }

  const post = readPost(input)
  if (!post.ok) return post
  const postSensitive = pickSensitive(post.vars, 'body')
  if (!postSensitive.ok) return postSensitive

  // WebRequest: $_POST + $_GET, POST wins. A disagreement is refused, not resolved.
  const params = new Map<string, string>()
  for (const key of SENSITIVE) {
    const g = getSensitive.values.get(key)
    const p = postSensitive.values.get(key)
    if (g !== undefined && p !== undefined && g !== p) return fail(`${key} differs between query and body`)
    const v = p ?? g
    if (v !== undefined) params.set(key, v)
  }

  const action = params.get('action') ?? 'help' // ApiMain's PARAM_DEFAULT
  if (!MODULE_NAME.test(action)) return fail('action is not a plain module name')

  const generator = params.get('generator')
  if (generator !== undefined && !MODULE_NAME.test(generator)) return fail('generator is not a plain module name')

  if (action !== 'query') {
    return { ok: true, action, modules: generator === undefined ? [action] : [action, `query+${generator}`] }
  }

  const modules = new Set<string>()
  for (const key of ['prop', 'list', 'meta']) {
    const value = params.get(key)
    if (value === undefined) continue
    const names = moduleList(value)
    if (!names) return fail(`${key} has a value that is not a plain module name`)
    for (const n of names) modules.add(`query+${n}`)
  }
  if (generator !== undefined) modules.add(`query+${generator}`)
  // ApiQuery's export flags are booleans: present (any value) means the XML dump of page text.
  if (params.has('export') || params.has('exportnowrap')) modules.add('query+export')
  return { ok: true, action, modules: modules.size > 0 ? [...modules] : ['query'] }
}

/**
 * Whether every module is on the allowlist. `query` listed allows every query submodule;
 * otherwise each `query+x` must be listed, and a bare action=query (`['query']`) is allowed
 * when `query` or at least one `query+…` entry is listed. An empty module list is never allowed.
 */
export function isAllowed(modules: readonly string[], allowed: ReadonlySet<string>): boolean {
  if (modules.length === 0) return false
  const anyQuerySub = (): boolean => [...allowed].some((a) => a.startsWith('query+'))
  return modules.every((m) => {
    if (allowed.has(m)) return true
    if (m === 'query') return anyQuerySub()
    if (m.startsWith('query+')) return allowed.has('query')
    return false
  })
}
