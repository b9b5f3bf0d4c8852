// Cluster key (libp2p private network PSK) and persistent peer identity files.
import { readFile, writeFile, mkdir, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { generateKey } from "@libp2p/pnet";
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { DspexError } from "../engine/errors.js";

/** A new cluster key in the go-ipfs swarm.key format libp2p's pnet reads (95 bytes). */
export function newClusterKey(): Uint8Array {
  const key = new Uint8Array(95);
  generateKey(key);
  return key;
}

export async function writeClusterKey(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, newClusterKey(), { mode: 0o600 });
  await rename(tmp, path);
}

export async function readClusterKey(path: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DspexError("config", `${path}: ${code === "ENOENT" ? "cluster key file not found; create one with 'dspex keygen --out cluster.key' and copy it to every peer" : `cannot read (${code})`}`);
  }
  const text = bytes.toString("utf8");
  if (!/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/i.test(text)) {
    throw new DspexError("config", `${path}: not a cluster key (expected the 3-line '/key/swarm/psk/1.0.0/' format written by 'dspex keygen')`);
  }
  return new Uint8Array(bytes.subarray(0, 95));
}

/** Load the peer identity, creating it on first start so the peer id survives restarts. */
export async function loadOrCreateIdentity(path: string): Promise<PrivateKey> {
  try {
    const bytes = await readFile(path);
    try {
      return privateKeyFromProtobuf(new Uint8Array(bytes));
    } catch (e) {
      throw new DspexError("config", `${path}: not a peer identity file (${(e as Error).message}); delete it to create a new identity`);
    }
  } catch (e) {
    if (e instanceof DspexError) throw e;
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new DspexError("config", `${path}: cannot read identity (${(e as NodeJS.ErrnoException).code})`);
  }
  const key = await generateKeyPair("Ed25519");
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 });
  await rename(tmp, path);
  return key;
}
