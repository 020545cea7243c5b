import type { TokenType } from '../auth/types.js'
import type { IssuedRecord } from '../tokens/issued.js'
import {
  AdminError,
  COMMON_OPTIONS,
  EXIT_OK,
  UsageError,
  configFileFrom,
  iso,
  openAdminStore,
  operator,
  subcommand,
  table,
  type AdminIo,
  type AdminStore,
} from './common.js'

// `keygate tokens …` and `keygate sessions …`: the JWTs /api/authorize issued, from their
// records (tokens/issued.ts), and their revocation through the same denylist and pub/sub channel
// the gateways use, so that a running gateway refuses a revoked token within a second.

const TOKEN_TYPES: readonly TokenType[] = ['access', 'session', 'refresh', 'api']
// The shape revocation.ts accepts on its channel: printable ASCII, no spaces.
const JTI_SHAPE = /^[\x21-\x7e]{1,256}$/

type Family = 'tokens' | 'sessions'

export const TOKENS_USAGE = `usage:
  keygate tokens list [--user U] [--type T] [--json] [--config FILE]
  keygate tokens revoke <jti> | --user U [--type T] [--json] [--config FILE]

Lists or revokes the JWTs keygate issued (types: ${TOKEN_TYPES.join(', ')}), in the store of the
gateway configured in FILE (default: $KEYGATE_CONFIG, then ./gateway.yaml; it needs store.redis).
A revoked token is refused by every running gateway within a second (401 E1002).

options:
  -u, --user U     only the tokens of user U
  -t, --type T     only tokens of type T
      --json       machine-readable output
  -c, --config F   the gateway's config file
  -h, --help       this text
exit status: 0 done, 1 failed (config, store unreachable, unknown jti), 2 bad arguments
`

export const SESSIONS_USAGE = `usage:
  keygate sessions list [--user U] [--json] [--config FILE]
  keygate sessions revoke <jti> | --user U [--json] [--config FILE]

Lists or ends browser and API sessions (JWTs of type session) in the store of the gateway
configured in FILE (default: $KEYGATE_CONFIG, then ./gateway.yaml; it needs store.redis).
An ended session is refused by every running gateway within a second.

options:
  -u, --user U     only the sessions of user U
      --json       machine-readable output
  -c, --config F   the gateway's config file
  -h, --help       this text
exit status: 0 done, 1 failed (config, store unreachable, unknown jti), 2 bad arguments
`

const OPTIONS = {
  ...COMMON_OPTIONS,
  user: { type: 'string', short: 'u' },
  type: { type: 'string', short: 't' },
} as const

/** What --json shows of a record: times as ISO strings, the subject as `user`. */
const view = (r: IssuedRecord) => ({
  jti: r.jti,
  type: r.type,
  user: r.sub,
  uid: r.uid,
  clientId: r.clientId,
  clientIp: r.clientIp,
  issued: iso(r.issuedAt),
  expires: iso(r.expiresAt),
})

export async function runTokens(family: Family, args: string[], io: AdminIo): Promise<number> {
  const usage = family === 'tokens' ? TOKENS_USAGE : SESSIONS_USAGE
  const command = subcommand(args, OPTIONS, usage, io)
  if (command.done) return command.exit
  const { sub, values, positionals } = command
  if (family === 'sessions' && values.type !== undefined)
    throw new UsageError('sessions take no --type: they are tokens of type session')
  if (values.type !== undefined && !TOKEN_TYPES.includes(values.type as TokenType)) {
    throw new UsageError(`unknown token type "${values.type}" (expected one of ${TOKEN_TYPES.join(', ')})`)
  }
  if (values.user === '') throw new UsageError('--user needs a user name')
  const type = family === 'sessions' ? 'session' : (values.type as TokenType | undefined)

  switch (sub) {
    case 'list': {
      if (positionals.length > 0) throw new UsageError(`${family} list takes no arguments (got "${positionals[0]}")`)
      return withStore(values.config, io, (admin) => list(admin, family, values.user, type, values.json === true, io))
    }
    case 'revoke': {
      if (positionals.length > 1) throw new UsageError(`${family} revoke takes one jti (got ${positionals.length})`)
      const jti = positionals[0]
      if ((jti === undefined) === (values.user === undefined))
        throw new UsageError(`${family} revoke needs a jti or --user U (one of them)`)
      if (jti !== undefined && !JTI_SHAPE.test(jti)) throw new UsageError(`"${jti}" is not a jti`)
      return withStore(values.config, io, (admin) =>
        jti !== undefined
          ? revokeOne(admin, family, jti, values.json === true, io)
          : revokeUser(admin, family, values.user!, type, values.json === true, io),
      )
    }
    default:
      throw new UsageError(`unknown ${family} command "${sub}" (expected list or revoke)`)
  }
}

