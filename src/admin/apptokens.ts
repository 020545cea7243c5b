import { iso } from '../util/iso-time.js'
import { systemClock } from '../clock.js'
import type { AppTokenRecord } from '../auth/apptoken.js'
import { createTokenRegistry, type StoredToken, type TokenRegistry } from '../tokens/opaque.js'
import {
  AdminError,
  EXIT_OK,
  TOKEN_OPTIONS,
  UsageError,
  operator,
  table,
  tokenSubcommand,
  withAdminStore,
  type AdminIo,
  type AdminStore,
} from './common.js'

// `keygate apptokens …`: the AppTokens /mws/v1/app-token/generate handed out. The store holds
// them only by sha256 (tokens/opaque.ts, kind 'app'), so they are listed and revoked by hash.
// A gateway reads an AppToken's record on every request: deleting it takes effect at once.

export const APPTOKENS_USAGE = `usage:
  keygate apptokens list [--user U] [--json] [--config FILE]
  keygate apptokens revoke <hash> | --user U | --all [--json] [--config FILE]

Lists or revokes AppTokens in the store of the gateway configured in FILE (default:
$KEYGATE_CONFIG, then ./gateway.yaml; it needs store.redis). Tokens are known by the sha256 of
their value (what the list shows); a revoked AppToken is refused at once (401 E1001).

options:
  -u, --user U     only the tokens issued to user U (the service user, for ApiKey callers)
      --all        every AppToken
      --json       machine-readable output
  -c, --config F   the gateway's config file
  -h, --help       this text
exit status: 0 done, 1 failed (config, store unreachable, unknown hash), 2 bad arguments
`

const HASH_SHAPE = /^[0-9a-f]{64}$/
// The registry's own key layout (tokens/opaque.ts), read here only to enumerate.
const INDEX_PREFIX = 'tokidx:app:'
const TOKEN_PREFIX = 'tok:app:'

const view = (t: StoredToken<AppTokenRecord>) => ({
  hash: t.hash,
  user: t.record.username,
  uid: t.record.uid,
  groups: t.record.groups,
  issuedBy: t.record.issuedBy ?? null,
  issued: iso(t.issuedAt),
  expires: iso(t.expiresAt),
})

export async function runAppTokens(args: string[], io: AdminIo): Promise<number> {
  const command = tokenSubcommand('apptokens', args, TOKEN_OPTIONS, APPTOKENS_USAGE, io)
  if (command.done) return command.exit
  const { sub, values, positionals } = command
  const json = values.json === true
  switch (sub) {
    case 'list':
      if (values.all) throw new UsageError('apptokens list lists all tokens without --all')
      return withRegistry(values.config, io, (admin, registry) => list(admin, registry, values.user, json, io))
    case 'revoke': {
      if (positionals.length > 1) throw new UsageError(`apptokens revoke takes one hash (got ${positionals.length})`)
      const hash = positionals[0]
      const chosen = [hash !== undefined, values.user !== undefined, values.all === true].filter(Boolean).length
      if (chosen !== 1) throw new UsageError('apptokens revoke needs exactly one of <hash>, --user U or --all')
      if (hash !== undefined && !HASH_SHAPE.test(hash))
        throw new UsageError(`"${hash}" is not a token hash (64 lowercase hex digits, as apptokens list shows)`)
      return withRegistry(values.config, io, async (admin, registry) => {
        const revoked =
          hash !== undefined
            ? await revokeHash(admin, registry, hash)
            : values.all
              ? await revokeAll(admin, registry)
              : await revokeTokens(admin, registry, await registry.listByUser(values.user!))
        if (json) io.out(JSON.stringify({ revoked, count: revoked.length }) + '\n')
        else if (revoked.length === 0)
          io.out(`no app tokens${values.user !== undefined ? ` of ${values.user}` : ''} to revoke\n`)
        else
          io.out(
            `revoked ${revoked.length} app token${revoked.length === 1 ? '' : 's'}: ${revoked.map((r) => r.hash).join(', ')}\n`,
          )
        return EXIT_OK
      })
    }
    default:
      throw new UsageError(`unknown apptokens command "${sub}" (expected list or revoke)`)
  }
}

