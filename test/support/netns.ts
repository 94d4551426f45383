import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

/**
 * Two "hosts" for end-to-end tests: network namespaces joined by a veth pair,
 * so that traffic between them crosses a real network stack instead of
 * loopback. Latency comes from `tc netem` where the kernel has it; where it
 * does not, from a delaying TCP proxy running inside the source namespace
 * (each direction held back by the delay), and the pair says which.
 *
 * Needs root and iproute2; `createNetnsPair` answers why when it cannot.
 */
export interface NetnsPair {
  readonly source: string;
  readonly destination: string;
  readonly sourceAddress: string;
  readonly destinationAddress: string;
  /** How the one-way delay is added: "netem" on the veth, or a "proxy" process. */
  readonly latency: "netem" | "proxy";
  readonly delayMs: number;
  /** argv prefix that runs a command inside a namespace. */
  exec(namespace: string): string[];
  /**
   * Where the source should connect to reach `port` on the destination: the
   * destination itself with netem, otherwise a delaying proxy started here.
   */
  route(port: number): Promise<{ host: string; port: number }>;
  close(): void;
}

export type NetnsAvailability = { pair: NetnsPair } | { unavailable: string };

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function tryRun(file: string, args: string[]): string | null {
  try {
    execFileSync(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    return null;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return stderr !== undefined && stderr !== "" ? stderr : (error as Error).message;
  }
}

const PROXY_SOURCE = `
const net = require("node:net");
const [listenHost, targetHost, targetPort, delayMs] = process.argv.slice(1);
const delayed = (from, to) => {
  from.on("data", (chunk) => setTimeout(() => to.write(chunk), Number(delayMs)));
  from.on("end", () => setTimeout(() => to.end(), Number(delayMs)));
  from.on("error", () => to.destroy());
};
const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect(Number(targetPort), targetHost);
  upstream.setNoDelay(true);
  delayed(client, upstream);
  delayed(upstream, client);
  client.on("close", () => upstream.destroy());
  upstream.on("close", () => client.destroy());
});
server.listen(0, listenHost, () => console.log(server.address().port));
`;

/** Two namespaces joined by veth with `delayMs` one-way delay, or why that is not possible here. */
export function createNetnsPair(delayMs: number): NetnsAvailability {
  if (process.platform !== "linux") return { unavailable: "network namespaces need Linux" };
  if (process.getuid?.() !== 0) return { unavailable: "network namespaces need root" };
  const tag = `fl${process.pid % 100000}`;
  const source = `${tag}-src`;
  const destination = `${tag}-dst`;
  // A /30 per process, so that test files running side by side never collide.
  const subnet = `10.${77 + ((process.pid >> 14) % 100)}.${(process.pid >> 6) & 255}`;
  const base = (process.pid & 63) * 4;
  const sourceAddress = `${subnet}.${base + 1}`;
  const destinationAddress = `${subnet}.${base + 2}`;
  const made = tryRun("ip", ["netns", "add", source]);
  if (made !== null) return { unavailable: `ip netns add failed: ${made}` };
  const proxies: ChildProcess[] = [];
  const remove = () => {
    for (const proxy of proxies) proxy.kill("SIGKILL");
    tryRun("ip", ["netns", "del", source]);
    tryRun("ip", ["netns", "del", destination]);
  };
  try {
    ip("netns", "add", destination);
    ip("link", "add", `${tag}-a`, "type", "veth", "peer", "name", `${tag}-b`);
    ip("link", "set", `${tag}-a`, "netns", source);
    ip("link", "set", `${tag}-b`, "netns", destination);
    ip("-n", source, "addr", "add", `${sourceAddress}/30`, "dev", `${tag}-a`);
    ip("-n", destination, "addr", "add", `${destinationAddress}/30`, "dev", `${tag}-b`);
    for (const [ns, dev] of [
      [source, `${tag}-a`],
      [destination, `${tag}-b`],
    ]) {
      ip("-n", ns, "link", "set", dev, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
  } catch (error) {
    remove();
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return { unavailable: `veth setup failed: ${stderr ?? (error as Error).message}` };
  }
  // netem on both ends: each direction gets the delay once.
  const netem =
    tryRun("ip", [
      "netns",
      "exec",
      source,
      "tc",
      "qdisc",
      "add",
      "dev",
      `${tag}-a`,
      "root",
      "netem",
      "delay",
      `${delayMs}ms`,
    ]) === null &&
    tryRun("ip", [
      "netns",
      "exec",
      destination,
      "tc",
      "qdisc",
      "add",
      "dev",
      `${tag}-b`,
      "root",
      "netem",
      "delay",
      `${delayMs}ms`,
    ]) === null;
  const exec = (namespace: string) => ["ip", "netns", "exec", namespace];
  const pair: NetnsPair = {
    source,
    destination,
    sourceAddress,
    destinationAddress,
    latency: netem ? "netem" : "proxy",
    delayMs,
    exec,
    async route(port: number) {
      if (netem) return { host: destinationAddress, port };
      const [file, ...args] = exec(source);
      const proxy = spawn(
        file,
        [
          ...args,
          process.execPath,
          "-e",
          PROXY_SOURCE,
          "127.0.0.1",
          destinationAddress,
          String(port),
          String(delayMs),
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      proxies.push(proxy);
      const [line] = (await once(proxy.stdout!, "data")) as [Buffer];
      return { host: "127.0.0.1", port: Number(line.toString().trim()) };
    },
    close: remove,
  };
  return { pair };
}
