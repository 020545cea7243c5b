import { refused, type Refused } from '../errors.js'
// PHP's own parsing of request variables, replayed so that keygate judges the parameters
// MediaWiki will actually receive. Where PHP's behaviour is odd we either copy it exactly
// or refuse the request; we never guess.
//
// Strings here are "binary strings": one UTF-16 unit per byte (latin1), because PHP works on
// bytes and a multi-byte decoding could merge or split what PHP keeps apart.
//
// Sources (php-src, PHP 8.x):
//   main/php_variables.c  php_default_treat_data, add_post_var, php_register_variable_ex
//   ext/standard/url.c    php_url_decode
//   main/rfc1867.c        rfc1867_post_handler, multipart_buffer_*, php_ap_getword(_conf)
//   main/SAPI.c           sapi_read_post_data (content-type selection)

/** PHP's default max_input_vars: past it PHP silently drops variables, so we refuse instead. */
const PHP_MAX_INPUT_VARS = 1000

/** Part header lines stay far below rfc1867.c's 5 KiB line buffer (FILLUNIT), past which PHP splits lines. */
const MAX_PART_HEADER_LINE = 2048

export const FORM_URLENCODED = 'application/x-www-form-urlencoded'
export const MULTIPART_FORM_DATA = 'multipart/form-data'

/** Where a variable lands in $_GET / $_POST after php_register_variable_ex. */
export type PhpName =
  | { readonly kind: 'scalar'; readonly key: string }
  | { readonly kind: 'array'; readonly key: string }
  | { readonly kind: 'dropped' }

export interface PhpVar {
  /** The name after url-decoding (urlencoded) or header parsing (multipart), before PHP's mangling. */
  readonly rawName: string
  readonly name: PhpName
  /** The decoded value; '' for file parts (their content goes to $_FILES). */
  readonly value: string
  /** A multipart part with a `filename` parameter: PHP puts it in $_FILES, never $_POST. */
  readonly isFile: boolean
}

export type PhpParse = { readonly ok: true; readonly vars: readonly PhpVar[] } | Refused

/** PHP would read the request otherwise than it looks, or not at all: E1030, ambiguous. */
const fail = (reason: string): Refused => refused('E1030', reason)

const isHexDigit = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)

/**
 * php_url_decode: '+' is a space, %XX with two hex digits is a byte, and anything else (a lone
 * '%', '%zz', '%4' at the end) is kept literally.
 */
export function phpUrlDecode(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s
  const out: string[] = []
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x2b) {
      out.push(' ')
    } else if (c === 0x25 && i + 2 < s.length && isHexDigit(s.charCodeAt(i + 1)) && isHexDigit(s.charCodeAt(i + 2))) {
      out.push(String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16)))
      i += 2
    } else {
      out.push(s[i]!)
    }
  }
  return out.join('')
}

/**
 * php_register_variable_ex's name handling (PHP 8):
 * - the name is a C string: it ends at the first NUL (callers refuse such names rather than rely on this);
 * - leading spaces (only 0x20) are skipped;
 * - in the base name, ' ' and '.' become '_', up to the first '[';
 * - a '[' with a ']' anywhere after it makes an array (the key is the base name);
 * - an unmatched '[' becomes '_' and, since PHP 8, so does every ' ', '.', '[' after it;
 * - an empty base name, or one that mangling turned into a __Host- / __Secure- prefix, is dropped.
 */
export function manglePhpName(input: string): PhpName {
  const nul = input.indexOf('\0')
  const name = nul === -1 ? input : input.slice(0, nul)
  let start = 0
  while (name.charCodeAt(start) === 0x20) start++
  const stripped = name.slice(start)
  const bracket = stripped.indexOf('[')
  const base = (bracket === -1 ? stripped : stripped.slice(0, bracket)).replace(/[ .]/g, '_')
  if (base.startsWith('__Host-') && !stripped.startsWith('__Host-')) return { kind: 'dropped' }
  if (base.startsWith('__Secure-') && !stripped.startsWith('__Secure-')) return { kind: 'dropped' }
  if (base.length === 0) return { kind: 'dropped' }
  if (bracket === -1) return { kind: 'scalar', key: base }
  if (stripped.indexOf(']', bracket + 1) !== -1) return { kind: 'array', key: base }
  return { kind: 'scalar', key: `${base}_${stripped.slice(bracket + 1).replace(/[ .[]/g, '_')}` }
}

