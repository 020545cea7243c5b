import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  FORM_CONTENT_TYPES,
  isAllowed,
  needsBody,
  readActionRequest,
  type ActionRequestInput,
} from '../src/mediawiki/action-api.js'
import {
  manglePhpName,
  multipartBoundary,
  parseMultipart,
  parseQueryString,
  parseUrlEncodedBody,
  phpPostContentType,
  phpUrlDecode,
} from '../src/mediawiki/php-params.js'

const FORM = 'application/x-www-form-urlencoded'
const B = '----keygateBoundary7MA4YWxk'
const MP = `multipart/form-data; boundary=${B}`

type Part = { name?: string; disposition?: string; filename?: string; headers?: string[]; value?: string }

/** A well-formed multipart body; `disposition` / `headers` let a row write its own (hostile) part head. */
function multipart(parts: Part[], boundary = B): Buffer {
  const chunks = parts.map((p) => {
    const cd =
      p.disposition ?? `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`
    const head = p.headers ?? [`Content-Disposition: ${cd}`]
    return `--${boundary}\r\n${head.join('\r\n')}\r\n\r\n${p.value ?? ''}\r\n`
  })
  return Buffer.from(`${chunks.join('')}--${boundary}--\r\n`, 'latin1')
}

const get = (query: string): ActionRequestInput => ({ method: 'GET', query })
const form = (body: string, query = '', contentType = FORM): ActionRequestInput => ({
  method: 'POST',
  query,
  contentType,
  body: Buffer.from(body, 'latin1'),
})
const mp = (parts: Part[], query = '', contentType = MP): ActionRequestInput => ({
  method: 'POST',
  query,
  contentType,
  body: multipart(parts),
})
const raw = (body: string, query = '', contentType = MP): ActionRequestInput => ({
  method: 'POST',
  query,
  contentType,
  body: Buffer.from(body, 'latin1'),
})

// The ApiKey of the brief: opensearch and query+search only.
const ALLOWED = new Set(['opensearch', 'query+search'])

type Row = {
  name: string
  input: ActionRequestInput
  // undefined: refused as ambiguous (readActionRequest ok: false)
  action?: string
  modules?: string[]
  allowed?: boolean
}

