// Private network (libp2p pnet v1, the go-ipfs swarm.key scheme), wire-compatible with
// @libp2p/pnet: the two sides swap 24-byte random nonces, then every byte of the connection
// is XORed with XSalsa20(cluster key, sender's nonce).
//
// Why our own: @libp2p/pnet runs XSalsa20 in WebAssembly (0.19-0.25 ms per 64 KiB) and copies
// every chunk twice on the way out. Each bulk part (64 KiB) then holds either peer's event loop
// that long, and a coordination frame behind it waits. libsodium (sodium-native) does the same
// cipher in 0.03 ms per 64 KiB; incoming bytes are deciphered in place (socket read buffers are
// ours alone), outgoing ones in one pass into one buffer.
import { createRequire } from "node:module";
import type { AbortOptions, ConnectionProtector, MultiaddrConnection } from "@libp2p/interface";
import { preSharedKey } from "@libp2p/pnet";
import { AbstractMultiaddrConnection, byteStream } from "@libp2p/utils";
import type Sodium from "sodium-native";
import type { Uint8ArrayList } from "uint8arraylist";
import { DspexError } from "../engine/errors.js";

/** libsodium, or undefined where sodium-native has no binary for this platform (then @libp2p/pnet does the work, slower). */
const sodium: typeof Sodium | undefined = (() => {
  try {
    const s = createRequire(import.meta.url)("sodium-native") as typeof Sodium;
    return s.crypto_stream_PRIMITIVE === "xsalsa20" ? s : undefined;
  } catch {
    return undefined;
  }
})();

const NONCE_BYTES = 24;
const KEY_BYTES = 32;
/** Time allowed for the nonce exchange when the caller gives no signal. */
const HANDSHAKE_TIMEOUT_MS = 5_000;

/** The 32-byte key inside a swarm.key file ("/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>"). */
export function decodeClusterKey(file: Uint8Array): Uint8Array {
  const lines = Buffer.from(file).toString("utf8").split(/\r?\n/);
  const hex = lines[2]?.trim() ?? "";
  if (lines[0] !== "/key/swarm/psk/1.0.0/" || lines[1] !== "/base16/" || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new DspexError("config", "not a cluster key (expected the 3-line '/key/swarm/psk/1.0.0/' format written by 'dspex keygen')");
  }
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

class XSalsa20 {
  private readonly state: Buffer;
  constructor(
    private readonly lib: typeof Sodium,
    nonce: Uint8Array,
    key: Uint8Array,
  ) {
    this.state = Buffer.alloc(lib.crypto_stream_xor_STATEBYTES);
    lib.crypto_stream_xor_init(this.state, nonce, key);
  }
  /** XOR the next keystream bytes into `out` (may be `input` itself). */
  xor(input: Uint8Array, out: Uint8Array): void {
    this.lib.crypto_stream_xor_update(this.state, out, input);
  }
}

class PrivateConnection extends AbstractMultiaddrConnection {
  private readonly inbound: XSalsa20;
  private readonly outbound: XSalsa20;

  constructor(
    private readonly raw: MultiaddrConnection,
    lib: typeof Sodium,
    key: Uint8Array,
    localNonce: Uint8Array,
    remoteNonce: Uint8Array,
  ) {
    super({ remoteAddr: raw.remoteAddr, direction: raw.direction, log: raw.log.newScope("pnet") });
    this.inbound = new XSalsa20(lib, remoteNonce, key);
    this.outbound = new XSalsa20(lib, localNonce, key);
    raw.addEventListener("message", (evt) => {
      // Socket read buffers belong to this connection alone: decipher them in place.
      const data = evt.data;
      if (data instanceof Uint8Array) {
        this.inbound.xor(data, data);
        this.onData(data);
      } else {
        for (const buf of data) {
          this.inbound.xor(buf, buf);
          this.onData(buf);
        }
      }
    });
    raw.addEventListener("drain", () => this.onMuxerDrain());
    raw.addEventListener("close", (evt) => {
      if (evt.error != null) {
        if (evt.local === true) this.abort(evt.error);
        else this.onRemoteReset();
      } else this.onTransportClosed();
    });
  }

  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
    // Upper layers may still hold what they gave us: encipher into a fresh buffer, in one pass.
    const out = Buffer.allocUnsafe(data.byteLength);
    let off = 0;
    for (const buf of data) {
      this.outbound.xor(buf, out.subarray(off, off + buf.byteLength));
      off += buf.byteLength;
    }
    return { sentBytes: data.byteLength, canSendMore: this.raw.send(out) };
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.raw.close(options);
  }

  sendReset(err: Error): void {
    this.raw.abort(err);
  }

  sendPause(): void {
    this.raw.pause();
  }

  sendResume(): void {
    this.raw.resume();
  }
}

class ClusterKeyProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = "dspex/pnet";
  private readonly key: Uint8Array;

  constructor(
    private readonly lib: typeof Sodium,
    keyFile: Uint8Array,
  ) {
    this.key = decodeClusterKey(keyFile);
    if (this.key.length !== KEY_BYTES) throw new DspexError("config", "cluster key must be 32 bytes");
  }

  async protect(connection: MultiaddrConnection, options?: AbortOptions): Promise<MultiaddrConnection> {
    const signal = options?.signal ?? AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS);
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    const bytes = byteStream(connection);
    const [remote] = await Promise.all([bytes.read({ bytes: NONCE_BYTES, signal }), bytes.write(localNonce, { signal })]);
    return new PrivateConnection(bytes.unwrap(), this.lib, this.key, localNonce, remote.subarray());
  }
}

/** libp2p connectionProtector for a cluster key file's bytes (the same wire protocol as @libp2p/pnet's preSharedKey). */
export function clusterKeyProtector(keyFile: Uint8Array): () => ConnectionProtector {
  if (!sodium) {
    decodeClusterKey(keyFile); // the same clear error for a bad key file
    return preSharedKey({ psk: keyFile });
  }
  const protector = new ClusterKeyProtector(sodium, keyFile);
  return () => protector;
}

/** Which XSalsa20 this process uses for the private network (status and tests). */
export const pnetCipher: "libsodium" | "wasm" = sodium ? "libsodium" : "wasm";