/** One `name[=value]` segment, decoded as PHP does: split at the first '=', then decode each side. */
function segmentVar(segment: string): PhpVar | null {
  const eq = segment.indexOf('=')
  const rawName = phpUrlDecode(eq === -1 ? segment : segment.slice(0, eq))
  // The name is later read with strlen(): a NUL would silently cut it (act%00x → act). Never guess.
  if (rawName.includes('\0')) return null
  const value = eq === -1 ? '' : phpUrlDecode(segment.slice(eq + 1))
  return { rawName, name: manglePhpName(rawName), value, isFile: false }
}

/** The query's or the body's variables, in order; every segment counts towards max_input_vars. */
function segmentVars(segments: readonly string[], where: 'query' | 'body'): PhpParse {
  if (segments.length > PHP_MAX_INPUT_VARS) return fail(`more ${where} variables than PHP max_input_vars`)
  const vars: PhpVar[] = []
  for (const s of segments) {
    const v = segmentVar(s)
    if (!v) return fail(`a ${where} parameter name contains NUL`)
    vars.push(v)
  }
  return { ok: true, vars }
}

/**
 * $_GET from the raw query string (php_default_treat_data, PARSE_GET). PHP tokenises with
 * strtok() on arg_separator.input ('&' by default), so empty tokens vanish and do not count
 * towards max_input_vars. `separators` exists only so a caller can check what a server
 * configured with `arg_separator.input = "&;"` would see.
 *
 * The query must be printable ASCII without '#': that is all a valid request-target carries,
 * and it keeps the string/byte mapping exact.
 */
export function parseQueryString(query: string, separators = '&'): PhpParse {
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x23) return fail('query string has a character outside printable ASCII')
  }
  const pieces =
    separators === '&' ? query.split('&') : query.split(new RegExp(`[${separators.replace(/[\\\]^-]/g, '\\$&')}]`))
  const tokens = pieces.filter((t) => t.length > 0)
  return segmentVars(tokens, 'query')
}

/**
 * $_POST from an application/x-www-form-urlencoded body (add_post_var): split on '&' only
 * (arg_separator.input does not apply to bodies). Unlike the query, an empty segment is
 * still a variable (with an empty, hence dropped, name) and counts towards max_input_vars;
 * only the end of the body after a trailing '&' does not.
 */
export function parseUrlEncodedBody(body: Buffer): PhpParse {
  const text = body.toString('latin1')
  if (text.length === 0) return { ok: true, vars: [] }
  const segments = text.split('&')
  if (segments[segments.length - 1] === '') segments.pop()
  return segmentVars(segments, 'body')
}

const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32))

/**
 * The media type PHP uses to pick a POST handler (sapi_read_post_data): ASCII-lower-cased and
 * cut at the first ';', ',' or space. Only `application/x-www-form-urlencoded` and
 * `multipart/form-data` fill $_POST. Undefined when there is no Content-Type at all.
 */
export function phpPostContentType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined
  const cut = contentType.search(/[;, ]/)
  return asciiLower(cut === -1 ? contentType : contentType.slice(0, cut))
}

