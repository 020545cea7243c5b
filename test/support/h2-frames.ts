import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'

// HTTP/2 as a hostile client writes it: frames and header blocks made by hand, so that the test can
// send what Node's client refuses to (connection-specific fields, upper-case names, spaces).

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 }
export const FLAG = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 }
/** RFC 9113 §7 */
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, CANCEL: 8 }

/** One frame: the 9-byte header (length, type, flags, stream) and the payload (RFC 9113 §4.1). */
export function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream, 5)
  return Buffer.concat([head, payload])
}

/** An HPACK integer with an n-bit prefix under `first` (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number, first = 0): number[] {
  const max = (1 << prefixBits) - 1
  if (value < max) return [first | value]
  const out = [first | max]
  let rest = value - max
  while (rest >= 128) {
    out.push((rest % 128) | 128)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
  return out
}

const hpackString = (text: string): Buffer => {
  const bytes = Buffer.from(text, 'latin1')
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7)), bytes]) // H bit 0: no Huffman
}

/**
 * A header block of literal fields without indexing, new names, no Huffman (RFC 7541 §6.2.2):
 * the name and value go on the wire byte for byte, whatever they are.
 */
export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]))
}

export interface StreamSeen {
  /** the first byte of the response header block: 0x88 is the static table's `:status 200` */
  headers: Buffer[]
  data: Buffer
  ended: boolean
  /** the RST_STREAM error code, when the server reset the stream */
  reset: number | null
}

/** A raw HTTP/2 connection over TLS (ALPN h2): the preface and SETTINGS sent, SETTINGS acknowledged. */
export async function rawH2(port: number, ca: string) {
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  await once(socket, 'secureConnect')
  const streams = new Map<number, StreamSeen>()
  let goaway: number | null = null
  let closed = false
  const stream = (id: number): StreamSeen => {
    let s = streams.get(id)
    if (!s) streams.set(id, (s = { headers: [], data: Buffer.alloc(0), ended: false, reset: null }))
    return s
  }
  let buffered = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 9 && buffered.length >= 9 + buffered.readUIntBE(0, 3)) {
      const length = buffered.readUIntBE(0, 3)
      const [type, flags] = [buffered[3]!, buffered[4]!]
      const id = buffered.readUInt32BE(5) & 0x7fffffff
      const payload = buffered.subarray(9, 9 + length)
      buffered = buffered.subarray(9 + length)
      if (type === FRAME.SETTINGS && !(flags & FLAG.ACK))
        socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)))
      else if (type === FRAME.GOAWAY) goaway = payload.readUInt32BE(4)
      else if (type === FRAME.HEADERS || type === FRAME.CONTINUATION) stream(id).headers.push(Buffer.from(payload))
      else if (type === FRAME.DATA) stream(id).data = Buffer.concat([stream(id).data, payload])
      else if (type === FRAME.RST_STREAM) stream(id).reset = payload.readUInt32BE(0)
      if ((type === FRAME.DATA || type === FRAME.HEADERS) && flags & FLAG.END_STREAM) stream(id).ended = true
    }
  })
  socket.on('close', () => (closed = true))
  socket.on('error', () => (closed = true))
  socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  socket.write(frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)))

  return {
    socket,
    /** HEADERS (END_HEADERS, and END_STREAM unless a body follows) on stream `id` */
    request(id: number, fields: ReadonlyArray<readonly [string, string]>, opts: { endStream?: boolean } = {}) {
      const flags = FLAG.END_HEADERS | (opts.endStream === false ? 0 : FLAG.END_STREAM)
      socket.write(frame(FRAME.HEADERS, flags, id, headerBlock(fields)))
    },
    /** waits until stream `id` ended or was reset, or the connection went away */
    async answer(id: number, ms = 5000): Promise<StreamSeen> {
      const until = Date.now() + ms
      while (!(stream(id).ended || stream(id).reset !== null || closed || goaway !== null)) {
        if (Date.now() > until) throw new Error(`stream ${id}: no answer within ${ms} ms`)
        await new Promise((r) => setTimeout(r, 10))
      }
      return stream(id)
    },
    get goaway() {
      return goaway
    },
    get closed() {
      return closed
    },
    close: () => socket.destroy(),
  }
}

/** A GET's fields for a raw request: pseudo-headers first, as RFC 9113 §8.3 wants them. */
export const getFields = (path: string, extra: ReadonlyArray<readonly [string, string]> = []) =>
  [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ...extra] as const
