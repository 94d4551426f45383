import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";

interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Make a plain TCP socket that has not started reading read into buffers
 * of our choosing: Node's `onread` option (`buffer()` gives where each
 * read goes, `callback` gets its byte count and returns false to pause).
 * Node takes that option only for sockets it creates itself
 * (`net.connect`, `new Socket`), not for the ones a server accepts, so
 * this sets the fields the Socket constructor sets from it and hands the
 * first buffer to the handle. Without it every read allocates a fresh
 * 64 KiB buffer, which at hundreds of MB/s made a major GC run on the
 * receiving thread every 30 ms.
 *
 * False, with nothing changed, for a TLS socket, one already reading, or a
 * Node that keeps these fields otherwise: the caller reads 'data' then.
 */
export function readIntoBuffers(
  socket: Socket,
  buffer: () => Buffer,
  callback: (bytes: number) => boolean,
): boolean {
  if (socket instanceof TLSSocket) return false;
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!handle || handle.reading || typeof handle.useUserBuffer !== "function") return false;
  const symbols = Object.getOwnPropertySymbols(socket);
  const field = (name: string) => symbols.find((symbol) => symbol.description === name);
  const kBuffer = field("kBuffer");
  const kBufferGen = field("kBufferGen");
  const kBufferCb = field("kBufferCb");
  if (!kBuffer || !kBufferGen || !kBufferCb) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  const first = buffer();
  fields[kBuffer] = first;
  fields[kBufferGen] = buffer;
  fields[kBufferCb] = callback;
  handle.useUserBuffer(first);
  return true;
}