async function withStore(
  configFlag: string | undefined,
  io: AdminIo,
  work: (admin: AdminStore) => Promise<number>,
): Promise<number> {
  const admin = await openAdminStore(configFileFrom(configFlag, io.env), io.env)
  try {
    return await work(admin)
  } finally {
    await admin.close()
  }
}

async function select(
  admin: AdminStore,
  user: string | undefined,
  type: TokenType | undefined,
): Promise<IssuedRecord[]> {
  const records = user !== undefined ? await admin.issued.listByUser(user) : await admin.issued.listAll()
  return records
    .filter((r) => type === undefined || r.type === type)
    .sort((a, b) => a.issuedAt - b.issuedAt || a.jti.localeCompare(b.jti))
}

async function list(
  admin: AdminStore,
  family: Family,
  user: string | undefined,
  type: TokenType | undefined,
  json: boolean,
  io: AdminIo,
): Promise<number> {
  const records = await select(admin, user, type)
  if (json) {
    io.out(JSON.stringify(records.map(view)) + '\n')
  } else if (records.length === 0) {
    io.out(`no ${family}${user !== undefined ? ` of ${user}` : ''}\n`)
  } else {
    io.out(
      table(
        ['JTI', 'TYPE', 'USER', 'ISSUED', 'EXPIRES', 'CLIENT IP'],
        records.map((r) => [r.jti, r.type, r.sub, iso(r.issuedAt), iso(r.expiresAt), r.clientIp]),
      ),
    )
  }
  return EXIT_OK
}

/** Denylist first (that is what running gateways check), then drop the record. */
async function revokeRecord(admin: AdminStore, r: IssuedRecord): Promise<void> {
  const revocation = await admin.revocation()
  await revocation.revoke(r.jti, r.expiresAt)
  await admin.issued.remove(r)
  admin.audit.write({ kind: 'token.revoked', type: r.type, jti: r.jti, subject: r.sub, by: operator() })
}

async function revokeOne(admin: AdminStore, family: Family, jti: string, json: boolean, io: AdminIo): Promise<number> {
  const r = await admin.issued.get(jti)
  if (r === null) throw new AdminError(`no live token with jti ${jti} (unknown, expired or already revoked)`)
  if (family === 'sessions' && r.type !== 'session') {
    throw new AdminError(
      `${jti} is ${r.type === 'access' || r.type === 'api' ? 'an' : 'a'} ${r.type} token, not a session: use keygate tokens revoke`,
    )
  }
  await revokeRecord(admin, r)
  if (json) io.out(JSON.stringify({ revoked: [view(r)], count: 1 }) + '\n')
  else io.out(`revoked ${r.jti} (${r.type} of ${r.sub})\n`)
  return EXIT_OK
}

async function revokeUser(
  admin: AdminStore,
  family: Family,
  user: string,
  type: TokenType | undefined,
  json: boolean,
  io: AdminIo,
): Promise<number> {
  const records = await select(admin, user, type)
  for (const r of records) await revokeRecord(admin, r)
  if (json) io.out(JSON.stringify({ revoked: records.map(view), count: records.length }) + '\n')
  else if (records.length === 0) io.out(`no ${family} of ${user} to revoke\n`)
  else
    io.out(
      `revoked ${records.length} ${records.length === 1 ? family.replace(/s$/, '') : family} of ${user}: ${records.map((r) => r.jti).join(', ')}\n`,
    )
  return EXIT_OK
}
