import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type AddressInfo, connect as tcpConnect, createServer as createTcpServer } from "node:net";
import { describe, test } from "node:test";
import { connect, createServer, type TLSSocket } from "node:tls";
import { Channel } from "../../src/migration/channel.js";
import { tlsClientOptions, tlsServerOptions } from "../../src/migration/transport.js";
import {
  FRAME_HEADER_BYTES,
  MigrationProtocolError,
  MSG_PAGES,
} from "../../src/migration/wire/format.js";
import { encodeFrame } from "../../src/migration/wire/frame.js";

/** A TLS connection with a pre-shared key on loopback, its client end to write to. */
async function tlsPair(): Promise<{ client: TLSSocket; close: () => void }> {
  const psk = randomBytes(32);
  const server = createServer(tlsServerOptions(psk), (socket) => socket.resume());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const client = connect({ ...tlsClientOptions(psk), host: "127.0.0.1", port });
  await once(client, "secureConnect");
  return {
    client,
    close: () => {
      client.destroy();
      server.close();
    },
  };
}

describe("a migration channel", () => {
  for (const payloadBytes of [100, 300_000]) {
    test(
      `over TLS, drained() resolves once a ${payloadBytes}-byte frame is written`,
      { timeout: 20_000 },
      async () => {
        // TLS writes complete asynchronously, and a frame under the
        // high-water mark never makes the socket emit 'drain'.
        const pair = await tlsPair();
        try {
          const channel = new Channel("main channel", pair.client);
          const frame = encodeFrame(MSG_PAGES, Buffer.alloc(payloadBytes, 7));
          let written = false;
          channel.send(frame, () => (written = true));
          let late = false;
          const timer = setTimeout(() => {
            late = true;
            pair.close(); // the channel closes, which ends the wait
          }, 5000);
          await channel.drained();
          clearTimeout(timer);
          assert.equal(late, false, "drained() did not resolve within 5 s of the write");
          assert.ok(written, "drained() resolved before the frame's write completed");
          assert.equal(pair.client.writableLength, 0);
        } finally {
          pair.close();
        }
      },
    );
  }

  test(
    "an accepted TCP socket reads into the decoder's own buffer: frames whole, the end checked",
    { timeout: 20_000 },
    async () => {
      const frames: Buffer[] = [];
      for (let i = 0; i < 100; i++) {
        frames.push(encodeFrame(MSG_PAGES, Buffer.alloc(65_604 + (i % 3) * 1000, i)));
      }
      frames.push(encodeFrame(MSG_PAGES, Buffer.alloc(3 << 20, 0xee)));
      const stream = Buffer.concat([...frames, frames[0].subarray(0, 100)]);
      let dataListeners = -1;
      const received: Buffer[] = [];
      const closed = new Promise<Error | null>((resolve) => {
        const server = createTcpServer({ pauseOnConnect: true }, (socket) => {
          const channel = new Channel("main channel", socket);
          channel.yieldBetweenChunks = true;
          dataListeners = socket.listenerCount("data");
          channel.onFrame = (_type, payload) => received.push(Buffer.from(payload));
          channel.onClose = (reason) => {
            server.close();
            resolve(reason);
          };
        });
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo;
          const client = tcpConnect({ host: "127.0.0.1", port }, () => client.end(stream));
        });
      });
      const reason = await closed;
      assert.equal(dataListeners, 0, "the channel fell back to 'data' events");
      assert.equal(received.length, frames.length);
      for (let i = 0; i < frames.length; i++) {
        assert.ok(received[i].equals(frames[i].subarray(FRAME_HEADER_BYTES)), `frame ${i}`);
      }
      assert.ok(reason instanceof MigrationProtocolError, String(reason));
      assert.match(reason.message, /truncated: it ended 100 bytes into a frame/);
    },
  );
});
