import { userInfo } from 'node:os'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { systemClock } from '../clock.js'
import { configFileFrom, describeProblems, loadConfigFile } from '../config/load.js'
import type { GatewayConfig } from '../config/schema.js'
import { createRedisStore, type RedisTarget } from '../store/redis.js'
import type { Store } from '../store/types.js'
import { createRevocation, type Revocation, type RevocableClaims } from '../tokens/revocation.js'
import { createIssuedTokens, type IssuedTokens } from '../tokens/issued.js'
import { createAudit, type Audit } from '../audit.js'

// What every admin command shares: argument parsing, output, and the store the running
// gateways use (found through the same config file, so prefix and channels match).

/** Where a command writes; the CLI passes process streams, tests collect strings. */
export interface AdminIo {
  out(text: string): void
  err(text: string): void
  readonly env: NodeJS.ProcessEnv
}

/** A bad argument: usage is printed, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** The command could not do its work (config, store, unknown jti): exit status 1. */
export class AdminError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AdminError'
  }
}

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

type Options = NonNullable<ParseArgsConfig['options']>

export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options

/** The commands that list and revoke tokens add these: whose tokens, or all of them. */
export const TOKEN_OPTIONS = {
  ...COMMON_OPTIONS,
  user: { type: 'string', short: 'u' },
  all: { type: 'boolean' },
} as const satisfies Options

/** parseArgs in strict mode, its errors turned into UsageError (unknown option, missing value). */
function parse<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/**
 * `<command> <sub> [options]`: the subcommand with its parsed options, or the exit code when
 * the caller only asked for help (0) or gave no subcommand (usage, 2).
 */
export function subcommand<O extends Options & { help: typeof COMMON_OPTIONS.help }>(
  args: string[],
  options: O,
  usage: string,
  io: AdminIo,
) {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.out(usage)
    return { done: true, exit: sub === undefined ? EXIT_USAGE : EXIT_OK } as const
  }
  const parsed = parse(rest, options)
  if ((parsed.values as { help?: boolean }).help) {
    io.out(usage)
    return { done: true, exit: EXIT_OK } as const
  }
  return { done: false, sub, ...parsed } as const
}

/**
 * subcommand() for the token commands (`keygate <command> list|revoke …`): a --user must name
 * someone, and list takes no arguments.
 */
export function tokenSubcommand<O extends typeof TOKEN_OPTIONS>(
  command: string,
  args: string[],
  options: O,
  usage: string,
  io: AdminIo,
) {
  const parsed = subcommand(args, options, usage, io)
  if (parsed.done) return parsed
  if ((parsed.values as { user?: string }).user === '') throw new UsageError('--user needs a user name')
  if (parsed.sub === 'list' && parsed.positionals.length > 0)
    throw new UsageError(`${command} list takes no arguments (got "${parsed.positionals[0]}")`)
  return parsed
}

/** Who an admin revocation is attributed to in the audit trail. */
export function operator(): string {
  try {
    return `admin-cli:${userInfo().username}`
  } catch {
    return 'admin-cli'
  }
}

/** An aligned text table (no colours: output is often piped). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n') + '\n'
}

/** The Redis target for messages, with any password taken out of it. */
function describeTarget(target: RedisTarget): string {
  if (typeof target === 'string') {
    try {
      const url = new URL(target)
      // A lone user part may be a password too (redis://secret@host): neither is shown.
      if (url.password) url.password = '***'
      if (url.username) url.username = '***'
      return url.toString()
    } catch {
      return '(unparsable redis URL)'
    }
  }
  if ('sentinels' in target) return `sentinels ${target.sentinels.join(', ')} (master ${target.name})`
  return `cluster ${target.cluster.join(', ')}`
}

export interface AdminStore {
  readonly config: GatewayConfig
  readonly file: string
  readonly store: Store
  readonly issued: IssuedTokens
  /** Made on first use: it opens a subscriber connection that listing does not need. */
  revocation(): Promise<Revocation<RevocableClaims>>
  /** the config's audit file, when it has one; a no-op otherwise */
  readonly audit: Audit
  close(): Promise<void>
}

/** Runs a command's work on the store of the configured gateway, and closes the store after. */
export async function withAdminStore<T>(
  configFlag: string | undefined,
  io: AdminIo,
  work: (admin: AdminStore) => Promise<T>,
): Promise<T> {
  const admin = await openAdminStore(configFileFrom(configFlag, io.env), io.env)
  try {
    return await work(admin)
  } finally {
    await admin.close()
  }
}

/**
 * Opens the store of the config in `file`, or throws AdminError: invalid config, an in-memory
 * store (which lives inside each gateway process, out of reach), or Redis not answering within
 * about a second.
 */
async function openAdminStore(file: string, env: NodeJS.ProcessEnv): Promise<AdminStore> {
  const loaded = loadConfigFile(file, env)
  if (!loaded.ok) {
    throw new AdminError(describeProblems(loaded.problems))
  }
  const config = loaded.config
  const redis = config.store.redis
  if (redis === undefined) {
    throw new AdminError(
      `the admin commands need store.redis: ${file} uses the in-memory store, which lives inside each gateway process`,
    )
  }
  let lastError: Error | null = null
  const store = createRedisStore({
    redis,
    prefix: config.store.prefix,
    onError: (err) => {
      lastError = err
    },
  })
  try {
    await store.ping()
  } catch (err) {
    await store.close()
    const cause = lastError ?? (err as Error).cause ?? err
    throw new AdminError(
      `cannot reach the store at ${describeTarget(redis)}: ${(cause as Error).message ?? String(cause)}`,
    )
  }
  const clock = systemClock
  let revocation: Promise<Revocation<RevocableClaims>> | null = null
  // Only a file trail is written from here: `audit: true` means the gateway's own stdout, which
  // this process cannot reach (and its stdout is the command's output).
  const audit =
    typeof config.audit === 'object'
      ? createAudit({ audit: config.audit, source: 'admin-cli' })
      : createAudit({ audit: false })
  return {
    config,
    file,
    store,
    issued: createIssuedTokens({ store, clock, graceMs: config.secrets.jwt.clockSkew }),
    revocation() {
      // Same channel and tolerance as the gateways' (auth/index.ts), or they would not hear it.
      revocation ??= createRevocation<RevocableClaims>({
        store,
        clock,
        healthy: () => true,
        clockToleranceMs: config.secrets.jwt.clockSkew,
        issuer: config.secrets.jwt.issuer,
      })
      return revocation
    },
    audit,
    async close() {
      if (revocation) (await revocation).close()
      audit.close()
      await store.close()
    },
  }
}
