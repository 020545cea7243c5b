import type { GatewayConfig } from '../config/schema.js'
import { iso } from '../util/iso-time.js'
import { isTokenType, isJti, TOKEN_TYPES, type TokenType } from '../principal.js'
import type { IssuedRecord } from '../tokens/issued.js'
import { createJwtKeys } from '../tokens/jwt-keys.js'
import { verifyJwt } from '../tokens/own-tokens.js'
import { systemClock } from '../clock.js'
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

// `keygate tokens …` and `keygate sessions …`: the JWTs /api/authorize issued, from their
// records (tokens/issued.ts), and their revocation through the same denylist and pub/sub channel
// the gateways use, so that a running gateway refuses a revoked token within a second.

type Family = 'tokens' | 'sessions'

export const TOKENS_USAGE = `usage:
  keygate tokens list [--user U] [--type T] [--json] [--config FILE]
  keygate tokens revoke <jti> | --token JWT | --user U [--type T] [--json] [--config FILE]
  keygate tokens revoke --all --before TIME|now [--json] [--config FILE]

Lists or revokes the JWTs keygate issued (types: ${TOKEN_TYPES.join(', ')}), in the store of the
gateway configured in FILE (default: $KEYGATE_CONFIG, then ./gateway.yaml; it needs store.redis).
A revoked token is refused by every running gateway within a second (401 E1002).
A jti or token is denylisted even when the store holds no record of it (expired, unknown, or lost
with the store's data): a jti until the longest configured token lifetime has passed, a token
until its own exp. --all --before refuses every token of the configured issuer issued before TIME
(ISO 8601, or now), for when the store has lost its revocations.

options:
  -u, --user U     only the tokens of user U
  -t, --type T     only tokens of type T
      --token JWT  the token itself (checked with the configured key) instead of its jti
      --all        every token issued before --before
      --before T   an ISO 8601 time, or now
      --json       machine-readable output
  -c, --config F   the gateway's config file
  -h, --help       this text
exit status: 0 done, 1 failed (config, store unreachable, a --token the gateway would not accept), 2 bad arguments
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
exit status: 0 done, 1 failed (config, store unreachable, a jti that is not a session), 2 bad arguments
`

const OPTIONS = {
  ...TOKEN_OPTIONS,
  type: { type: 'string', short: 't' },
  token: { type: 'string' },
  before: { type: 'string' },
} as const

/** The longest any token of this config can live: how long a record-less jti stays denylisted. */
const longestTokenTtl = (config: GatewayConfig): number => {
  const t = config.tokens
  return Math.max(t.access.ttl, t.refresh.ttl, t.api.ttl, t.session.ttl, t.session.remember)
}

