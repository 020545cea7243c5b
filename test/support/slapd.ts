import { spawnSync } from 'node:child_process'
import { writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, makeTempDir, startProcess, waitForPort, type RunningProcess } from './processes.js'

// A real OpenLDAP slapd (Debian's) for the tests: its own config and database in a temp dir, on a
// free loopback port, loaded from an LDIF with slapadd. It can be stopped and started again on the
// same port and data, to test what keygate does while the directory is down.

export const SLAPD = '/usr/sbin/slapd'
export const SLAPADD = '/usr/sbin/slapadd'
export const LDAPMODIFY = 'ldapmodify'
export const LDAP_SUFFIX = 'dc=example,dc=org'
export const LDAP_ADMIN_PW = 'slapd-admin-password'

export interface Slapd {
  readonly url: string
  readonly ldapsUrl: string | null
  /** applies an LDIF change as the directory's administrator, with ldapmodify (ldap-utils) */
  modify(ldif: string): void
  stop(): Promise<void>
  start(): Promise<void>
}

/** With `tls`, slapd also answers ldaps:// (on `ldapsUrl`) with that certificate and key (PEM files). */
export async function startSlapd(ldif: string, tls?: { cert: string; key: string }): Promise<Slapd> {
  const dir = await makeTempDir('kg-slapd-')
  mkdirSync(join(dir, 'db'))
  const conf = join(dir, 'slapd.conf')
  writeFileSync(
    conf,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      'include /etc/ldap/schema/nis.schema',
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'database mdb',
      'maxsize 10485760',
      `suffix "${LDAP_SUFFIX}"`,
      `rootdn "cn=admin,${LDAP_SUFFIX}"`,
      `rootpw ${LDAP_ADMIN_PW}`,
      `directory ${join(dir, 'db')}`,
      ...(tls ? [`TLSCertificateFile ${tls.cert}`, `TLSCertificateKeyFile ${tls.key}`] : []),
      // as a directory would be run: passwords only for binding, entries only for bound users
      'access to attrs=userPassword by self write by anonymous auth by * none',
      'access to * by users read by * none',
      '',
    ].join('\n'),
  )
  writeFileSync(join(dir, 'data.ldif'), ldif)
  const added = spawnSync(SLAPADD, ['-f', conf, '-l', join(dir, 'data.ldif')], { encoding: 'utf8' })
  if (added.status !== 0) throw new Error(`slapadd failed: ${added.stderr}`)
  const port = await freePort()
  const url = `ldap://127.0.0.1:${port}`
  const ldapsUrl = tls ? `ldaps://127.0.0.1:${await freePort()}` : null
  let proc: RunningProcess | null = null
  const start = async () => {
    // -d 0: stay in the foreground (the test owns the process), log nothing
    const listen = ldapsUrl ? `${url}/ ${ldapsUrl}/` : `${url}/`
    proc = startProcess(SLAPD, ['-f', conf, '-h', listen, '-d', '0'])
    await waitForPort(port, proc)
  }
  await start()
  return {
    url,
    ldapsUrl,
    start,
    modify(change) {
      const r = spawnSync(LDAPMODIFY, ['-x', '-H', url, '-D', `cn=admin,${LDAP_SUFFIX}`, '-w', LDAP_ADMIN_PW], {
        input: change,
        encoding: 'utf8',
      })
      if (r.status !== 0) throw new Error(`ldapmodify failed: ${r.stderr}`)
    },
    stop: async () => {
      await proc?.stop()
      proc = null
    },
  }
}
