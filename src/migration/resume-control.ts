import { createConnection, createServer, type Server } from "node:net";
import { rmSync } from "node:fs";

/**
 * The source's control socket for recovery (QEMU's `migrate -r` and
 * `migrate_cancel` on the monitor): a Unix socket on which `faultline
 * migrate send --resume` asks a paused source to reconnect, and `--cancel`
 * asks it to give up and run its guest on. One JSON line each way.
 */
export type ControlRequest = { resume: { host: string; port: number } } | { cancel: true };

export interface ControlReply {
  ok: boolean;
  error?: string;
}

/** What the source does with a request: null when done, else why not. */
export interface PausedSource {
  resume(host: string, port: number): string | null;
  cancel(): string | null;
}

export function serveResumeControl(path: string, source: PausedSource): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      const end = text.indexOf("\n");
      if (end < 0) return;
      let reply: ControlReply;
      try {
        const request = JSON.parse(text.slice(0, end)) as ControlRequest;
        const error =
          "cancel" in request
            ? source.cancel()
            : source.resume(request.resume.host, request.resume.port);
        reply = error === null ? { ok: true } : { ok: false, error };
      } catch (error) {
        reply = { ok: false, error: `bad request: ${(error as Error).message}` };
      }
      socket.end(`${JSON.stringify(reply)}\n`);
    });
    socket.on("error", () => undefined);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Send `request` to the paused source behind `path`. */
export function requestControl(path: string, request: ControlRequest): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("end", () => {
      try {
        resolve(JSON.parse(text) as ControlReply);
      } catch {
        reject(new Error(`no answer from the migration source at ${path}`));
      }
    });
    socket.on("error", (error) =>
      reject(new Error(`cannot reach the migration source at ${path}: ${error.message}`)),
    );
  });
}
