// Identity values (user names, groups, e-mail, real names) come from the users file, external
// issuers' tokens and the wiki's userinfo answers. Two rules, kept here and nowhere else:
// what a source may not say at all, and how any value is written into a plain header.

const CONTROL = /\p{Cc}/u
const SURROUNDING_SPACE = /^\s|\s$/u

/** A name or group as an outside source may give it: no control characters, no space at either end, not empty. */
export const isCleanName = (value: string): boolean =>
  value !== '' && !CONTROL.test(value) && !SURROUNDING_SPACE.test(value)

/** A free-text value (real name, e-mail) as an outside source may give it: no control characters. */
export const isCleanText = (value: string): boolean => !CONTROL.test(value)

// Printable ASCII but '%' (and ',' inside a group): the values that pass unchanged.
const PLAIN = /^[\x20-\x24\x26-\x7e]*$/
const PLAIN_GROUP = /^[\x20-\x24\x26-\x2b\x2d-\x7e]*$/

/**
 * The one encoding of identity values in plain headers: `%`, every byte of a non-ASCII
 * character's UTF-8 form, control characters and a space at either end are percent-encoded
 * (upper-case hex), so any value reads back exactly with rawurldecode / decodeURIComponent and
 * no value can carry CR, LF or another control character, or lose a space to header trimming.
 */
export function encodeHeaderValue(value: string): string {
  return isPlain(value, PLAIN) ? value : percentEncode(value, false)
}

/** Groups joined with ',': a ',' inside one group name is encoded, so no group can forge another. */
export function encodeGroupsHeader(groups: readonly string[]): string {
  let out = ''
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!
    out += (i === 0 ? '' : ',') + (isPlain(g, PLAIN_GROUP) ? g : percentEncode(g, true))
  }
  return out
}

const isPlain = (value: string, plain: RegExp): boolean =>
  plain.test(value) && (value === '' || (value.charCodeAt(0) !== 0x20 && value.charCodeAt(value.length - 1) !== 0x20))

function percentEncode(value: string, inGroup: boolean): string {
  // A lone surrogate has no UTF-8 form: Buffer writes U+FFFD for it, as any UTF-8 encoder must.
  const bytes = Buffer.from(value, 'utf8')
  let out = ''
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    const edgeSpace = b === 0x20 && (i === 0 || i === bytes.length - 1)
    const keep = b >= 0x20 && b <= 0x7e && b !== 0x25 && !(inGroup && b === 0x2c) && !edgeSpace
    out += keep ? String.fromCharCode(b) : `%${HEX[b]}`
  }
  return out
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'))
