import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { readIntoBuffers } from "./static-reads.js";

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
 * migration's own streams could reach at best): the median of `runs`
 * transfers, each a child process writing `bytes` in 256 KiB writes that
 * this one reads into one buffer (as the destination reads) and counts.
 * One short transfer on this shared machine varied twofold.
 */
export async function measureRawTcp(bytes = 512 * 2 ** 20, runs = 3): Promise<number> {
  const rates: number[] = [];
  for (let run = 0; run < runs; run++) rates.push(await transfer(bytes));
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)];
}

async function transfer(bytes: number): Promise<number> {
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const received = new Promise<number>((resolve, reject) => {
      server.once("connection", (socket) => {
        let total = 0;
        let started = 0;
        const count = (n: number) => {
          if (started === 0) started = performance.now();
          total += n;
          return true;
        };
        const buffer = Buffer.allocUnsafe(64 << 10);
        if (!readIntoBuffers(socket, () => buffer, count)) {
          socket.on("data", (chunk: Buffer) => count(chunk.length));
        }
        socket.resume();
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
