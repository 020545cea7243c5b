import { createHash } from 'node:crypto'
import type { UserConfig } from '../config/schema.js'

// The parts of the Suffit /api/authorize answer that are Suffit's own spelling, in one place.

export const AUTHORIZED_MESSAGE = 'The user is successfully authorized'

/** Suffit writes datetimes to the second, in UTC: 2024-08-13T14:42:56Z. */
export const suffitDatetime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z')

export const md5 = (text: string) => createHash('md5').update(text).digest('hex')

/** The answer's `user` object: Suffit's fields under Suffit's names. */
export function suffitUser(user: UserConfig) {
  return {
    uid: user.uid,
    username: user.username,
    name: user.name,
    email: user.email,
    email_md5: md5(user.email.trim().toLowerCase()),
    groups: user.groups,
    role: user.role ?? '',
    flags: user.flags,
    // Suffit names the password digest; keygate keeps scrypt hashes only (a directory user has none here).
    algorithm: user.passwordHash.startsWith('scrypt$') ? 'SCRYPT' : '',
    attributes: user.attributes,
    comment: user.comment,
    created: user.created,
    expires: user.expires,
    not_before: user.notBefore,
    not_after: user.notAfter,
    public_key: user.publicKey,
  }
}
