import { createServer, type Server } from 'node:http'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { getSystemErrorMap } from 'node:util'
import type { Observer } from './observe.js'
import { createLogger, type Logger } from './log.js'
import { describeProblems, formatProblem, loadConfigFile } from './config/load.js'
import type { GatewayConfig } from './config/schema.js'
import type { Store } from './store/types.js'
import { serverTimeoutOptions, trackConnections } from './http/connections.js'
import { createDrain } from './http/drain.js'
import { createHttpsListener, createTlsFiles } from './http/tls.js'
import { compileCidrs } from './util/cidr.js'
import { acquireSnapshot, buildSnapshot, createGatewayParts, retireSnapshot } from './gateway/snapshot.js'
import { createAnswerer } from './gateway/answer.js'

// The listening socket, config reloads and shutdown. A gateway is built in gateway/snapshot.ts;
// requests are answered in gateway/answer.ts and decided in pipeline/index.ts.

export interface GatewayOptions {
  /** a loaded config (tests), or a file to load (and reload on SIGHUP) */
  readonly config?: GatewayConfig
  readonly configFile?: string
  readonly logger?: Logger
  /** overrides `listen` (tests pass port 0) */
  readonly listen?: { host: string; port: number }
  /** a store shared with something else (tests, cluster workers); otherwise made from the config */
  readonly store?: Store
}

export interface Gateway {
  readonly server: Server
  readonly store: Store
  /** this gateway's events (its metrics and audit trail listen here) */
  readonly observer: Observer
  readonly url: string
  readonly port: number
  /** the file again, or `config` (a cluster worker's, from its primary); true when the new config was taken */
  reload(config?: GatewayConfig): Promise<boolean>
  close(): Promise<void>
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const initial = options.config ?? loadOrThrow(options.configFile!)
  const logger = options.logger ?? createLogger(initial.logLevel)
  let configDigest = configHash(initial)
  const parts = createGatewayParts(initial, logger, () => configDigest, options.store)
  let current = await buildSnapshot(initial, parts)

  // Connection limits are taken at start: a reload does not re-open the listening socket.
  const serverOptions = { maxHeaderSize: initial.limits.maxHeaderBytes, ...serverTimeoutOptions(initial.limits) }
  const tlsFiles = initial.tls ? createTlsFiles(initial.tls, logger) : null
  const server: Server =
    initial.tls && tlsFiles ? createHttpsListener(serverOptions, initial.tls, tlsFiles) : createServer(serverOptions)
  // Peers in trustedProxies carry many clients' connections: the per-address cap is not theirs.
  const trustedPeer = compileCidrs(initial.trustedProxies)
  const { sockets } = trackConnections(server, initial.limits, (ip) => trustedPeer(ip))
  const drain = createDrain(server, sockets)
  const answers = createAnswerer(server, initial.limits, parts)
  server.on('request', (req, res) => answers.request(acquireSnapshot(current), req, res))
  server.on('upgrade', (req, socket, head) => answers.upgrade(acquireSnapshot(current), req, socket, head))
  server.on('clientError', answers.clientError)

  const bind = options.listen ?? initial.listen
  server.listen(bind.port, bind.host)
  await once(server, 'listening').catch((err: NodeJS.ErrnoException) => {
    throw listenError(`${bind.host}:${bind.port}`, err)
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : bind.port
  const host = bind.host === '0.0.0.0' || bind.host === '::' ? '127.0.0.1' : bind.host
  logger.info(
    { listen: `${bind.host}:${port}`, store: parts.store.kind, upstream: initial.upstream },
    'keygate listening',
  )

  return {
    server,
    store: parts.store,
    observer: parts.observer,
    port,
    url: `${tlsFiles ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    async reload(given?: GatewayConfig) {
      if (!given && !options.configFile) return false
      const loaded = given ? { ok: true as const, config: given } : loadConfigFile(options.configFile!)
      if (!loaded.ok) {
        const problems = loaded.problems.map(formatProblem)
        logger.error({ problems }, 'config reload refused; the old config keeps serving')
        parts.observer.audit({ kind: 'config.reloaded', ok: false, hash: null, problems })
        return false
      }
      if (tlsFiles && loaded.config.tls) tlsFiles.reload(loaded.config.tls)
      else if (Boolean(loaded.config.tls) !== Boolean(tlsFiles))
        logger.warn('tls is switched on or off only by a restart; the listener keeps its kind')
      try {
        const old = current
        current = await buildSnapshot(loaded.config, parts)
        void retireSnapshot(old)
        configDigest = configHash(loaded.config)
        logger.info('config reloaded')
        parts.observer.audit({ kind: 'config.reloaded', ok: true, hash: configDigest })
        return true
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'config reload refused; the old config keeps serving')
        return false
      }
    },
    async close() {
      logger.info({ connections: sockets.size, grace_ms: initial.limits.shutdownGrace }, 'draining connections')
      const drained = await drain(initial.limits.shutdownGrace)
      if (drained.cut > 0) logger.warn(drained, 'shutdown grace over; connections still open were cut')
      else logger.info(drained, 'connections drained')
      tlsFiles?.close()
      await retireSnapshot(current)
      await parts.close()
    },
  }
}

/**
 * One wording whether the socket was bound here or, in a cluster worker, by the primary (whose
 * error reads `bind EADDRINUSE 127.0.0.1:8080`): the address, then why.
 */
function listenError(address: string, err: NodeJS.ErrnoException): Error {
  const why = err.errno === undefined ? undefined : getSystemErrorMap().get(err.errno)?.[1]
  const code = err.code ?? err.message
  return new Error(`cannot listen on ${address}: ${why ? `${why} (${code})` : code}`, { cause: err })
}

const configHash = (config: GatewayConfig) =>
  createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16)

function loadOrThrow(file: string): GatewayConfig {
  const loaded = loadConfigFile(file)
  if (!loaded.ok) throw new Error(describeProblems(loaded.problems))
  return loaded.config
}
