import { spawn } from "node:child_process";
import { createServer } from "node:net";

const SENDER = `
const net = require("node:net");
const [port, bytes] = process.argv.slice(1).map(Number);
const chunk = Buffer.alloc(256 * 1024, 0x5a);
const socket = net.connect(port, "127.0.0.1", () => {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      left -= chunk.length;
      if (!socket.write(chunk)) return socket.once("drain", pump);
    }
    socket.end();
  };
  pump();
});
`;

/**
 * Raw TCP throughput on loopback between two Node processes (what the
 * migration's own streams could reach at best): a child process writes
 * `bytes` in 256 KiB writes, this one reads and counts them.
 */
export async function measureRawTcp(bytes = 512 * 2 ** 20): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const received = new Promise<number>((resolve, reject) => {
      server.once("connection", (socket) => {
        let total = 0;
        let started = 0;
        socket.on("data", (chunk: Buffer) => {
          if (started === 0) started = performance.now();
          total += chunk.length;
        });
        socket.on("end", () => resolve((total * 1000) / (performance.now() - started)));
        socket.on("error", reject);
      });
    });
    const child = spawn(process.execPath, ["-e", SENDER, String(port), String(bytes)], {
      stdio: "ignore",
    });
    const failed = new Promise<never>((_, reject) =>
      child.once("exit", (code) => {
        if (code !== 0) reject(new Error(`raw TCP sender exited with ${code}`));
      }),
    );
    return await Promise.race([received, failed]);
  } finally {
    server.close();
  }
}