const rows: Row[] = [
  // --- benign ---------------------------------------------------------------------------------
  {
    name: 'GET opensearch',
    input: get('action=opensearch&search=Foo&format=json'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'POST form opensearch',
    input: form('action=opensearch&search=Foo'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'POST multipart opensearch',
    input: mp([
      { name: 'action', value: 'opensearch' },
      { name: 'search', value: 'Foo' },
    ]),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'GET and POST agree',
    input: form('action=opensearch', 'action=opensearch'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'action in query, other params in body',
    input: form('search=Foo', 'action=opensearch'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'query+search',
    input: get('action=query&list=search&srsearch=x'),
    action: 'query',
    modules: ['query+search'],
    allowed: true,
  },
  { name: 'no action is help', input: get('search=Foo'), action: 'help', modules: ['help'], allowed: false },
  { name: 'empty query is help', input: get(''), action: 'help', modules: ['help'], allowed: false },
  {
    name: 'form with charset parameter',
    input: form('action=opensearch', '', 'application/x-www-form-urlencoded;charset=utf-8'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'upper-case form content type (PHP lower-cases it)',
    input: form('action=edit', '', 'APPLICATION/X-WWW-FORM-URLENCODED'),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  {
    name: "content type cut at ',' (PHP reads it as a form)",
    input: form('action=edit', '', 'APPLICATION/X-WWW-FORM-URLENCODED, text/plain'),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  {
    name: 'JSON content type with an empty body',
    input: { method: 'POST', query: 'action=opensearch', contentType: 'application/json', body: Buffer.alloc(0) },
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'POST without content type or body',
    input: { method: 'POST', query: 'action=opensearch', body: Buffer.alloc(0) },
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'multipart with a file part',
    input: mp([
      { name: 'action', value: 'opensearch' },
      { name: 'file', filename: 'a.txt', value: 'action=edit' },
    ]),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'multipart repeated non-sensitive name',
    input: mp([
      { name: 'action', value: 'opensearch' },
      { name: 'x', value: '1' },
      { name: 'x', value: '2' },
    ]),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'multipart unquoted name (PHP accepts it)',
    input: mp([{ disposition: 'form-data; name=action', value: 'edit' }]),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  {
    name: 'multipart NAME= is name for PHP',
    input: mp([{ disposition: 'form-data; NAME="action"', value: 'edit' }]),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  {
    name: 'multipart with a part Content-Type',
    input: mp([
      {
        headers: ['Content-Disposition: form-data; name="action"', 'Content-Type: text/plain; charset=UTF-8'],
        value: 'opensearch',
      },
    ]),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'quoted multipart boundary',
    input: {
      method: 'POST',
      query: '',
      contentType: `multipart/form-data; boundary="${B}"`,
      body: multipart([{ name: 'action', value: 'opensearch' }]),
    },
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'multipart boundary after charset',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; charset=utf-8; boundary=${B}`),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  { name: 'empty multipart body', input: raw(''), action: 'help', modules: ['help'], allowed: false },

  // --- action --------------------------------------------------------------------------------
  { name: 'action=edit', input: get('action=edit'), action: 'edit', modules: ['edit'], allowed: false },
  { name: 'repeated action', input: get('action=opensearch&action=edit') },
  { name: 'repeated identical action', input: get('action=opensearch&action=opensearch') },
  { name: 'action[]=', input: get('action[]=opensearch') },
  { name: 'action[x]=', input: get('action[x]=opensearch') },
  { name: 'action%5B%5D (decoded before mangling)', input: get('action%5B%5D=opensearch') },
  {
    name: 'action[ with no ] is action_',
    input: get('action[=edit'),
    action: 'help',
    modules: ['help'],
    allowed: false,
  },
  {
    name: 'act%69on decodes to action',
    input: get('act%69on=edit'),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  { name: 'action. mangles to action_', input: get('action.=edit'), action: 'help', modules: ['help'], allowed: false },
  { name: 'a.ction mangles to a_ction', input: get('a.ction=edit'), action: 'help', modules: ['help'], allowed: false },
  { name: 'raw space in a query is refused', input: get(' action=edit') },
  { name: '+action: leading space dropped by PHP', input: get('+action=edit&action=opensearch') },
  {
    name: '%20action: leading space dropped by PHP',
    input: get('%20action=edit'),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  {
    name: 'leading space in a body name',
    input: form(' action=edit'),
    action: 'edit',
    modules: ['edit'],
    allowed: false,
  },
  { name: 'act+ion mangles to act_ion', input: get('act+ion=edit'), action: 'help', modules: ['help'], allowed: false },
  { name: 'NUL in a name (PHP would cut it to action)', input: get('action%00x=edit') },
  { name: 'NUL in a body name', input: form('action%00=edit') },
  {
    name: '%zz in a name stays literal',
    input: get('act%zzion=edit'),
    action: 'help',
    modules: ['help'],
    allowed: false,
  },
  {
    name: 'action%zz is not action',
    input: get('action%zz=edit&action=opensearch'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  { name: 'empty action', input: get('action=') },
  { name: 'action without =', input: get('action') },
  { name: 'module names are case-sensitive', input: get('action=OpenSearch') },
  { name: 'non-ASCII action', input: get('action=opensearch%C3%A9') },
  { name: 'U+001F action (not multi-valued)', input: get('action=%1Fopensearch') },
  { name: "';' is not a separator: one odd value", input: get('action=opensearch;action=edit') },
  { name: "';' hiding a second name", input: get('search=1;action=edit&action=opensearch') },
  {
    name: "harmless ';' in a value",
    input: get('action=opensearch&search=a;b'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: "';' in a body is data (PHP splits bodies on '&' only)",
    input: form('action=opensearch&search=a;action=edit'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  { name: '# in a query', input: get('action=opensearch#x') },
  { name: 'raw non-ASCII in a query', input: get('action=opensearch&search=é') },

  // --- GET / POST precedence -----------------------------------------------------------------
  { name: 'POST action=edit over GET action=opensearch', input: form('action=edit', 'action=opensearch') },
  {
    name: 'multipart action=edit over GET action=opensearch',
    input: mp([{ name: 'action', value: 'edit' }], 'action=opensearch'),
  },
  { name: 'POST list differs from GET list', input: form('list=allusers', 'action=query&list=search') },
  { name: 'POST repeats action', input: form('action=opensearch&action=edit') },
  { name: 'POST action[] ', input: form('action[]=edit', 'action=opensearch') },

  // --- query submodules ----------------------------------------------------------------------
  {
    name: 'list=search|allusers',
    input: get('action=query&list=search|allusers'),
    action: 'query',
    modules: ['query+search', 'query+allusers'],
    allowed: false,
  },
  {
    name: 'list=%7C-encoded pipe',
    input: get('action=query&list=search%7Callusers'),
    action: 'query',
    modules: ['query+search', 'query+allusers'],
    allowed: false,
  },
  {
    name: 'list=U+001F form',
    input: get('action=query&list=%1Fsearch%1Fallusers'),
    action: 'query',
    modules: ['query+search', 'query+allusers'],
    allowed: false,
  },
  {
    name: 'list=U+001F single',
    input: get('action=query&list=%1Fsearch'),
    action: 'query',
    modules: ['query+search'],
    allowed: true,
  },
  { name: 'U+001F form keeps | inside values', input: get('action=query&list=%1Fsearch|allusers') },
  { name: 'list= (no values)', input: get('action=query&list='), action: 'query', modules: ['query'], allowed: true },
  {
    name: 'list=U+001F alone (no values)',
    input: get('action=query&list=%1F'),
    action: 'query',
    modules: ['query'],
    allowed: true,
  },
  { name: 'empty element in list', input: get('action=query&list=search||allusers') },
  { name: 'trailing | in list', input: get('action=query&list=search|') },
  { name: 'upper-case submodule', input: get('action=query&list=Search') },
  {
    name: 'prop=info',
    input: get('action=query&prop=info&titles=Main_Page'),
    action: 'query',
    modules: ['query+info'],
    allowed: false,
  },
  {
    name: 'meta=siteinfo',
    input: get('action=query&meta=siteinfo'),
    action: 'query',
    modules: ['query+siteinfo'],
    allowed: false,
  },
  {
    name: 'generator + prop',
    input: get('action=query&generator=search&gsrsearch=x&prop=info'),
    action: 'query',
    modules: ['query+info', 'query+search'],
    allowed: false,
  },
  {
    name: 'generator=search alone',
    input: get('action=query&generator=search&gsrsearch=x'),
    action: 'query',
    modules: ['query+search'],
    allowed: true,
  },
  { name: 'generator with | is not a module', input: get('action=query&generator=search|allpages') },
  { name: 'generator in U+001F form', input: get('action=query&generator=%1Fsearch') },
  {
    name: 'generator on a pageset action',
    input: get('action=purge&generator=allpages'),
    action: 'purge',
    modules: ['purge', 'query+allpages'],
    allowed: false,
  },
  {
    name: 'export flag',
    input: get('action=query&list=search&export'),
    action: 'query',
    modules: ['query+search', 'query+export'],
    allowed: false,
  },
  {
    name: 'exportnowrap flag',
    input: get('action=query&titles=X&exportnowrap=1'),
    action: 'query',
    modules: ['query+export'],
    allowed: false,
  },
  { name: 'repeated list', input: get('action=query&list=search&list=allusers') },
  { name: 'list[]', input: get('action=query&list[]=search') },
  {
    name: 'bare action=query',
    input: get('action=query&titles=X'),
    action: 'query',
    modules: ['query'],
    allowed: true,
  },
  {
    name: 'list on another action is not a module',
    input: get('action=opensearch&prop=x|y'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },

  // --- content types -------------------------------------------------------------------------
  {
    name: 'JSON body',
    input: {
      method: 'POST',
      query: 'action=opensearch',
      contentType: 'application/json',
      body: Buffer.from('{"action":"edit"}'),
    },
  },
  {
    name: 'text/plain body',
    input: { method: 'POST', query: 'action=opensearch', contentType: 'text/plain', body: Buffer.from('action=edit') },
  },
  {
    name: 'body without content type',
    input: { method: 'POST', query: 'action=opensearch', body: Buffer.from('action=edit') },
  },
  {
    name: 'content type with a leading space (PHP: empty type)',
    input: form('action=opensearch', '', ' application/x-www-form-urlencoded'),
  },
  {
    name: 'content type with a tab (PHP does not cut there)',
    input: form('action=opensearch', '', 'application/x-www-form-urlencoded\t'),
  },
  { name: 'gzip body', input: { ...form('action=opensearch'), contentEncoding: 'gzip' } },
  {
    name: 'identity encoding is fine',
    input: { ...form('action=opensearch'), contentEncoding: 'identity' },
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  { name: 'POST whose body was not read', input: { method: 'POST', query: 'action=opensearch', contentType: FORM } },
  {
    name: 'GET with a body',
    input: { method: 'GET', query: 'action=opensearch', contentType: FORM, body: Buffer.from('action=edit') },
  },
  {
    name: 'PUT form body (PHP ignores it; keygate did not judge it)',
    input: { method: 'PUT', query: 'action=opensearch', contentType: FORM, body: Buffer.from('action=edit') },
  },

  // --- multipart framing ---------------------------------------------------------------------
  {
    name: 'multipart: missing boundary',
    input: mp([{ name: 'action', value: 'opensearch' }], '', 'multipart/form-data'),
  },
  {
    name: 'multipart: two boundaries',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; boundary=${B}; boundary=other`),
  },
  {
    name: 'multipart: boundary substring in another parameter',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; xboundary=other; boundary=${B}`),
  },
  {
    name: 'multipart: boundary with a space',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; boundary=${B} x`),
  },
  {
    name: 'multipart: boundary with odd characters',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; boundary=${B}<>`),
  },
  {
    name: 'multipart: space around =',
    input: mp([{ name: 'action', value: 'opensearch' }], '', `multipart/form-data; boundary =${B}`),
  },
  {
    name: 'multipart: file part named action',
    input: mp([{ name: 'action', filename: 'x.txt', value: 'edit' }], 'action=opensearch'),
  },
  {
    name: 'multipart: file part named export',
    input: mp([{ name: 'export', filename: 'x.xml', value: '' }], 'action=query&list=search'),
  },
  {
    name: 'multipart: file part named action[]',
    input: mp([{ name: 'action[]', filename: 'x.txt', value: 'edit' }], 'action=opensearch'),
  },
  {
    name: 'multipart: file part named .action mangles to _action (fine)',
    input: mp([{ name: 'a.ction', filename: 'x.txt', value: 'edit' }], 'action=opensearch'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
  {
    name: 'multipart: duplicate action parts',
    input: mp([
      { name: 'action', value: 'opensearch' },
      { name: 'action', value: 'edit' },
    ]),
  },
  {
    name: 'multipart: action and  action',
    input: mp([
      { name: 'action', value: 'opensearch' },
      { name: ' action', value: 'edit' },
    ]),
  },
  { name: 'multipart: name*=', input: mp([{ disposition: "form-data; name*=UTF-8''action", value: 'edit' }]) },
  {
    name: 'multipart: filename*= (PHP would put it in $_POST)',
    input: mp([{ disposition: 'form-data; name="action"; filename*=UTF-8\'\'x', value: 'edit' }]),
  },
  {
    name: 'multipart: two name parameters',
    input: mp([{ disposition: 'form-data; name="search"; name="action"', value: 'edit' }]),
  },
  { name: 'multipart: backslash in name', input: mp([{ disposition: 'form-data; name="act\\"ion"', value: 'edit' }]) },
  {
    name: 'multipart: backslash in filename',
    input: mp([{ disposition: 'form-data; filename="a\\\\"; name="action"', value: 'edit' }]),
  },
  {
    name: 'multipart: single-quoted name (PHP reads it, RFC does not)',
    input: mp([{ disposition: "form-data; name='action'", value: 'edit' }]),
  },
  { name: 'multipart: no name', input: mp([{ disposition: 'form-data; filename="a.txt"', value: 'x' }]) },
  { name: 'multipart: not form-data', input: mp([{ disposition: 'attachment; name="action"', value: 'edit' }]) },
  {
    name: 'multipart: unknown parameter',
    input: mp([{ disposition: 'form-data; name="action"; size=3', value: 'edit' }]),
  },
  {
    name: 'multipart: Content-Transfer-Encoding',
    input: mp([
      {
        headers: ['Content-Disposition: form-data; name="action"', 'Content-Transfer-Encoding: base64'],
        value: 'ZWRpdA==',
      },
    ]),
  },
  {
    name: 'multipart: two Content-Disposition headers',
    input: mp([
      {
        headers: ['Content-Disposition: form-data; name="search"', 'Content-Disposition: form-data; name="action"'],
        value: 'edit',
      },
    ]),
  },
  {
    name: 'multipart: folded header',
    input: mp([{ headers: ['Content-Disposition: form-data;', ' name="action"'], value: 'edit' }]),
  },
  { name: 'multipart: no headers', input: raw(`--${B}\r\n\r\nedit\r\n--${B}--\r\n`) },
  {
    name: 'multipart: LF line endings',
    input: raw(`--${B}\nContent-Disposition: form-data; name="action"\n\nedit\n--${B}--\n`),
  },
  {
    name: 'multipart: preamble',
    input: raw(`junk\r\n--${B}\r\nContent-Disposition: form-data; name="action"\r\n\r\nopensearch\r\n--${B}--\r\n`),
  },
  {
    name: 'multipart: epilogue that PHP would keep parsing',
    input: raw(
      `--${B}\r\nContent-Disposition: form-data; name="action"\r\n\r\nopensearch\r\n--${B}--\r\n--${B}\r\nContent-Disposition: form-data; name="list"\r\n\r\nallusers\r\n--${B}--\r\n`,
    ),
  },
  {
    name: 'multipart: no closing boundary',
    input: raw(`--${B}\r\nContent-Disposition: form-data; name="action"\r\n\r\nopensearch\r\n`),
  },
  {
    name: 'multipart: boundary text inside a value',
    input: raw(`--${B}\r\nContent-Disposition: form-data; name="search"\r\n\r\nx--${B}\r\n--${B}--\r\n`),
  },
  {
    name: 'multipart: delimiter glued to text (PHP needs \\n--B)',
    input: raw(
      `--${B}\r\nContent-Disposition: form-data; name="search"\r\n\r\nab--${B}\r\nContent-Disposition: form-data; name="action"\r\n\r\nopensearch\r\n--${B}--\r\n`,
    ),
  },
  {
    name: 'multipart: delimiter with transport padding',
    input: raw(`--${B}  \r\nContent-Disposition: form-data; name="action"\r\n\r\nopensearch\r\n--${B}--\r\n`),
  },
  {
    name: 'multipart: boundary prefix inside a file (PHP cuts at \\n--B)',
    input: raw(
      `--${B}\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\nabc\r\n--${B}x\r\n--${B}--\r\n`,
    ),
  },
  {
    name: 'multipart: NUL in a header',
    input: mp([{ disposition: 'form-data; name="action\u0000x"', value: 'edit' }]),
  },
  {
    name: 'multipart: header with a space before the colon',
    input: mp([{ headers: ['Content-Disposition : form-data; name="action"'], value: 'edit' }]),
  },
  {
    name: 'multipart: nested multipart part',
    input: mp([
      {
        headers: ['Content-Disposition: form-data; name="x"', 'Content-Type: multipart/mixed; boundary=zz'],
        value: '',
      },
    ]),
  },
  { name: 'multipart: action[x]', input: mp([{ name: 'action[x]', value: 'edit' }]) },
  {
    name: 'multipart: name with dots mangles like a query name',
    input: mp([{ name: 'act.ion', value: 'edit' }], 'action=opensearch'),
    action: 'opensearch',
    modules: ['opensearch'],
    allowed: true,
  },
]

for (const row of rows) {
  test(`action API: ${row.name}`, () => {
    const r = readActionRequest(row.input)
    if (row.action === undefined) {
      assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`)
      return
    }
    assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`)
    assert.equal(r.action, row.action)
    assert.deepEqual(r.modules, row.modules)
    assert.equal(isAllowed(r.modules, ALLOWED), row.allowed)
  })
}

test('max_input_vars: 1000 query variables pass, 1001 are refused', () => {
  const vars = (n: number) => Array.from({ length: n }, (_, i) => `v${i}=1`)
  assert.equal(readActionRequest(get(['action=opensearch', ...vars(999)].join('&'))).ok, true)
  assert.equal(readActionRequest(get(['action=opensearch', ...vars(1000)].join('&'))).ok, false)
  // empty query tokens vanish in strtok(): they do not count
  assert.equal(readActionRequest(get(['action=opensearch', ...vars(999)].join('&&'))).ok, true)
})

test('max_input_vars: body variables and multipart parts', () => {
  const vars = (n: number) => Array.from({ length: n }, (_, i) => `v${i}=1`)
  assert.equal(readActionRequest(form(['action=opensearch', ...vars(999)].join('&'))).ok, true)
  assert.equal(readActionRequest(form(['action=opensearch', ...vars(1000)].join('&'))).ok, false)
  // in a body an empty segment is still a (dropped) variable for the count
  assert.equal(readActionRequest(form(['action=opensearch', ...vars(998), ''].join('&') + '&x=1')).ok, false)
  const parts = (n: number): Part[] => Array.from({ length: n }, (_, i) => ({ name: `v${i}`, value: '1' }))
  assert.equal(readActionRequest(mp([{ name: 'action', value: 'opensearch' }, ...parts(999)])).ok, true)
  assert.equal(readActionRequest(mp([{ name: 'action', value: 'opensearch' }, ...parts(1000)])).ok, false)
})

test('isAllowed: query listed allows every submodule; bare query needs some query entry', () => {
  assert.equal(isAllowed(['query+allusers', 'query+search'], new Set(['query'])), true)
  assert.equal(isAllowed(['query'], new Set(['query'])), true)
  assert.equal(isAllowed(['query'], new Set(['query+search'])), true)
  assert.equal(isAllowed(['query'], new Set(['opensearch'])), false)
  assert.equal(isAllowed(['query+search'], new Set(['opensearch'])), false)
  assert.equal(isAllowed(['opensearch'], new Set(['query'])), false)
  assert.equal(isAllowed(['purge', 'query+allpages'], new Set(['purge'])), false)
  assert.equal(isAllowed(['purge', 'query+allpages'], new Set(['purge', 'query'])), true)
  assert.equal(isAllowed(['Opensearch'], new Set(['opensearch'])), false)
  assert.equal(isAllowed([], new Set(['opensearch'])), false)
})

test('needsBody: only POST bodies are parsed by PHP', () => {
  assert.equal(needsBody('POST'), true)
  assert.equal(needsBody('GET'), false)
  assert.equal(needsBody('PUT'), false)
  assert.deepEqual([...FORM_CONTENT_TYPES].sort(), ['application/x-www-form-urlencoded', 'multipart/form-data'])
})

test('phpUrlDecode keeps invalid escapes literally', () => {
  assert.equal(phpUrlDecode('%41%zz%4'), 'A%zz%4')
  assert.equal(phpUrlDecode('a+b%2Bc'), 'a b+c')
  assert.equal(phpUrlDecode('%'), '%')
  assert.equal(phpUrlDecode('%e9'), '\u00e9')
})

test('manglePhpName follows php_register_variable_ex (PHP 8)', () => {
  const cases: Array<[string, ReturnType<typeof manglePhpName>]> = [
    ['action', { kind: 'scalar', key: 'action' }],
    ['  a.b c', { kind: 'scalar', key: 'a_b_c' }],
    ['a[b]', { kind: 'array', key: 'a' }],
    ['a[]', { kind: 'array', key: 'a' }],
    ['a[ ]', { kind: 'array', key: 'a' }],
    ['a[b]c', { kind: 'array', key: 'a' }],
    ['a.b[c.d]', { kind: 'array', key: 'a_b' }],
    ['a[b', { kind: 'scalar', key: 'a_b' }],
    ['a[b.c[d e', { kind: 'scalar', key: 'a_b_c_d_e' }],
    ['a]b', { kind: 'scalar', key: 'a]b' }],
    ['[a]', { kind: 'dropped' }],
    ['[a', { kind: 'dropped' }],
    ['', { kind: 'dropped' }],
    ['   ', { kind: 'dropped' }],
    ['\tx', { kind: 'scalar', key: '\tx' }],
    ['._Host-x', { kind: 'dropped' }],
    ['__Host-x', { kind: 'scalar', key: '__Host-x' }],
    ['_.Secure-x', { kind: 'dropped' }],
    ['act\u0000ion', { kind: 'scalar', key: 'act' }],
  ]
  for (const [input, expected] of cases) assert.deepEqual(manglePhpName(input), expected, JSON.stringify(input))
})

test('phpPostContentType cuts and lower-cases like sapi_read_post_data', () => {
  assert.equal(phpPostContentType('Multipart/Form-Data; boundary=X'), 'multipart/form-data')
  assert.equal(phpPostContentType('application/x-www-form-urlencoded,text/plain'), 'application/x-www-form-urlencoded')
  assert.equal(phpPostContentType('application/x-www-form-urlencoded text/plain'), 'application/x-www-form-urlencoded')
  assert.equal(phpPostContentType(' application/x-www-form-urlencoded'), '')
  assert.equal(phpPostContentType(undefined), undefined)
})

test('multipartBoundary accepts only unambiguous headers', () => {
  assert.deepEqual(multipartBoundary('multipart/form-data; boundary=abc'), { ok: true, boundary: 'abc' })
  assert.deepEqual(multipartBoundary('multipart/form-data;BOUNDARY="a:b"'), { ok: true, boundary: 'a:b' })
  for (const bad of [
    'multipart/form-data',
    'multipart/form-data; boundary=',
    'multipart/form-data; boundary=a,b',
    'multipart/form-data; boundary="a"x',
    'multipart/form-data; boundary="a',
    'multipart/form-data ;boundary=a',
    'multipart/form-data; name="boundary"; boundary=a',
    `multipart/form-data; boundary=${'a'.repeat(71)}`,
  ])
    assert.equal(multipartBoundary(bad).ok, false, bad)
})

test('parsers expose every occurrence so callers can refuse repeats', () => {
  const q = parseQueryString('a=1&a=2&&b')
  assert.ok(q.ok)
  assert.deepEqual(
    q.vars.map((v) => [v.rawName, v.value]),
    [
      ['a', '1'],
      ['a', '2'],
      ['b', ''],
    ],
  )
  const f = parseUrlEncodedBody(Buffer.from('a=1&&a=%zz&'))
  assert.ok(f.ok)
  assert.deepEqual(
    f.vars.map((v) => [v.name, v.value]),
    [
      [{ kind: 'scalar', key: 'a' }, '1'],
      [{ kind: 'dropped' }, ''],
      [{ kind: 'scalar', key: 'a' }, '%zz'],
    ],
  )
  const m = parseMultipart(
    multipart([
      { name: 'a', value: 'x\r\ny' },
      { name: 'f', filename: 'f.bin', value: 'data' },
    ]),
    MP,
  )
  assert.ok(m.ok)
  assert.deepEqual(
    m.vars.map((v) => [v.rawName, v.value, v.isFile]),
    [
      ['a', 'x\r\ny', false],
      ['f', '', true],
    ],
  )
})
