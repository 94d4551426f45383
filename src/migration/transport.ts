import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions, TlsOptions } from "node:tls";

/**
 * How the migration's connections are protected (DESIGN.md section 7:
 * authenticated whenever not on loopback): TLS 1.2 with a pre-shared key
 * that both ends read from a file, or plain TCP, which is allowed on
 * loopback only.
 */
export interface Transport {
  /** The pre-shared key; null for plain TCP. */
  psk: Buffer | null;
}

const PSK_IDENTITY = "faultline-migration";
const PSK_CIPHERS = "ECDHE-PSK-AES256-CBC-SHA384:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256";

/** A key file: hex (64 digits or more) or, failing that, its raw bytes (at least 16). */
export function readPskFile(path: string): Buffer {
  const text = readFileSync(path);
  const trimmed = text.toString("latin1").trim();
  const key =
    /^[0-9a-fA-F]{32,}$/.test(trimmed) && trimmed.length % 2 === 0
      ? Buffer.from(trimmed, "hex")
      : text;
  if (key.length < 16) throw new Error(`${path}: a pre-shared key needs at least 16 bytes`);
  return key;
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** Refuse plain TCP off loopback: migration streams carry all of guest memory. */
export function checkTransport(host: string, transport: Transport): void {
  if (transport.psk === null && !isLoopback(host)) {
    throw new Error(
      `migration to or from ${host} needs authentication: give both ends --psk-file ` +
        `(TLS with a pre-shared key); plain TCP is for loopback only`,
    );
  }
}

export function tlsServerOptions(psk: Buffer): TlsOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.2",
    pskIdentityHint: PSK_IDENTITY,
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? psk : null),
  };
}

export function tlsClientOptions(psk: Buffer): ConnectionOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.2",
    pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
    // The key authenticates both ends; there is no certificate to check.
    checkServerIdentity: () => undefined,
  };
}
