// Issue 6: 10,000 idle keep-alive client connections held by one keygate, and its RSS.
// usage: npm run bench:idle   (CONNECTIONS=10000 by default; loopback only; bounded: ~30 s)
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10_000)
const LIMIT_MB = 300

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address() as { port: number }
  s.close()
  return port
}

const rssMb = (pid: number): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-idle-'))
  const port = await freePort()
  const config = join(dir, 'gateway.yaml')
  writeFileSync(
    config,
    `listen: 127.0.0.1:${port}\nupstream: demo\ndefaultPolicy: anonymous\nlogLevel: warn\nlimits: {keepAliveTimeout: 120s}\n`,
  )
  const fromDist = existsSync('dist/cli.js')
  const args = fromDist
    ? ['dist/cli.js', 'serve', '--config', config]
    : ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', config]
  // The IPC channel: if this script is killed, keygate sees it close and stops.
  const gw = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] })
  const sockets: Socket[] = []
  try {
    for (let i = 0; i < 100; i++) {
      try {
        const s = connect(port, '127.0.0.1')
        await once(s, 'connect')
        s.destroy()
        break
      } catch {
        await sleep(100)
      }
    }
    const before = rssMb(gw.pid!)
    // Each connection makes one keep-alive request, then stays open and idle.
    const batch = 500
    for (let i = 0; i < CONNECTIONS; i += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, CONNECTIONS - i) }, async () => {
          const s = connect(port, '127.0.0.1')
          sockets.push(s)
          s.on('error', () => {})
          await once(s, 'connect')
          s.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n')
          await once(s, 'data')
        }),
      )
    }
    await sleep(1000)
    const open = sockets.filter((s) => !s.destroyed).length
    const after = rssMb(gw.pid!)
    console.log(
      `keygate (${fromDist ? 'dist' : 'tsx'}): ${open} idle keep-alive connections held; RSS ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB with them (limit ${LIMIT_MB} MiB)`,
    )
    return open === CONNECTIONS && after < LIMIT_MB ? 0 : 1
  } finally {
    for (const s of sockets) s.destroy()
    gw.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(err)
    process.exitCode = 1
  },
)
