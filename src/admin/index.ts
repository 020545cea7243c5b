import { StoreUnavailableError } from '../errors.js'
import { AdminError, EXIT_FAILED, EXIT_USAGE, UsageError, type AdminIo } from './common.js'
import { APPTOKENS_USAGE, runAppTokens } from './apptokens.js'
import { KEYS_USAGE, runKeys } from './keys.js'
import { SESSIONS_USAGE, TOKENS_USAGE, runTokens } from './tokens.js'

// The admin command line: operators act on tokens in the store the running gateways share,
// without touching Redis by hand. cli.ts hands every admin command here.

export type { AdminIo } from './common.js'

const USAGES: Readonly<Record<string, string>> = {
  tokens: TOKENS_USAGE,
  sessions: SESSIONS_USAGE,
  apptokens: APPTOKENS_USAGE,
  keys: KEYS_USAGE,
}

/** Runs `keygate <command> …`; the exit status (0 done, 1 failed, 2 bad arguments). Never throws. */
export async function runAdmin(command: string, args: string[], io: AdminIo): Promise<number> {
  try {
    switch (command) {
      case 'tokens':
        return await runTokens('tokens', args, io)
      case 'sessions':
        return await runTokens('sessions', args, io)
      case 'apptokens':
        return await runAppTokens(args, io)
      case 'keys':
        return runKeys(args, io)
      default:
        throw new UsageError(`unknown admin command "${command}"`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(
        `keygate ${command}: ${err.message}\n${USAGES[command] ? `run \`keygate ${command} --help\` for the usage\n` : ''}`,
      )
      return EXIT_USAGE
    }
    io.err(`keygate ${command}: ${describe(err)}\n`)
    return EXIT_FAILED
  }
}

/** Process streams and environment, for cli.ts. */
export const processIo = (): AdminIo => ({
  out: (text) => {
    process.stdout.write(text)
  },
  err: (text) => {
    process.stderr.write(text)
  },
  env: process.env,
})

function describe(err: unknown): string {
  if (err instanceof AdminError) return err.message
  // The store answered the first ping, then stopped: say so rather than "store unavailable".
  if (err instanceof StoreUnavailableError)
    return `the store stopped answering: ${(err.cause as Error | undefined)?.message ?? 'no answer'}`
  return `unexpected error: ${(err as Error).message}`
}