// RFC 2046 bchars without space and ',' (PHP ends an unquoted boundary at ',' or ';').
const BOUNDARY = /^[A-Za-z0-9'()+_\-./:=?]{1,70}$/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The boundary of a multipart/form-data Content-Type, accepted only where PHP cannot read it
 * differently. rfc1867.c takes the first "boundary" substring anywhere in the header (searched
 * case-sensitively, and only when absent case-insensitively), then the first '=' after it, then
 * up to '"' (quoted) or ',' / ';'. So we require `multipart/form-data` directly followed by `;`
 * or the end, then `; name=value` parameters only, exactly one of them named boundary, and
 * PHP's substring search landing on that parameter's name (Chrome's `----WebKitFormBoundary…`
 * values are fine: the case-sensitive search finds the lower-case name first).
 */
export function multipartBoundary(contentType: string): { ok: true; boundary: string } | Refused {
  if (asciiLower(contentType.slice(0, MULTIPART_FORM_DATA.length)) !== MULTIPART_FORM_DATA)
    return fail('not multipart/form-data')
  let offset = MULTIPART_FORM_DATA.length
  let boundary: string | undefined
  let boundaryAt = -1
  while (offset < contentType.length) {
    const m = /^;[ \t]*([^=;]*)=("[^"]*"|[^;"]*)(?=;|$)/.exec(contentType.slice(offset))
    if (!m) return fail('multipart Content-Type parameters are not plain name=value pairs')
    const [whole, name = '', rawValue = ''] = m
    if (!TOKEN.test(name)) return fail('multipart Content-Type has an odd parameter name')
    const value = rawValue.startsWith('"') ? rawValue.slice(1, -1) : rawValue
    if (asciiLower(name) === 'boundary') {
      if (boundary !== undefined) return fail('multipart Content-Type names a boundary twice')
      if (!BOUNDARY.test(value)) return fail('multipart boundary has odd characters')
      boundary = value
      boundaryAt = offset + whole.indexOf(name)
    } else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z/=: ]*$/.test(value)) {
      return fail('multipart Content-Type has an odd parameter value')
    }
    offset += whole.length
  }
  if (boundary === undefined) return fail('multipart Content-Type has no boundary parameter')
  const phpAt = contentType.includes('boundary')
    ? contentType.indexOf('boundary')
    : asciiLower(contentType).indexOf('boundary')
  if (phpAt !== boundaryAt) return fail('PHP would read the boundary from another place in the Content-Type')
  return { ok: true, boundary }
}

// A parameter value inside Content-Disposition. Quoted: no '"' or '\' (PHP's getword and
// substring_conf treat backslashes differently from each other and from RFC 7578), no control
// bytes. Unquoted: PHP's getword_conf reads up to whitespace; we allow only plain token bytes.
const CD_PARAM =
  /^;[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)=("[^"\\\x00-\x08\x0a-\x1f\x7f]*"|[A-Za-z0-9!#$%&*+\-.^_`|~[\]]+)(?=;|$)/

type Disposition = { ok: true; name: string; filename: string | undefined } | Refused

/**
 * Content-Disposition of a part, held to the subset that rfc1867.c and RFC 7578 read alike:
 * `form-data` then `; name=...` and optionally `; filename=...`, each once. PHP matches the
 * parameter names case-insensitively and ignores anything else, so `name*=` / `filename*=`
 * would be silently skipped by PHP (a `filename*` part would land in $_POST): refused.
 */
