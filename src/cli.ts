#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { configFileFrom, describeProblems, formatProblem, loadConfigFile } from './config/load.js'
import { configWarnings } from './config/warnings.js'
import { sha256Hex } from './util/secret.js'
import { hashPassword } from './tokens/password.js'
import type { GatewayConfig } from './config/schema.js'
import type { Gateway } from './server.js'
import type { Logger } from './log.js'
import type { StopCause } from './cluster.js'

const USAGE = `usage: keygate <command> [options]

commands:
  serve [--config FILE]          run the gateway (FILE: $KEYGATE_CONFIG, then ./gateway.yaml)
  check-config [--config FILE]   validate the config; print every problem and exit 1 if any
  hash-key                       read a secret on stdin, print its keyHash (sha256:<hex>)
  hash-password                  read a password on stdin, print its passwordHash (scrypt$…)
  tokens list|revoke …           list or revoke issued JWTs in the gateways' store (tokens --help)
  sessions list|revoke …         list or end sessions (sessions --help)
  apptokens list|revoke …        list or revoke AppTokens (apptokens --help)
  keys new <name>                print a fresh ApiKey once, with its keyHash (keys --help)
  keys new-signing-key [--alg A] print a fresh JWT signing key for secrets.jwt.keys (default ES256)
`

/** Commands of src/admin/, loaded only when used; they parse their own options. */
const ADMIN_COMMANDS: readonly string[] = ['tokens', 'sessions', 'apptokens', 'keys']

/** stdin without its one trailing newline (what `echo secret |` adds). */
function readStdinSecret(): string {
  return readFileSync(0, 'utf8').replace(/\r?\n$/, '')
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command !== undefined && ADMIN_COMMANDS.includes(command)) {
    const { runAdmin, processIo } = await import('./admin/index.js')
    const code = await runAdmin(command, rest, processIo())
    // ioredis keeps a 2 s timer after disconnecting from a Redis that is down: exit as soon as
    // the output is flushed, so an unreachable store fails the command in about a second.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
    await new Promise<void>((resolve) => process.stderr.write('', () => resolve()))
    process.exit(code)
  }
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help || command === undefined || command === 'help' || command === '--help') {
    process.stdout.write(USAGE)
    return command === undefined ? 1 : 0
  }
  switch (command) {
    case 'check-config': {
      const file = configFileFrom(values.config)
      const loaded = loadConfigFile(file)
      if (loaded.ok) {
        for (const w of configWarnings(loaded.config))
          process.stderr.write(`warning: ${file}: ${w.path}: ${w.message}\n`)
        process.stdout.write(`${file}: ok\n`)
        return 0
      }
      process.stderr.write(`${describeProblems(loaded.problems)}\n`)
      return 1
    }
    case 'hash-key': {
      const secret = readStdinSecret()
      if (!secret) {
        process.stderr.write('hash-key: no key on stdin\n')
        return 1
      }
      process.stdout.write(`sha256:${sha256Hex(secret)}\n`)
      return 0
    }
    case 'hash-password': {
      const password = readStdinSecret()
      if (!password) {
        process.stderr.write('hash-password: no password on stdin\n')
        return 1
      }
      process.stdout.write(`${await hashPassword(password)}\n`)
      return 0
    }
    case 'serve':
      return serve(configFileFrom(values.config))
    default:
      process.stderr.write(`keygate: unknown command "${command}"\n${USAGE}`)
      return 1
  }
}

async function serve(file: string): Promise<number> {
  const cluster = await import('./cluster.js')
  if (cluster.isWorker()) return serveAsWorker(cluster)
  const loaded = loadConfigFile(file)
  if (!loaded.ok) {
    process.stderr.write(`${describeProblems(loaded.problems)}\n`)
    return 1
  }
  // Loaded here so that hash-key and check-config start without the whole gateway.
  const { createStdoutLog } = await import('./log.js')
  const { logger, flush } = createStdoutLog(loaded.config.logLevel)
  for (const w of configWarnings(loaded.config)) logger.warn({ setting: w.path }, w.message)
  const workers = cluster.workerCount(loaded.config.workers)
  if (workers > 1) {
    const reload = () => {
      const next = loadConfigFile(file)
      if (next.ok) return next.config
      logger.error(
        { problems: next.problems.map(formatProblem) },
        'config reload refused; the old config keeps serving',
      )
      return null
    }
    return cluster.superviseWorkers(workers, loaded.config, reload, logger).finally(flush)
  }
  const { startGateway } = await import('./server.js')
  const gateway = await startGateway({ config: loaded.config, configFile: file, logger })
  process.on('SIGHUP', () => {
    void gateway.reload()
  })
  return runUntilStopped(gateway, logger, flush, cluster.onParentGone)
}

/** A cluster worker runs the config its primary holds (see cluster.ts), never the file's. */
async function serveAsWorker(cluster: typeof import('./cluster.js')): Promise<number> {
  let gateway: Gateway | null = null
  let latest: GatewayConfig | null = null
  let arrived = () => {}
  cluster.onConfigFromPrimary((config) => {
    latest = config
    if (gateway) void gateway.reload(config)
    else arrived()
  })
  if (!latest) await new Promise<void>((resolve) => (arrived = resolve))
  const config: GatewayConfig = latest!
  const { createStdoutLog } = await import('./log.js')
  const { logger, flush } = createStdoutLog(config.logLevel)
  const { startGateway } = await import('./server.js')
  gateway = await startGateway({ config, logger })
  // a reload the primary took while this worker was starting
  if (latest !== config) void gateway.reload(latest!)
  // The primary reads the file on SIGHUP and sends the result; a stray SIGHUP must not kill a worker.
  process.on('SIGHUP', () => {})
  // node:cluster itself ends a worker whose primary is gone
  return runUntilStopped(gateway, logger, flush, () => {})
}

function runUntilStopped(
  gateway: Gateway,
  logger: Logger,
  flush: () => void,
  onParentGone: (stop: () => void) => void,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false
    // SIGTERM, then SIGINT or the parent's death: the gateway is closed once.
    const stop = (why: StopCause) => {
      if (stopping) return
      stopping = true
      logger.info(why, 'shutting down')
      gateway
        .close()
        .then(
          () => resolve(0),
          () => resolve(1),
        )
        .finally(flush)
    }
    process.once('SIGTERM', () => stop({ signal: 'SIGTERM' }))
    process.once('SIGINT', () => stop({ signal: 'SIGINT' }))
    onParentGone(() => stop({ parent: 'gone' }))
  })
}

main(process.argv.slice(2)).then(
  // An explicit exit: a cluster worker's IPC channel would otherwise keep it alive after draining.
  (code) => {
    process.exit(code)
  },
  // One line, then exit: an open store connection (Redis) would keep a process that failed to
  // start (a port in use) alive and not listening. A worker leaves the line to its primary.
  async (err: Error) => {
    const { isWorker, reportStartFailure } = await import('./cluster.js')
    if (isWorker()) await reportStartFailure(err.message)
    else await new Promise<void>((resolve) => process.stderr.write(`keygate: ${err.message}\n`, () => resolve()))
    process.exit(1)
  },
)
