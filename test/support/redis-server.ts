import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

// redis-server processes of a test's own, for outage, Sentinel and Cluster tests.
// A missing redis-server binary fails these tests rather than skipping them.

export const redisServer = (): string => {
  try {
    return execFileSync('which', ['redis-server'], { encoding: 'utf8' }).trim()
  } catch {
    return assert.fail('redis-server is not installed: the outage tests need it')
  }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A port p with p + 10000 free as well (a cluster node's bus port). */
export async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000)
    if (taken.has(port) || taken.has(port + 10000)) continue
    if ((await isFree(port)) && (await isFree(port + 10000))) return port
  }
  return assert.fail('no free port pair for a cluster node')
}
async function isFree(port: number): Promise<boolean> {
  const server = createServer()
  return new Promise((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Sends PING over a raw socket: true on +PONG. */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    socket.setTimeout(200)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString().startsWith('+PONG'))
    })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
}

/** A redis-server of the test's own, on a loopback port; killed by the caller (see kill). */
export async function startRedis(
  port: number,
  args: string[] = [],
  workDir = tmpdir(),
  children: ChildProcess[] = [],
): Promise<ChildProcess> {
  const child = spawn(
    redisServer(),
    [...args, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir],
    { stdio: 'ignore' },
  )
  children.push(child)
  await waitFor(() => answersPing(port), 5000, `redis-server on ${port} did not start`)
  return child
}

export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(message)
    await sleep(20)
  }
}

/** A Redis Cluster of `masters` masters (no replicas) on free loopback ports, ready (cluster_state:ok). */
/** Waits until every node named says the cluster is `state` (`fail` once a master without a replica is gone). */
export const waitForClusterState = (ports: readonly number[], state: 'ok' | 'fail', ms: number): Promise<void> =>
  waitFor(
    () =>
      ports.every((port) =>
        execFileSync('redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).includes(
          `cluster_state:${state}`,
        ),
      ),
    ms,
    `the cluster did not become ${state}`,
  )

export async function startCluster(
  workDir: string,
  children: ChildProcess[],
  masters = 3,
): Promise<{ ports: number[]; nodes: ChildProcess[] }> {
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < masters; i++) {
    const port = await freeClusterPort(taken)
    taken.add(port).add(port + 10000)
    ports.push(port)
  }
  const nodes = await Promise.all(
    ports.map((port) =>
      startRedis(
        port,
        [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(workDir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
        ],
        workDir,
        children,
      ),
    ),
  )
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    { stdio: 'ignore' },
  )
  await waitForClusterState(ports, 'ok', 5000)
  return { ports, nodes }
}

/** A Sentinel watching the master on `masterPort` as `name` (quorum 1, down after 1 s); killed by the caller. */
export async function startSentinel(
  masterPort: number,
  name: string,
  workDir: string,
  children: ChildProcess[],
): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort()
  const conf = join(workDir, `sentinel-${port}.conf`)
  // Sentinel rewrites its config file, so it needs its own writable copy.
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${workDir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
    ].join('\n') + '\n',
  )
  const child = spawn(redisServer(), [conf, '--sentinel'], { stdio: 'ignore' })
  children.push(child)
  await waitFor(() => answersPing(port), 5000, 'sentinel did not start')
  return { port, child }
}
