import { fileURLToPath } from 'node:url'
import { freePort, startProcess, waitForPort } from './processes.js'

const SCRIPT = fileURLToPath(new URL('./php-echo.php', import.meta.url))

/** `php -S` serving php-echo.php for every path: the upstream answers with its $_SERVER HTTP_* entries. */
export async function startPhpEcho(): Promise<{ url: string; port: number }> {
  const port = await freePort()
  const proc = startProcess('php', ['-S', `127.0.0.1:${port}`, SCRIPT])
  await waitForPort(port, proc)
  return { url: `http://127.0.0.1:${port}`, port }
}
