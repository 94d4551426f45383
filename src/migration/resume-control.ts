import { createConnection, createServer, type Server } from "node:net";
import { rmSync } from "node:fs";

/**
 * The source's control socket for recovery (QEMU's `migrate -r` on the
 * monitor): a Unix socket on which `faultline migrate send --resume` asks a
 * paused source to reconnect. One JSON line each way.
 */
export interface ResumeRequest {
  resume: { host: string; port: number };
}

export interface ResumeReply {
  ok: boolean;
  error?: string;
}

export function serveResumeControl(
  path: string,
  resume: (host: string, port: number) => string | null,
): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      const end = text.indexOf("\n");
      if (end < 0) return;
      let reply: ResumeReply;
      try {
        const request = JSON.parse(text.slice(0, end)) as ResumeRequest;
        const error = resume(request.resume.host, request.resume.port);
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

/** Ask the paused source behind `path` to reconnect to host:port. */
export function requestResume(path: string, host: string, port: number): Promise<ResumeReply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("connect", () =>
      socket.write(`${JSON.stringify({ resume: { host, port } } satisfies ResumeRequest)}\n`),
    );
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("end", () => {
      try {
        resolve(JSON.parse(text) as ResumeReply);
      } catch {
        reject(new Error(`no answer from the migration source at ${path}`));
      }
    });
    socket.on("error", (error) =>
      reject(new Error(`cannot reach the migration source at ${path}: ${error.message}`)),
    );
  });
}
