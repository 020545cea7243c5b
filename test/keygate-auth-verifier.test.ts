import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createManualClock } from '../src/clock.js'
import { createKeyring } from '../src/tokens/keyring.js'
import { createAssertionSigner } from '../src/tokens/assertion.js'
import { hasCommand } from './support/processes.js'

// The KeygateAuth extension's verifier (plain PHP: openssl, sodium, hash_hmac) against the
// assertions keygate signs with each algorithm: keys from keygate's JWKS, or the HS256 secret.

const skip = hasCommand('php') ? false : 'needs php-cli'
const INCLUDES = fileURLToPath(new URL('../integrations/mediawiki/KeygateAuth/includes/', import.meta.url))
const SECRET = 'verifier-test-hs256-secret-0123456789abcdef'
const NOW = Date.UTC(2026, 0, 1)

// Reads cases from stdin, answers the verified sub (or null) of each.
const SCRIPT = `
require ${JSON.stringify(INCLUDES + 'AssertionVerifier.php')};
require ${JSON.stringify(INCLUDES + 'Jwk.php')};
use MediaWiki\\Extension\\KeygateAuth\\AssertionVerifier;
$out = [];
foreach ( json_decode( stream_get_contents( STDIN ), true ) as $c ) {
  $keys = $c['jwks'] === null ? null : function ( $kid ) use ( $c ) {
    foreach ( $c['jwks']['keys'] as $k ) { if ( $k['kid'] === $kid ) return $k; }
    return null;
  };
  $v = new AssertionVerifier( $keys, $c['secret'], 'keygate', 'wiki', 30, function () use ( $c ) { return $c['now']; } );
  $claims = $v->verify( $c['token'] );
  $out[] = $claims === null ? null : $claims['sub'];
}
echo json_encode( $out );
`

interface Case {
  name: string
  token: string
  jwks: unknown
  secret: string
  now: number
  want: string | null
}

function runPhp(cases: readonly Case[]): Array<string | null> {
  const r = spawnSync('php', ['-r', SCRIPT], { input: JSON.stringify(cases), encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr + r.stdout)
  return JSON.parse(r.stdout) as Array<string | null>
}

const pem = (type: 'ec' | 'rsa' | 'ed25519') => {
  const pair =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519')
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

const ENTRIES = [
  { kid: 'es', alg: 'ES256', privateKey: pem('ec') },
  { kid: 'rs', alg: 'RS256', privateKey: pem('rsa') },
  { kid: 'ed', alg: 'EdDSA', privateKey: pem('ed25519') },
  { kid: 'hs', alg: 'HS256', secret: SECRET },
] as const

const ringOf = (keys: ReadonlyArray<(typeof ENTRIES)[number]>) =>
  createKeyring({ alg: 'HS256', issuer: 'keygate', clockSkew: 0, keys: [...keys] })

/** An assertion for Alice signed with one key of ENTRIES. */
async function assertion(kid: string, aud = 'wiki', atMs = NOW): Promise<string> {
  const ring = await ringOf(ENTRIES.filter((e) => e.kid === kid))
  const sign = createAssertionSigner({
    key: ring.signing!,
    issuer: 'keygate',
    ttlMs: 60_000,
    clock: createManualClock(atMs),
  })
  return sign({ scheme: 'bearer', username: 'Alice', uid: 3, realName: 'Alice Ü', email: '', groups: ['sysop'] }, aud)
}

test(
  'the extension verifies keygate assertions of every algorithm, and refuses tampered or misdirected ones',
  { skip },
  async () => {
    const jwks = (await ringOf(ENTRIES)).jwks
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      ['es', 'rs', 'ed'],
    )
    const now = NOW / 1000 + 1
    const base = { jwks, secret: '', now }
    const tamper = (t: string) => {
      const [h, p, s] = t.split('.')
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString())
      return `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'Admin' })).toString('base64url')}.${s}`
    }
    const cases: Case[] = [
      { name: 'ES256 by JWKS', token: await assertion('es'), ...base, want: 'Alice' },
      { name: 'RS256 by JWKS', token: await assertion('rs'), ...base, want: 'Alice' },
      { name: 'EdDSA by JWKS', token: await assertion('ed'), ...base, want: 'Alice' },
      {
        name: 'HS256 by the shared secret',
        token: await assertion('hs'),
        jwks: null,
        secret: SECRET,
        now,
        want: 'Alice',
      },
      { name: 'HS256 without the secret configured', token: await assertion('hs'), ...base, want: null },
      {
        name: 'HS256 with another secret',
        token: await assertion('hs'),
        jwks: null,
        secret: `${SECRET}x`,
        now,
        want: null,
      },
      { name: 'ES256 tampered', token: tamper(await assertion('es')), ...base, want: null },
      { name: 'RS256 tampered', token: tamper(await assertion('rs')), ...base, want: null },
      { name: 'EdDSA tampered', token: tamper(await assertion('ed')), ...base, want: null },
      { name: 'HS256 tampered', token: tamper(await assertion('hs')), jwks: null, secret: SECRET, now, want: null },
      { name: 'wrong audience', token: await assertion('es', 'other'), ...base, want: null },
      { name: 'expired (past exp + 30 s skew)', token: await assertion('es'), ...base, now: now + 60 + 31, want: null },
      { name: 'within the skew', token: await assertion('es'), ...base, now: now + 60 + 20, want: 'Alice' },
      { name: 'issued in the future', token: await assertion('es', 'wiki', NOW + 120_000), ...base, want: null },
      { name: 'no JWKS, no secret', token: await assertion('es'), jwks: null, secret: '', now, want: null },
    ]
    const got = runPhp(cases)
    assert.deepEqual(
      cases.map((c, i) => `${c.name}: ${got[i]}`),
      cases.map((c) => `${c.name}: ${c.want}`),
    )
  },
)
