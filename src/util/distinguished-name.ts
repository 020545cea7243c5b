/**
 * A distinguished name as a comparable key: its attributes as TYPE=value, sorted, one a line.
 * The order of the attributes is not compared (a config names CN first, a certificate may list
 * C first); every attribute and its value are, exactly.
 */
const keyOf = (pairs: readonly string[]): string | null => {
  const attributes: string[] = []
  for (const pair of pairs) {
    const i = pair.indexOf('=')
    if (i <= 0) return null
    attributes.push(`${pair.slice(0, i).trim().toUpperCase()}=${pair.slice(i + 1).trim()}`)
  }
  return attributes.sort().join('\n')
}

/** A subject as written in the config: `CN=billing,O=Example` (a comma inside a value as `\,`). */
export function subjectKey(text: string): string | null {
  return keyOf(text.split(/(?<!\\),/).map((p) => p.replace(/\\,/g, ',')))
}

/** A certificate's subject as node:crypto gives it (X509Certificate.subject: one attribute a line). */
export const certificateSubjectKey = (subject: string): string => keyOf(subject.split('\n')) ?? ''
