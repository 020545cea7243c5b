import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { parseRawResponse, type RawResponse } from '../helpers.js'

/**
 * One raw keep-alive connection: requests go out one at a time and each answer is read by its
 * Content-Length (or chunked end), so a test sees whether the server kept the connection.
 */
export async function keepAliveClient(port: number) {
  const socket: Socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let buffered = Buffer.alloc(0)
  let closed = false
  let wake: (() => void) | null = null
  socket.on('data', (c: Buffer) => {
    buffered = Buffer.concat([buffered, c])
    wake?.()
  })
  socket.on('close', () => {
    closed = true
    wake?.()
  })
  socket.on('error', () => {})

  /** The next whole response, or null when the connection closed first. */
  async function next(): Promise<RawResponse | null> {
    for (;;) {
      const whole = wholeResponseLength(buffered)
      if (whole > 0) {
        const text = buffered.subarray(0, whole).toString('latin1')
        buffered = buffered.subarray(whole)
        return parseRawResponse(text)
      }
      if (closed) return null
      await new Promise<void>((resolve) => (wake = resolve))
      wake = null
    }
  }
  return {
    socket,
    get closed() {
      return closed
    },
    send(request: string) {
      socket.write(request)
    },
    next,
    async request(request: string) {
      socket.write(request)
      return next()
    },
    close: () => socket.destroy(),
  }
}

function wholeResponseLength(buf: Buffer): number {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return 0
  const head = buf.subarray(0, end).toString('latin1')
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (length) {
    const total = end + 4 + Number(length[1])
    return buf.length >= total ? total : 0
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const last = buf.indexOf('\r\n0\r\n\r\n', end)
    return last === -1 ? 0 : last + 7
  }
  return end + 4
}