function parseDisposition(value: string): Disposition {
  if (asciiLower(value.slice(0, 9)) !== 'form-data') return fail('part is not form-data')
  let rest = value.slice(9)
  let name: string | undefined
  let filename: string | undefined
  while (rest.length > 0) {
    const m = CD_PARAM.exec(rest)
    if (!m) return fail('part Content-Disposition is not plain name=value pairs')
    const [whole, rawKey = '', rawValue = ''] = m
    const key = asciiLower(rawKey)
    const quoted = rawValue.startsWith('"')
    const v = quoted ? rawValue.slice(1, -1) : rawValue
    if (key === 'name') {
      if (name !== undefined) return fail('part has two name parameters')
      if (v.length === 0 || /['\t]/.test(v)) return fail('part name is empty or has quotes or tabs')
      name = v
    } else if (key === 'filename') {
      if (filename !== undefined) return fail('part has two filename parameters')
      filename = v
    } else {
      return fail('part Content-Disposition has a parameter PHP would not read the same way')
    }
    rest = rest.slice(whole.length)
  }
  if (name === undefined) return fail('part has no name')
  return { ok: true, name, filename }
}

type PartHeaders = { ok: true; disposition: string } | Refused

/**
 * The header block of one part. PHP splits lines at LF, glues lines starting with whitespace
 * onto the previous header, skips lines without ':', and takes the first header of a name.
 * We accept only CRLF lines without folding, with Content-Disposition exactly once and at
 * most one Content-Type (which PHP reads only for files); anything else, notably
 * Content-Transfer-Encoding, which PHP ignores but a sender means, is refused.
 */
function parsePartHeaders(block: string): PartHeaders {
  let disposition: string | undefined
  let sawType = false
  for (const line of block.split('\r\n')) {
    if (line.length > MAX_PART_HEADER_LINE) return fail('part header line too long')
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) return fail('part header has control characters')
    const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)$/.exec(line)
    if (!m) return fail('part header line is not `Name: value`')
    const [, rawName = '', value = ''] = m
    if (/[ \t]$/.test(value)) return fail('part header value has trailing whitespace')
    const name = asciiLower(rawName)
    if (name === 'content-disposition') {
      if (disposition !== undefined) return fail('part has two Content-Disposition headers')
      disposition = value
    } else if (name === 'content-type') {
      if (sawType) return fail('part has two Content-Type headers')
      if (asciiLower(value).startsWith('multipart/')) return fail('nested multipart part')
      sawType = true
    } else {
      return fail('part has a header other than Content-Disposition / Content-Type')
    }
  }
  return disposition === undefined ? fail('part has no Content-Disposition') : { ok: true, disposition }
}

/**
 * $_POST (and the names of $_FILES entries) from an already-buffered multipart/form-data body.
 *
 * Framing is held to the one shape where rfc1867.c and a strict reader agree: the body starts
 * with `--B CRLF` (no preamble: PHP scans any preamble line by line for the boundary), every
 * occurrence of `--B` anywhere is a delimiter at the start of a line (PHP ends a value at the
 * first "\n--B", even inside a longer word, and when it skips a file part it looks for a line
 * equal to `--B` in the file's content), every delimiter is followed by CRLF or by `--`, the
 * closing one is last and only an optional CRLF may follow (PHP keeps scanning after it for
 * more `--B` lines).
 */
export function parseMultipart(body: Buffer, contentType: string): PhpParse {
  const b = multipartBoundary(contentType)
  if (!b.ok) return b
  const text = body.toString('latin1')
  // An empty body gives PHP nothing to find; nothing is registered.
  if (text.length === 0) return { ok: true, vars: [] }
  const delimiter = `--${b.boundary}`
  if (!text.startsWith(`${delimiter}\r\n`)) return fail('multipart body does not start with its boundary')

  const vars: PhpVar[] = []
  let pos = 0 // at a delimiter
  for (;;) {
    const after = pos + delimiter.length
    if (text.startsWith('--', after)) {
      const tail = text.slice(after + 2)
      if (tail !== '' && tail !== '\r\n') return fail('data after the closing multipart boundary')
      return { ok: true, vars }
    }
    if (!text.startsWith('\r\n', after)) return fail('multipart boundary not followed by CRLF')
    const partStart = after + 2
    const next = text.indexOf(delimiter, partStart)
    if (next === -1) return fail('multipart body has no closing boundary')
    if (next < partStart + 2 || text.slice(next - 2, next) !== '\r\n') return fail('multipart boundary inside a part')
    if (vars.length >= PHP_MAX_INPUT_VARS) return fail('more multipart parts than PHP max_input_vars')

    const part = text.slice(partStart, next - 2)
    const headerEnd = part.startsWith('\r\n') ? -1 : part.indexOf('\r\n\r\n')
    if (headerEnd === -1) return fail('multipart part has no headers or no blank line after them')
    const headers = parsePartHeaders(part.slice(0, headerEnd))
    if (!headers.ok) return headers
    const cd = parseDisposition(headers.disposition)
    if (!cd.ok) return cd
    const isFile = cd.filename !== undefined
    vars.push({
      rawName: cd.name,
      name: manglePhpName(cd.name),
      value: isFile ? '' : part.slice(headerEnd + 4),
      isFile,
    })
    pos = next
  }
}
