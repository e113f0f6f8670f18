/**
 * A small SPDY/3.1 client for the runtime's streaming server (the kubelet streaming library inside
 * containerd), enough for remote command protocol v4: one connection upgraded from HTTP, one SPDY stream
 * per channel (error, stdin, stdout, stderr, resize) opened by us, DATA frames both ways, and a FIN on
 * stdin, which WebSocket v4 cannot express (`kubectl cp` into a pod needs tar to see its input end).
 *
 * Frames (SPDY/3): control frames start with 0x8003 (version 3), a 16-bit type, 8-bit flags and 24-bit
 * length; data frames with a 31-bit stream id, 8-bit flags (FIN 0x01) and 24-bit length. Header blocks are
 * zlib streams shared across the connection; we compress ours without a preset dictionary (valid zlib:
 * no FDICT flag) and never need to read the server's (SYN_REPLY carries nothing we use).
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { constants, createDeflate, type Deflate } from 'node:zlib';
import { KedgeError } from '../../lib/errors.ts';

const SYN_STREAM = 1;
const SYN_REPLY = 2;
const RST_STREAM = 3;
const PING = 6;
const GOAWAY = 7;
const FLAG_FIN = 0x01;

export interface SpdyStream {
  readonly id: number;
  write(data: Buffer): Promise<void>;
  /** Half-closes our side (DATA with FIN). */
  end(): void;
}

export interface SpdyHandlers {
  /** Data from the server on one of our streams. */
  data(streamId: number, data: Buffer): void;
  /** The server closed its side of a stream (FIN or RST). */
  closed(streamId: number): void;
  /** The connection ended. */
  end(err?: Error): void;
}

/** Upgrades `url` to SPDY/3.1 with the given stream protocol; resolves with the connection. */
export function connectSpdy(
  url: string,
  protocols: readonly string[],
  handlers: SpdyHandlers,
): Promise<SpdyConnection> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'SPDY/3.1',
        'X-Stream-Protocol-Version': protocols.join(', '),
      },
    });
    req.on('upgrade', (res, socket, head) => {
      const chosen = String(res.headers['x-stream-protocol-version'] ?? '');
      resolve(new SpdyConnection(socket as Socket, head, chosen, handlers));
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () =>
        reject(
          new KedgeError(
            'KEDGE_AGENT_RUNTIME',
            `The streaming server refused SPDY: HTTP ${res.statusCode} ${body.slice(0, 300)}`,
          ),
        ),
      );
    });
    req.on('error', (err) =>
      reject(
        new KedgeError('KEDGE_AGENT_RUNTIME', `The streaming server failed: ${err.message}`, { cause: err }),
      ),
    );
    req.end();
  });
}

export class SpdyConnection {
  readonly protocol: string;
  readonly #socket: Socket;
  readonly #h: SpdyHandlers;
  readonly #deflate: Deflate;
  #buf: Buffer = Buffer.alloc(0);
  #nextId = 1;
  #ended = false;
  /** Header compression is one zlib stream: frames go out in the order their headers were compressed. */
  #compressing: Promise<void> = Promise.resolve();

  constructor(socket: Socket, head: Buffer, protocol: string, handlers: SpdyHandlers) {
    this.#socket = socket;
    this.protocol = protocol;
    this.#h = handlers;
    this.#deflate = createDeflate();
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#read(d));
    socket.on('close', () => this.#end());
    socket.on('error', (err) => this.#end(err));
    if (head.byteLength > 0) this.#read(head);
  }

  /** Opens a stream with these headers (names lowercase). */
  open(headers: Record<string, string>): Promise<SpdyStream> {
    const id = this.#nextId;
    this.#nextId += 2;
    const pairs = Object.entries(headers);
    const parts: Buffer[] = [u32(pairs.length)];
    for (const [k, v] of pairs) {
      parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
    }
    const block = Buffer.concat(parts);
    const done = this.#compressing.then(async () => {
      const compressed = await this.#compress(block);
      // stream id, associated id 0, priority 0 + slot 0, then the header block.
      const body = Buffer.concat([u32(id), u32(0), Buffer.of(0, 0), compressed]);
      this.#socket.write(Buffer.concat([controlHeader(SYN_STREAM, 0, body.byteLength), body]));
    });
    this.#compressing = done.catch(() => {});
    return done.then(() => ({
      id,
      write: (data: Buffer) => this.#writeData(id, data, 0),
      end: () => void this.#writeData(id, Buffer.alloc(0), FLAG_FIN),
    }));
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Stops reading (backpressure from a slow consumer) until resume(). */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  #compress(block: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const onData = (d: Buffer): void => {
        chunks.push(d);
      };
      this.#deflate.on('data', onData);
      this.#deflate.write(block);
      this.#deflate.flush(constants.Z_SYNC_FLUSH, () => {
        this.#deflate.off('data', onData);
        resolve(Buffer.concat(chunks));
      });
      this.#deflate.once('error', reject);
    });
  }

  #writeData(id: number, data: Buffer, flags: number): Promise<void> {
    if (this.#ended) return Promise.resolve();
    const max = 0xff_ffff;
    const writes: Buffer[] = [];
    let off = 0;
    do {
      const piece = data.subarray(off, off + Math.min(max, 64 * 1024));
      off += piece.byteLength;
      const last = off >= data.byteLength;
      const header = Buffer.allocUnsafe(8);
      header.writeUInt32BE(id & 0x7fff_ffff, 0);
      header.writeUInt32BE(((last ? flags : 0) << 24) | piece.byteLength, 4);
      writes.push(header, piece);
    } while (off < data.byteLength);
    return new Promise((ok) => {
      void this.#compressing.then(() => {
        if (this.#socket.write(Buffer.concat(writes))) ok();
        else this.#socket.once('drain', () => ok());
      });
    });
  }

  #read(chunk: Buffer): void {
    this.#buf = this.#buf.byteLength === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    while (this.#buf.byteLength >= 8) {
      const length = this.#buf.readUInt32BE(4) & 0xff_ffff;
      if (this.#buf.byteLength < 8 + length) return;
      const frame = this.#buf.subarray(0, 8 + length);
      this.#buf = this.#buf.subarray(8 + length);
      this.#frame(frame);
    }
  }

  #frame(frame: Buffer): void {
    const flags = frame[4]!;
    const body = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const id = frame.readUInt32BE(0) & 0x7fff_ffff;
      if (body.byteLength > 0) this.#h.data(id, Buffer.from(body));
      if ((flags & FLAG_FIN) !== 0) this.#h.closed(id);
      return;
    }
    const type = frame.readUInt16BE(2);
    switch (type) {
      case SYN_REPLY:
        if ((flags & FLAG_FIN) !== 0) this.#h.closed(body.readUInt32BE(0) & 0x7fff_ffff);
        return;
      case RST_STREAM:
        this.#h.closed(body.readUInt32BE(0) & 0x7fff_ffff);
        return;
      case PING:
        this.#socket.write(frame);
        return;
      case GOAWAY:
        this.#socket.end();
        return;
      default:
        // SETTINGS, WINDOW_UPDATE, HEADERS: nothing this client needs.
        return;
    }
  }

  #end(err?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#deflate.close();
    this.#h.end(err);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function controlHeader(type: number, flags: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt16BE(0x8003, 0);
  b.writeUInt16BE(type, 2);
  b.writeUInt32BE((flags << 24) | length, 4);
  return b;
}
