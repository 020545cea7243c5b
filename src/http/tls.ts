import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer, type TLSSocket } from 'node:tls'
import type { Server as HttpServer, ServerOptions } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer, type Http2SecureServer, type SecureServerOptions } from 'node:http2'
import type { TlsConfig } from '../config/schema.js'
import type { Logger } from '../log.js'

/**
 * Forward-secret AEAD suites only (Mozilla's "intermediate" profile without DHE, which would need
 * its own parameters): no CBC, no SHA-1 MACs, no RSA key exchange. TLS 1.3 suites are always AEAD.
 * In keygate's order, not the client's. bench/bare-proxy.ts takes them too, so that the floor
 * keygate's HTTPS is measured against negotiates the same suite (OpenSSL clients ask AES-256 first).
 */
export const CIPHER_SUITES = {
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
} as const

// cert-manager swaps a symlinked directory, certbot a symlink, others write the files one after
// the other: wait for the burst of events to settle before reading.
const SETTLE_MS = 150

/** The listener's certificate and key, kept current: on reload() (SIGHUP) and when the files change. */
export interface TlsFiles {
  /** what the listener is created with */
  readonly contextOptions: SecureContextOptions
  /** starts following the files for this server */
  attach(server: TlsServer): void
  /**
   * Reads the files again (with a new config's paths and settings, when given) and gives new
   * handshakes the result; connections already open keep theirs. False, and the old
   * certificate kept, when the files cannot be read or do not make a usable pair.
   */
  reload(config?: TlsConfig): boolean
  close(): void
}

export function createTlsFiles(initial: TlsConfig, logger: Logger): TlsFiles {
  let config = initial
  let options = readContextOptions(config) // a broken pair at start is a start-up error
  let loadedPem = pemOf(options)
  let server: TlsServer | null = null
  let watchers: FSWatcher[] = []
  let settle: NodeJS.Timeout | null = null

  const reload = (next: TlsConfig = config): boolean => {
    let fresh: PemOptions
    try {
      fresh = readContextOptions(next)
    } catch (err) {
      logger.error(
        { cert: next.cert, key: next.key, err: (err as Error).message },
        'TLS certificate not reloaded; the old one keeps serving',
      )
      return false
    }
    const pathsChanged = filesOf(next).join('\n') !== filesOf(config).join('\n')
    config = next
    if (pemOf(fresh) !== loadedPem || fresh.minVersion !== options.minVersion) {
      options = fresh
      loadedPem = pemOf(fresh)
      server?.setSecureContext(fresh)
      logger.info({ cert: config.cert }, 'TLS certificate reloaded')
    }
    if (pathsChanged && server) follow()
    return true
  }

  const onChange = () => {
    if (settle) clearTimeout(settle)
    settle = setTimeout(() => {
      settle = null
      reload()
    }, SETTLE_MS)
    settle.unref()
  }

  function follow(): void {
    for (const w of watchers) w.close()
    // The directories, not the files: a file replaced by a rename or a symlink swap is a new
    // inode, and a watch on the old one would never fire again.
    watchers = [...new Set(filesOf(config).map((f) => dirname(f)))].map((dir) => {
      const w = watch(dir, { persistent: false }, onChange)
      w.on('error', (err) => logger.warn({ dir, err: err.message }, 'TLS certificate directory no longer watched'))
      return w
    })
  }

  return {
    get contextOptions() {
      return options
    },
    attach(s) {
      server = s
      follow()
    },
    reload,
    close() {
      if (settle) clearTimeout(settle)
      for (const w of watchers) w.close()
      watchers = []
    },
  }
}

/**
 * An HTTPS listener whose certificate follows `files`. With tls.clientCa it asks for a client
 * certificate; `required` ends a handshake without a valid one, `optional` lets the request be
 * judged (a certificate that does not verify is refused there).
 */
export function createHttpsListener(options: ServerOptions, config: TlsConfig, files: TlsFiles): HttpServer {
  const tlsOptions = {
    ...files.contextOptions,
    requestCert: config.clientCa !== undefined,
    rejectUnauthorized: config.clientCa !== undefined && config.clientCert === 'required',
  }
  const server = config.http2
    ? createHttp2Listener(options, tlsOptions)
    : createHttpsServer({ ...options, ...tlsOptions })
  // A connection's client certificate is read once (auth/mtls): it must not change under it.
  server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation())
  files.attach(server)
  return server as HttpServer
}

/**
 * HTTP/2 and HTTP/1.1 (ALPN) on one port. HTTP/2 requests come through the compatibility API
 * (Http2ServerRequest/Response), so the one pipeline answers both; HTTP/1.1 connections,
 * WebSocket upgrades included, are Node's own HTTP/1.1 server. The bounds are the abuse the
 * protocol allows: streams reset as soon as opened (rapid reset), invalid frames, header blocks
 * split into endless CONTINUATION frames.
 */
function createHttp2Listener(options: ServerOptions, tlsOptions: SecureServerOptions): Http2SecureServer {
  const server = createSecureServer({
    ...tlsOptions,
    allowHTTP1: true,
    // a header block beyond these is refused whatever its framing (CONTINUATION floods)
    maxSendHeaderBlockLength: options.maxHeaderSize,
    maxHeaderListPairs: 256,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    settings: { maxConcurrentStreams: 128, maxHeaderListSize: options.maxHeaderSize },
  })
  // Node's HTTP/1.1 server reads these from the server it runs for
  Object.assign(server, {
    headersTimeout: options.headersTimeout,
    requestTimeout: options.requestTimeout,
    keepAliveTimeout: options.keepAliveTimeout,
    maxHeaderSize: options.maxHeaderSize,
  })
  return server
}

const filesOf = (config: TlsConfig): string[] => [
  config.cert,
  config.key,
  ...(config.clientCa ? [config.clientCa] : []),
]

type PemOptions = SecureContextOptions & { readonly cert: string; readonly key: string; ca?: string }

function readContextOptions(config: TlsConfig): PemOptions {
  const options: PemOptions = {
    cert: readFileSync(config.cert, 'utf8'),
    key: readFileSync(config.key, 'utf8'),
    minVersion: config.minVersion,
    ...CIPHER_SUITES,
  }
  if (config.clientCa) options.ca = readFileSync(config.clientCa, 'utf8')
  createSecureContext(options) // throws on a key that does not match the certificate, or bad PEM
  return options
}

const pemOf = (options: PemOptions): string => `${options.cert}\n${options.key}\n${String(options.ca ?? '')}`
