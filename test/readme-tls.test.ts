import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { startTestGateway, startUpstream } from './helpers.js'
import { makeTempDir } from './support/processes.js'

// The README's "HTTPS and client certificates" section, run as written: its openssl lines make the
// CA and certificates, its YAML is the gateway's config (paths moved into a temp dir), and its curl
// lines go through that gateway (localhost:8080 becomes the test's port).

const readme = readFileSync('README.md', 'utf8')
const section = readme.slice(
  readme.indexOf('## HTTPS and client certificates'),
  readme.indexOf('\n## ', readme.indexOf('## HTTPS and client certificates') + 1),
)
const blocks = (lang: string) =>
  [...section.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!)
/** shell lines with their continuations joined, comments and blank lines left out */
const commands = blocks('sh')
  .join('\n')
  .replace(/\\\n\s*/g, '')
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'))

function sh(line: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile('bash', ['-c', line], { cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

test("the README's openssl and curl lines work through keygate: HTTPS, --http2 and --cert", async () => {
  const dir = await makeTempDir('readme-tls')
  const curls = commands.filter((c) => c.startsWith('curl '))
  assert.ok(curls.some((c) => c.includes('--http2')) && curls.some((c) => c.includes('--cert')), curls.join('\n'))
  for (const line of commands.filter((c) => !c.startsWith('curl '))) {
    assert.match(line, /^(openssl|printf) /, `an unexpected command in the README: ${line}`)
    const r = await sh(line, dir)
    assert.equal(r.code, 0, `${line}\n${r.stderr}`)
  }

  const upstream = await startUpstream()
  const mtls = blocks('yaml')
    .map((y) => parse(y) as Record<string, unknown>)
    .find((y) => 'clients' in y)!
  const files: Record<string, string> = {
    '/etc/keygate/tls.crt': 'tls.crt',
    '/etc/keygate/tls.key': 'tls.key',
    '/etc/keygate/clients-ca.pem': 'ca.pem',
  }
  const tls = Object.fromEntries(
    Object.entries(mtls.tls as Record<string, unknown>).map(([k, v]) => [
      k,
      typeof v === 'string' && v in files ? join(dir, files[v]!) : v,
    ]),
  )
  const gw = await startTestGateway({
    upstream: upstream.url,
    routes: [{ path: '/wiki/', anonymous: true }],
    ...mtls,
    tls: { ...tls, http2: true },
  })

  for (const line of curls) {
    const run = line
      .replace('https://localhost:8080', `https://localhost:${gw.port}`)
      .replace(/^curl /, `curl -sS --fail --max-time 10 -o /dev/null -w '%{http_code} %{http_version}' `)
    const r = await sh(run, dir)
    assert.equal(r.code, 0, `${line}\n${r.stderr}`)
    // (curl offers h2 by ALPN on its own; --http2 is there to say so)
    assert.equal(r.stdout, '200 2', line)
    const seen = upstream.seen.at(-1)!
    assert.equal(seen.url, new URL(line.split(' ').at(-1)!).pathname, line)
    if (line.includes('--cert')) {
      assert.equal(seen.headers['x-auth-user'], 'billing service', line)
      assert.equal(seen.headers['x-auth-scheme'], 'mtls', line)
      assert.match(
        String(seen.headers['x-forwarded-client-cert']),
        /URI=spiffe:\/\/cluster\.local\/ns\/billing\/sa\/api/,
      )
    }
  }
})
