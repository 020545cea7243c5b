import ipaddr from 'ipaddr.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

/** Parses an address, folding IPv4-mapped IPv6 (::ffff:1.2.3.4) to IPv4; null when it is not an address. */
export function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (!ipaddr.isValid(text)) return null
  try {
    const addr = ipaddr.parse(text)
    return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
      ? (addr as ipaddr.IPv6).toIPv4Address()
      : addr
  } catch {
    return null
  }
}

/** "10.0.0.0/8" or a bare address; throws a message for a bad entry (used at config load). */
export function parseCidr(text: string): Range {
  if (text.includes('/')) {
    const [addr, bits] = ipaddr.parseCIDR(text)
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), Math.max(0, bits - 96)]
    }
    return [addr, bits]
  }
  const addr = parseIp(text)
  if (!addr) throw new Error(`not an IP address or CIDR: ${text}`)
  return [addr, addr.kind() === 'ipv4' ? 32 : 128]
}

export function isValidCidr(text: string): boolean {
  try {
    parseCidr(text)
    return true
  } catch {
    return false
  }
}

export type IpMatcher = (ip: string) => boolean

// No leading zeros: ipaddr.js reads 010 as octal, and such forms must take the same (slow) path.
const DOTTED_QUAD = /^(?:::ffff:)?(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/i

/** A canonical dotted quad (or its IPv4-mapped IPv6 form) as a 32-bit number; null for anything else. */
export function ipv4Number(ip: string): number | null {
  const m = DOTTED_QUAD.exec(ip)
  if (!m) return null
  let n = 0
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i])
    if (octet > 255) return null
    n = n * 256 + octet
  }
  return n
}

/**
 * Compiles CIDRs once; the matcher is a pure function of a textual address. An unparsable
 * address never matches. Dotted quads (what sockets report) are matched as numbers without
 * parsing; every other form goes through ipaddr.js.
 */
export function compileCidrs(cidrs: readonly string[]): IpMatcher {
  const ranges = cidrs.map(parseCidr)
  const v4 = ranges
    .filter(([net]) => net.kind() === 'ipv4')
    .map(([net, bits]) => {
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      return { base: (ipv4Number(net.toString())! & mask) >>> 0, mask }
    })
  const matches = (ip: string): boolean => {
    const n = ipv4Number(ip)
    if (n !== null) return v4.some((r) => (n & r.mask) >>> 0 === r.base)
    const addr = parseIp(ip)
    if (!addr) return false
    for (const [net, bits] of ranges) {
      if (net.kind() === addr.kind() && addr.match(net, bits)) return true
    }
    return false
  }
  // A service's requests come from a handful of addresses, most often the one before: the last
  // answer is kept (a pure function of the text), where reading the quad again cost an ApiKey
  // request 0.3 µs.
  let lastIp: string | null = null
  let lastMatched = false
  return (ip) => {
    if (ip !== lastIp) {
      lastMatched = matches(ip)
      lastIp = ip
    }
    return lastMatched
  }
}