/** `--before`: now, or an ISO 8601 time not in the future (it would refuse tokens not yet issued). */
function parseBefore(text: string, now: number): number {
  const at = text === 'now' ? now : Date.parse(text)
  if (!Number.isFinite(at)) throw new UsageError(`--before "${text}" is not a time (ISO 8601, or now)`)
  if (at > now + 1000) throw new UsageError(`--before ${text} is in the future: it would refuse tokens not yet issued`)
  return at
}

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
  const command = tokenSubcommand(family, args, OPTIONS, usage, io)
  if (command.done) return command.exit
  const { sub, values, positionals } = command
  if (family === 'sessions' && values.type !== undefined)
    throw new UsageError('sessions take no --type: they are tokens of type session')
  if (values.type !== undefined && !isTokenType(values.type)) {
    throw new UsageError(`unknown token type "${values.type}" (expected one of ${TOKEN_TYPES.join(', ')})`)
  }
  const type = family === 'sessions' ? 'session' : values.type

  switch (sub) {
    case 'list': {
      return withAdminStore(values.config, io, (admin) =>
        list(admin, family, values.user, type, values.json === true, io),
      )
    }
    case 'revoke': {
      if (positionals.length > 1) throw new UsageError(`${family} revoke takes one jti (got ${positionals.length})`)
      const jti = positionals[0]
      const json = values.json === true
      if (family === 'sessions' && (values.token !== undefined || values.all !== undefined))
        throw new UsageError('--token and --all are options of keygate tokens revoke')
      const chosen = [jti, values.user, values.token, values.all].filter((v) => v !== undefined).length
      if (chosen !== 1)
        throw new UsageError(
          family === 'tokens'
            ? 'tokens revoke needs a jti or --user U, --token JWT or --all --before TIME (one of them)'
            : 'sessions revoke needs a jti or --user U (one of them)',
        )
      if ((values.before !== undefined) !== (values.all === true))
        throw new UsageError('--all needs --before TIME|now, and --before goes with --all')
      if (jti !== undefined && !isJti(jti)) throw new UsageError(`"${jti}" is not a jti`)
      const before = values.before !== undefined ? parseBefore(values.before, Date.now()) : undefined
      return withAdminStore(values.config, io, (admin) =>
        jti !== undefined
          ? revokeOne(admin, family, jti, json, io)
          : values.token !== undefined
            ? revokeToken(admin, values.token, json, io)
            : before !== undefined
              ? revokeIssuedBefore(admin, before, json, io)
              : revokeUser(admin, family, values.user!, type, json, io),
      )
    }
    default:
      throw new UsageError(`unknown ${family} command "${sub}" (expected list or revoke)`)
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
  if (r === null) return denylistUnrecorded(admin, jti, json, io)
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

/**
 * No record: unknown, expired, or lost with the store's data. A stateless access token may still
 * be accepted (a store that lost its data lost its denylist too), so the jti is denylisted all the
 * same, for as long as any token this config issues can live.
 */
async function denylistUnrecorded(admin: AdminStore, jti: string, json: boolean, io: AdminIo): Promise<number> {
  const until = Date.now() + longestTokenTtl(admin.config)
  await (await admin.revocation()).revoke(jti, until)
  admin.audit.write({ kind: 'token.revoked', type: 'unrecorded', jti, subject: '', by: operator() })
  const kept = iso(until + admin.config.secrets.jwt.clockSkew)
  if (json) io.out(JSON.stringify({ revoked: [], denylisted: [{ jti, until: kept }], count: 1 }) + '\n')
  else io.out(`no record of ${jti} (unknown, expired, or lost with the store's data): denylisted until ${kept}\n`)
  return EXIT_OK
}

/** --token: the token is checked with the configured key, and denylisted until its own exp (+ skew). */
async function revokeToken(admin: AdminStore, token: string, json: boolean, io: AdminIo): Promise<number> {
  const keys = await createJwtKeys(admin.config.secrets.jwt)
  if (keys.ephemeral) throw new AdminError(`${admin.file} configures no secrets.jwt key: a token cannot be checked`)
  const v = await verifyJwt(keys, token, systemClock)
  // The reason is a fixed word (expired, signature, …), never token content.
  if (!v.ok) throw new AdminError(`not a token the gateway accepts (${v.reason ?? v.refusal.code}): nothing to revoke`)
  const c = v.claims
  await (await admin.revocation()).revoke(c.jti, c.expiresAt)
  const r = await admin.issued.get(c.jti)
  if (r !== null) await admin.issued.remove(r)
  admin.audit.write({ kind: 'token.revoked', type: c.type, jti: c.jti, subject: c.sub, by: operator() })
  const kept = iso(c.expiresAt + admin.config.secrets.jwt.clockSkew)
  if (json)
    io.out(JSON.stringify({ revoked: [{ jti: c.jti, type: c.type, user: c.sub, until: kept }], count: 1 }) + '\n')
  else io.out(`revoked ${c.jti} (${c.type} of ${c.sub}), denylisted until ${kept}\n`)
  return EXIT_OK
}

/** --all --before: the issuer's revocation epoch, kept until every token issued before it has expired. */
async function revokeIssuedBefore(admin: AdminStore, before: number, json: boolean, io: AdminIo): Promise<number> {
  const issuer = admin.config.secrets.jwt.issuer
  const until = before + longestTokenTtl(admin.config)
  const inForce = await (await admin.revocation()).revokeIssuedBefore(before, until)
  admin.audit.write({ kind: 'tokens.revokedBefore', issuer, before: iso(inForce), by: operator() })
  if (json) io.out(JSON.stringify({ issuer, before: iso(inForce) }) + '\n')
  else
    io.out(
      `every token of ${issuer} issued before ${iso(inForce)} is refused by running gateways within a second` +
        (inForce > before ? ` (an earlier command set that later time)` : '') +
        '\n',
    )
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