async function withRegistry(
  configFlag: string | undefined,
  io: AdminIo,
  work: (admin: AdminStore, registry: TokenRegistry<AppTokenRecord>) => Promise<number>,
): Promise<number> {
  return withAdminStore(configFlag, io, (admin) =>
    work(
      admin,
      createTokenRegistry<AppTokenRecord>({
        store: admin.store,
        clock: systemClock,
        kind: 'app',
        ttlMs: admin.config.tokens.appToken.ttl,
      }),
    ),
  )
}

/** Every live AppToken, by way of the per-user indexes (the registry parses the records). */
async function listAll(
  admin: AdminStore,
  registry: TokenRegistry<AppTokenRecord>,
): Promise<StoredToken<AppTokenRecord>[]> {
  const users = (await admin.store.keys(INDEX_PREFIX)).map((k) => decodeURIComponent(k.slice(INDEX_PREFIX.length)))
  const found = (await Promise.all(users.map((u) => registry.listByUser(u)))).flat()
  return found.sort((a, b) => a.issuedAt - b.issuedAt || a.hash.localeCompare(b.hash))
}

async function list(
  admin: AdminStore,
  registry: TokenRegistry<AppTokenRecord>,
  user: string | undefined,
  json: boolean,
  io: AdminIo,
): Promise<number> {
  const tokens = user !== undefined ? await registry.listByUser(user) : await listAll(admin, registry)
  if (json) io.out(JSON.stringify(tokens.map(view)) + '\n')
  else if (tokens.length === 0) io.out(`no app tokens${user !== undefined ? ` of ${user}` : ''}\n`)
  else
    io.out(
      table(
        ['HASH', 'USER', 'ISSUED BY', 'ISSUED', 'EXPIRES'],
        tokens.map((t) => [
          t.hash,
          t.record.username,
          String(t.record.issuedBy ?? ''),
          iso(t.issuedAt),
          iso(t.expiresAt),
        ]),
      ),
    )
  return EXIT_OK
}

interface Revoked {
  readonly hash: string
  readonly user: string | null
}

async function revokeTokens(
  admin: AdminStore,
  registry: TokenRegistry<AppTokenRecord>,
  tokens: readonly StoredToken<AppTokenRecord>[],
): Promise<Revoked[]> {
  const out: Revoked[] = []
  for (const t of tokens) {
    if (!(await registry.revokeByHash(t.hash))) continue // expired meanwhile
    admin.audit.write({ kind: 'token.revoked', type: 'app', jti: t.hash, subject: t.record.username, by: operator() })
    out.push({ hash: t.hash, user: t.record.username })
  }
  return out
}

async function revokeHash(
  admin: AdminStore,
  registry: TokenRegistry<AppTokenRecord>,
  hash: string,
): Promise<Revoked[]> {
  const known = (await listAll(admin, registry)).find((t) => t.hash === hash)
  if (known) return revokeTokens(admin, registry, [known])
  // Not in any index (should not happen): the record itself may still exist.
  if (!(await registry.revokeByHash(hash))) throw new AdminError(`no live app token with hash ${hash}`)
  admin.audit.write({ kind: 'token.revoked', type: 'app', jti: hash, subject: '', by: operator() })
  return [{ hash, user: null }]
}

/** Through the indexes, then any record no index names (so that --all leaves none behind). */
async function revokeAll(admin: AdminStore, registry: TokenRegistry<AppTokenRecord>): Promise<Revoked[]> {
  const out = await revokeTokens(admin, registry, await listAll(admin, registry))
  for (const key of await admin.store.keys(TOKEN_PREFIX)) {
    const hash = key.slice(TOKEN_PREFIX.length)
    if (!(await registry.revokeByHash(hash))) continue
    admin.audit.write({ kind: 'token.revoked', type: 'app', jti: hash, subject: '', by: operator() })
    out.push({ hash, user: null })
  }
  return out
}
