import { createConnection, createServer, type Server, type Socket } from "node:net";
import { FRAME_HEADER_BYTES, HDR_LENGTH, HDR_TYPE } from "../../src/migration/wire/format.js";

/**
 * A TCP proxy on loopback between a migration source and its destination,
 * so that a test can break the connections (as a network failure would),
 * or corrupt or cut short a stream, either way, at a chosen byte, without
 * either end knowing.
 */
export interface StreamFault {
  /** Which connection: the one whose HELLO names this channel. */
  channel: "main" | "return" | "preempt";
  /**
   * Where it strikes: a byte offset in the bytes of its direction on that
   * connection, or (with `frame`) in the frame of that type, the first one.
   */
  at: number;
  /** A message type (MSG_*): `at` counts from the first byte of its first frame. */
  frame?: number;
  /** Which way: the bytes the source sends (the default), or those it receives. */
  direction?: "to-destination" | "to-source";
  /**
   * corrupt: flip a byte there; truncate: end the stream there; cut: drop
   * the data that holds that byte and break every connection, as a network
   * failure would (the sender wrote it, the receiver never sees it); hold:
   * deliver nothing from there on, the connection left open (a network that
   * stalls one way; the test cuts it when it likes).
   */
  kind: "corrupt" | "truncate" | "cut" | "hold";
}

export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private fault: StreamFault | null = null;
  connections = 0;

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => proxy!.accept(client));
    proxy = new TcpProxy(server, target);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  /** Strike `fault` on the next connection of its channel. */
  injectFault(fault: StreamFault): void {
    this.fault = fault;
  }

  private accept(client: Socket): void {
    this.connections++;
    const upstream = createConnection(this.target);
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    // The fault, once this connection's HELLO shows it is the channel named.
    let fault: StreamFault | null = null;
    let first = true;
    client.on("data", (chunk: Buffer) => {
      if (first) {
        first = false;
        const f = this.fault;
        if (f && chunk.toString("latin1").includes(`"channel":"${f.channel}"`)) {
          fault = f;
          this.fault = null;
        }
      }
    });
    this.forward(client, upstream, () => (fault?.direction !== "to-source" ? fault : null));
    this.forward(upstream, client, () => (fault?.direction === "to-source" ? fault : null));
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  }

  /** Copy `from` to `to`, striking the fault `faultOf()` gives for this direction once. */
  private forward(from: Socket, to: Socket, faultOf: () => StreamFault | null): void {
    let forwarded = 0;
    let struck = false;
    const frames = new FrameScanner();
    // Where the fault strikes in this direction's bytes, once known.
    let at = Infinity;
    from.on("data", (chunk: Buffer) => {
      if (forwarded === Infinity) return;
      const fault = struck ? null : faultOf();
      if (fault && at === Infinity) {
        if (fault.frame === undefined) at = fault.at;
        else {
          const start = frames.find(chunk, forwarded, fault.frame);
          if (start >= 0) at = start + fault.at;
        }
      }
      if (fault && forwarded + chunk.length > at) {
        struck = true;
        const offset = Math.max(0, at - forwarded);
        if (fault.kind === "cut") {
          forwarded = Infinity;
          this.cutAll();
          return;
        }
        if (fault.kind === "hold") {
          to.write(chunk.subarray(0, offset));
          forwarded = Infinity;
          return;
        }
        if (fault.kind === "corrupt") {
          const copy = Buffer.from(chunk);
          copy[offset] ^= 0x5a;
          forwarded += chunk.length;
          to.write(copy);
          return;
        }
        to.end(chunk.subarray(0, offset));
        from.pause();
        forwarded = Infinity;
        return;
      }
      forwarded += chunk.length;
      to.write(chunk);
    });
  }

  /** Break every connection now, as a failing network would (both ends see a reset). */
  cutAll(): number {
    const n = this.pairs.size;
    for (const [a, b] of this.pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.pairs.clear();
    return n;
  }

  close(): void {
    this.cutAll();
    this.server.close();
  }
}

/** Follows the frames in one direction's bytes, to find where one of a type starts. */
class FrameScanner {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerBytes = 0;
  private payloadLeft = 0;

  /** The stream offset where a frame of `type` starts, if its header ends in `chunk` (at `offset`); else -1. */
  find(chunk: Buffer, offset: number, type: number): number {
    let i = 0;
    while (i < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - i);
        this.payloadLeft -= n;
        i += n;
        continue;
      }
      const n = Math.min(FRAME_HEADER_BYTES - this.headerBytes, chunk.length - i);
      chunk.copy(this.header, this.headerBytes, i, i + n);
      this.headerBytes += n;
      i += n;
      if (this.headerBytes < FRAME_HEADER_BYTES) continue;
      this.headerBytes = 0;
      this.payloadLeft = this.header.readUInt32LE(HDR_LENGTH);
      if (this.header.readUInt16LE(HDR_TYPE) === type) return offset + i - FRAME_HEADER_BYTES;
    }
    return -1;
  }
}
