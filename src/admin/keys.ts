import { randomBytes } from 'node:crypto'
import { sha256Hex } from '../util/secret.js'
import { COMMON_OPTIONS, EXIT_OK, UsageError, subcommand, type AdminIo } from './common.js'
import { runNewSigningKey } from './signing-key.js'

// `keygate keys new <name>`: a fresh ApiKey. The key is printed once and kept nowhere: the
// config holds only its keyHash, as `keygate hash-key` would print it.

export const KEYS_USAGE = `usage:
  keygate keys new <name> [--json]
  keygate keys new-signing-key [--alg ES256|EdDSA|RS256|HS256] [--json]

Prints a fresh random ApiKey (32 bytes from the CSPRNG, as hex) once, the keyHash line for
gateway.yaml, and an apiKeys entry to paste. keygate never stores the key itself: give it to the
client now. Needs no config and no store.

new-signing-key prints a fresh JWT signing key (default ES256) as an entry for secrets.jwt.keys:
put it first, keep the old keys after it until their tokens have expired.

options:
      --alg ALG    new-signing-key: the key's algorithm (default ES256)
      --json       {"name", "key", "keyHash"} (new-signing-key: {"kid", "alg", …}) on one line
  -h, --help       this text
exit status: 0 done, 2 bad arguments
`

const KEY_BYTES = 32
// Control characters would break the YAML snippet and the logs that name the key.
const NAME_SHAPE = /^[^\x00-\x1f\x7f]{1,100}$/

export function runKeys(args: string[], io: AdminIo, random: (bytes: number) => Buffer = randomBytes): number {
  const command = subcommand(
    args,
    { help: COMMON_OPTIONS.help, json: COMMON_OPTIONS.json, alg: { type: 'string' } },
    KEYS_USAGE,
    io,
  )
  if (command.done) return command.exit
  const { sub, values, positionals } = command
  if (sub === 'new-signing-key') {
    if (positionals.length > 0) throw new UsageError('keys new-signing-key takes no name')
    return runNewSigningKey(values, io)
  }
  if (sub !== 'new') throw new UsageError(`unknown keys command "${sub}" (expected new or new-signing-key)`)
  if (values.alg !== undefined) throw new UsageError('--alg belongs to keys new-signing-key')
  if (positionals.length !== 1) throw new UsageError("keys new needs exactly one name (the apiKeys entry's name)")
  const name = positionals[0]!
  if (!NAME_SHAPE.test(name)) throw new UsageError('a key name is 1 to 100 characters, without control characters')

  const key = random(KEY_BYTES).toString('hex')
  const keyHash = `sha256:${sha256Hex(key)}`
  if (values.json) {
    io.out(JSON.stringify({ name, key, keyHash }) + '\n')
    return EXIT_OK
  }
  // JSON string syntax is valid YAML, so any name pastes safely.
  io.out(`key: ${key}
keyHash: ${keyHash}

# The key is shown only this once: give it to the client (Authorization: ApiKey <key>).
# Add to gateway.yaml:
apiKeys:
  - name: ${JSON.stringify(name)}
    keyHash: ${keyHash}
    cidr: []              # client networks, e.g. [10.0.0.0/8]; empty = any address
    allow:
      paths: []           # path prefixes the key may reach; nothing is allowed unless listed
      actionModules: []   # Action API modules, e.g. [opensearch, query+search]
`)
  return EXIT_OK
}
