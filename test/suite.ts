import { run } from 'node:test'
import { spec, tap } from 'node:test/reporters'
import { readdirSync } from 'node:fs'
import { finished } from 'node:stream/promises'

// `npm test` runs the test files two at a time (the suite spends much of its time waiting on
// timeouts, child processes and sockets), then the files below one at a time: they bound how long
// a child process or an answer may take while the machine is busy with them (worker fleets,
// HTTP/2 floods, 5,000 open sockets, a CLI timed from its spawn, Redis TTLs of a few hundred ms),
// and failed when another file ran beside them.
// Arguments name the files to run instead (each group keeps its way of running).

const SERIAL = new Set(['admin', 'connections', 'http2', 'lifecycle', 'serve-process', 'store'])

const named = process.argv.slice(2)
const files = (
  named.length > 0
    ? named
    : readdirSync('test')
        .filter((f) => f.endsWith('.test.ts'))
        .map((f) => `test/${f}`)
).sort()
const isSerial = (file: string) => SERIAL.has(file.replace(/^.*\//, '').replace(/\.test\.ts$/, ''))

async function runGroup(group: readonly string[], concurrency: number): Promise<void> {
  if (group.length === 0) return
  const stream = run({ files: [...group], concurrency })
  stream.on('test:fail', () => {
    process.exitCode = 1
  })
  // TAP where a log is kept (CI, the landing train), the spec reporter in a terminal
  const report = process.stdout.isTTY ? stream.compose(new spec()) : stream.compose(tap)
  report.pipe(process.stdout, { end: false })
  await finished(report)
}

await runGroup(
  files.filter((f) => !isSerial(f)),
  2,
)
await runGroup(files.filter(isSerial), 1)
