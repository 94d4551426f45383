import type { Socket } from "node:net";
import { readIntoBuffers } from "./static-reads.js";
import { FrameDecoder } from "./wire/frame-decoder.js";
import { messageName, MigrationProtocolError, MSG_REFUSE } from "./wire/format.js";
import { encodeJson } from "./wire/messages.js";

/** The connection itself failed or was closed (as opposed to a bad stream or a local error). */
export class ConnectionLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLost";
  }
}

export type ChannelName = "main" | "return" | "preempt";
export const CHANNEL_NAMES: readonly ChannelName[] = ["main", "return", "preempt"];

/**
 * One TCP connection of a migration, framed both ways: frames out with
 * `send` (counted, with the socket's own queue as backpressure), frames in
 * through a streaming decoder to `onFrame`. Any decoding error, an end of
 * stream inside a frame, or a socket error ends the channel once, through
 * `onClose` with the reason (null for a clean end).
 */
export class Channel {
  private readonly decoder: FrameDecoder;
  private closed = false;
  /** Frames queued whose write has not completed, and who waits for none to be left. */
  private unflushed = 0;
  private flushWaiters: (() => void)[] = [];
  bytesSent = 0;
  bytesReceived = 0;
  onFrame: (type: number, payload: Buffer) => void = (type) => {
    throw new MigrationProtocolError(`unexpected ${messageName(type)} on the ${this.name}`);
  };
  onClose: (reason: Error | null) => void = () => undefined;
  /**
   * Read one chunk per event-loop turn (bulk data: libuv would otherwise
   * read up to 32 chunks of it in a row before looking at another socket,
   * and a requested page on the preempt channel would wait behind them).
   */
  yieldBetweenChunks = false;
  /**
   * A stream that fails to decode gets a REFUSE back before the channel
   * closes. Off once the guest runs on the destination in post-copy: a
   * refusal would then lose the guest, while a dropped connection pauses
   * both sides with nothing lost (a frame is used only once its checksum
   * passed) until a resume sends what is missing again.
   */
  refusesBadStream = true;
  /** Resolves once the socket is closed for good (both ways, or destroyed). */
  readonly socketClosed: Promise<void>;
  private readonly resumeReading = () => {
    if (!this.closed) this.socket.resume();
  };

  constructor(
    private channelName: string,
    readonly socket: Socket,
  ) {
    this.decoder = new FrameDecoder(channelName);
    this.socketClosed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.setNoDelay(true);
    if (!readIntoBuffers(socket, () => this.decoder.readBuffer(), this.onRead)) {
      socket.on("data", this.onData);
    }
    // A socket accepted paused (so that reads could be set up first) starts now.
    socket.resume();
    socket.on("end", () => {
      try {
        this.decoder.end();
        this.close(null);
      } catch (error) {
        this.close(error as Error);
      }
    });
    socket.on("error", (error) => this.close(new ConnectionLost(`${this.name}: ${error.message}`)));
    socket.on("close", () => this.close(new ConnectionLost(`${this.name}: connection closed`)));
  }

  /** Bytes read into the decoder's own buffer; false pauses reading (resumed next turn). */
  private readonly onRead = (bytes: number): boolean => {
    this.bytesReceived += bytes;
    try {
      this.decoder.received(bytes, this.deliver);
    } catch (error) {
      this.streamFailed(error);
    }
    if (!this.yieldBetweenChunks || this.closed) return true;
    setImmediate(this.resumeReading);
    return false;
  };

  /** A chunk Node allocated (TLS, or reads that could not be redirected). */
  private readonly onData = (chunk: Buffer): void => {
    this.bytesReceived += chunk.length;
    if (this.yieldBetweenChunks) {
      this.socket.pause();
      setImmediate(this.resumeReading);
    }
    try {
      this.decoder.push(chunk, this.deliver);
    } catch (error) {
      this.streamFailed(error);
    }
  };

  private readonly deliver = (type: number, payload: Buffer): void => this.onFrame(type, payload);

  private streamFailed(error: unknown): void {
    const reason = error instanceof Error ? error : new Error(String(error));
    if (reason instanceof MigrationProtocolError && this.refusesBadStream) this.refuse(reason);
    else this.close(reason);
  }

  /** What errors call this connection ("main channel" once its HELLO says so). */
  get name(): string {
    return this.channelName;
  }

  set name(name: string) {
    this.channelName = name;
    this.decoder.what = name;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queue a frame; false when the socket's queue is above its high-water
   * mark. `written` runs once the socket is done with the frame's buffer
   * (written or failed), never if the channel is closed already.
   */
  send(frame: Buffer, written?: () => void): boolean {
    return this.sendPieces([frame], written);
  }

  /**
   * Queue a frame given as pieces (PageViewBatchWriter's), written in
   * order as one writev; as `send` otherwise.
   */
  sendPieces(pieces: readonly Buffer[], written?: () => void): boolean {
    if (this.closed) return false;
    this.unflushed++;
    const last = pieces.length - 1;
    if (last > 0) this.socket.cork();
    for (let i = 0; i < last; i++) {
      this.bytesSent += pieces[i].length;
      this.socket.write(pieces[i]);
    }
    this.bytesSent += pieces[last].length;
    const below = this.socket.write(pieces[last], () => {
      written?.();
      if (--this.unflushed === 0) this.flushed();
    });
    if (last > 0) this.socket.uncork();
    return below;
  }

  private flushed(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Bytes queued in this process and not yet handed to the kernel. */
  get backlog(): number {
    return this.socket.writableLength;
  }

  /**
   * Resolves once every frame sent so far has been written (or the channel
   * closed). Counted from the writes' own callbacks rather than waited for
   * with 'drain', which comes only after a write went over the high-water
   * mark: a small last frame on a TLS socket (which writes asynchronously)
   * would otherwise wait for an event that never comes.
   */
  drained(): Promise<void> {
    if (this.closed || this.unflushed === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** Resolves once everything queued has been handed to the kernel, then ends the stream. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.socket.end(() => resolve());
    });
  }

  /**
   * Tell the peer why (a REFUSE frame, best effort), then close: for a
   * stream that cannot be trusted any more. What the peer still sends is
   * read and dropped until it closes (2 s at most): closing with unread
   * data would reset the connection, and a reset can make the peer's
   * kernel drop the REFUSE before the peer has read it.
   */
  refuse(reason: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(encodeJson(MSG_REFUSE, { reason: reason.message }));
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.flushed();
    this.onClose(reason);
  }

  /** Close now, once; the reason goes to onClose. */
  close(reason: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.flushed();
    this.onClose(reason);
  }
}
