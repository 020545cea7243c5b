import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compileCidrs, parseCidr } from '../src/util/cidr.js'
import { createClientIpResolver } from '../src/pipeline/client-ip.js'

test('CIDR matching: the numeric fast path and ipaddr.js agree, hostile addresses never match', () => {
  const m = compileCidrs(['10.0.0.0/8', '127.0.0.1/32', '192.168.1.0/24', '::1/128', '::ffff:172.16.0.0/108'])
  const cases: Array<[string, boolean]> = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['::ffff:127.0.0.1', true],
    ['::FFFF:10.0.0.1', true],
    ['192.168.1.255', true],
    ['192.168.2.1', false],
    ['::1', true],
    ['172.16.5.5', true],
    ['172.32.0.1', false],
    ['999.1.1.1', false],
    ['010.0.0.1', false],
    ['1234:::5678', false],
    ['2001:db8::1%eth0', false],
    ['', false],
    ['127.0.0.1 ', false],
    ['127.0.0.1/32', false],
    ['localhost', false],
  ]
  for (const [ip, expected] of cases) assert.equal(m(ip), expected, ip)
  // the matcher keeps its last answer: asking twice in a row, and back and forth, changes nothing
  for (const [ip, expected] of [...cases, ...cases.slice().reverse()]) {
    assert.equal(m(ip), expected, ip)
    assert.equal(m(ip), expected, `${ip} again`)
  }
  assert.equal(compileCidrs(['0.0.0.0/0'])('8.8.8.8'), true)
  assert.equal(compileCidrs([])('127.0.0.1'), false)
})

test('bad CIDRs are refused when compiled, not when matched', () => {
  for (const bad of ['192.168.0.0/33', '::/129', '127.0.0.1/', 'x', '10.0.0.0/8/8']) {
    assert.throws(() => parseCidr(bad), Error, bad)
  }
})

test('client IP: the peer unless trusted; then the right-most untrusted X-Forwarded-For hop', () => {
  const resolve = createClientIpResolver(['10.0.0.0/8'])
  // twice: the second pass answers from what the resolver kept per peer address
  for (let pass = 0; pass < 2; pass++) {
    assert.deepEqual(resolve('::ffff:203.0.113.1', '1.2.3.4'), { clientIp: '203.0.113.1', peerTrusted: false })
    assert.deepEqual(resolve('10.0.0.1', '1.2.3.4, 10.0.0.9'), { clientIp: '1.2.3.4', peerTrusted: true })
    assert.deepEqual(resolve('10.0.0.1', '10.0.0.7'), { clientIp: '10.0.0.7', peerTrusted: true })
    assert.deepEqual(resolve('10.0.0.1', 'junk, 10.0.0.7'), { clientIp: '10.0.0.7', peerTrusted: true })
    assert.deepEqual(resolve('10.0.0.1', undefined), { clientIp: '10.0.0.1', peerTrusted: true })
    assert.deepEqual(resolve('203.0.113.1', '10.0.0.1'), { clientIp: '203.0.113.1', peerTrusted: false })
  }
})

test('client IP: every spelling of an X-Forwarded-For hop is read as ipaddr.js reads it, or ends the walk', () => {
  const resolve = createClientIpResolver(['10.0.0.0/8'])
  const hops: Array<[string, string]> = [
    ['1.2.3.4', '1.2.3.4'],
    [' 1.2.3.4 ', '1.2.3.4'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:10.1.2.3, 10.0.0.9', '10.1.2.3'], // trusted once folded: the walk goes on to the peer
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0::1', '2001:db8::1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    // not canonical quads: ipaddr.js decides (leading zeros are octal to it, as before)
    ['010.0.0.1', '8.0.0.1'],
    ['1.2.3', '1.2.0.3'],
    // not addresses: the walk ends at the last trusted hop
    ['1.2.3.256', '10.0.0.7'],
    ['1.2.3.4:80', '10.0.0.7'],
    ['1.2.3.4.5', '10.0.0.7'],
    ['::ffff:1.2.3.4:80', '10.0.0.7'],
    ['', '10.0.0.7'],
  ]
  for (const [hop, client] of hops) {
    const header = hop.includes(',') ? hop : `${hop}, 10.0.0.7`
    assert.deepEqual(resolve('10.0.0.1', header), { clientIp: client, peerTrusted: true }, `X-Forwarded-For: ${header}`)
  }
})
