import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Channel, CHANNEL_NAMES, type ChannelName } from "./channel.js";
import { tlsClientOptions, type Transport } from "./transport.js";
import { MSG_HELLO } from "./wire/format.js";
import { encodeJson } from "./wire/messages.js";

/** The first frame on every connection: which channel of which migration, fresh or resumed. */
export interface Hello {
  channel: ChannelName;
  migration: string;
  resume: boolean;
}

export type Channels = Record<ChannelName, Channel>;

function openSocket(
  host: string,
  port: number,
  transport: Transport,
  timeoutMs: number,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = transport.psk
      ? tlsConnect({ host, port, ...tlsClientOptions(transport.psk) })
      : tcpConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(transport.psk ? "secureConnect" : "connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${host}:${port}: ${error.message}`));
    });
  });
}

/**
 * The source's side of the three connections (main stream, return path,
 * preempt channel), each opened with its HELLO.
 */
export async function connectChannels(
  host: string,
  port: number,
  migration: string,
  resume: boolean,
  transport: Transport = { psk: null },
  timeoutMs = 10_000,
): Promise<Channels> {
  const sockets = await Promise.allSettled(
    CHANNEL_NAMES.map((name) =>
      openSocket(host, port, transport, timeoutMs).then((s) => [name, s] as const),
    ),
  );
  const failed = sockets.find((s) => s.status === "rejected");
  if (failed) {
    for (const s of sockets) if (s.status === "fulfilled") s.value[1].destroy();
    throw (failed as PromiseRejectedResult).reason;
  }
  const channels = {} as Channels;
  for (const s of sockets) {
    const [name, socket] = (s as PromiseFulfilledResult<readonly [ChannelName, Socket]>).value;
    const channel = new Channel(`${name} channel`, socket);
    channel.send(encodeJson(MSG_HELLO, { channel: name, migration, resume } satisfies Hello));
    channels[name] = channel;
  }
  return channels;
}

export function closeChannels(channels: Channels | null, reason: Error | null): void {
  if (!channels) return;
  for (const name of CHANNEL_NAMES) channels[name].close(reason);
}
