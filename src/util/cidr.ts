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
  try { parseCidr(text); return true } catch { return false }
}

export type IpMatcher = (ip: string) => boolean

/** Compiles CIDRs once; the matcher is a pure function of a textual address. An unparsable address never matches. */
export function compileCidrs(cidrs: readonly string[]): IpMatcher {
  const ranges = cidrs.map(parseCidr)
  return (ip) => {
    const addr = parseIp(ip)
    if (!addr) return false
    for (const [net, bits] of ranges) {
      if (net.kind() === addr.kind() && addr.match(net as never, bits)) return true
    }
    return false
  }
}
