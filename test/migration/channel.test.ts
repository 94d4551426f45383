import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { connect, createServer, type TLSSocket } from "node:tls";
import { Channel } from "../../src/migration/channel.js";
import { tlsClientOptions, tlsServerOptions } from "../../src/migration/transport.js";
import { MSG_PAGES } from "../../src/migration/wire/format.js";
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
});
