// A short-lived client for one-off questions to a running cluster (dspex status): a
// bare libp2p node with the cluster key that speaks only the coordination channel.
import "../util/polyfill.js";
import { createLibp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { clusterKeyProtector } from "./pnet.js";
import { multiaddr } from "@multiformats/multiaddr";
import { Channel } from "../../channels/channel.js";
import { CHANNELS } from "../../channels/specs.js";
import { DspexError } from "../engine/errors.js";
import type { StatusReport } from "./peer.js";

export interface ClusterClient {
  /** The peer this client dialled. */
  readonly peer: string;
  ask(method: string, body?: unknown, options?: { timeoutMs?: number; channel?: "coordination" | "inference" }): Promise<unknown>;
  close(): Promise<void>;
}

/** Dial one peer of the cluster (with the cluster key) and speak its coordination and inference channels. */
export async function openClusterClient(join: string, clusterKey: Uint8Array | undefined, timeoutMs = 10_000): Promise<ClusterClient> {
  let addr;
  try {
    addr = multiaddr(join);
  } catch (e) {
    throw new DspexError("config", `--join '${join}' is not a valid multiaddr (${(e as Error).message})`);
  }
  const peerId = /\/p2p\/([^/]+)$/.exec(join)?.[1];
  if (!peerId) throw new DspexError("config", `--join '${join}' lacks the peer id: use the full address a peer prints (ending in /p2p/<id>)`);
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(clusterKey ? { connectionProtector: clusterKeyProtector(clusterKey) } : {}),
    services: { identify: identify() },
  });
  const channels = { coordination: new Channel(node, CHANNELS.coordination), inference: new Channel(node, CHANNELS.inference) };
  const close = async () => {
    await channels.coordination.stop();
    await channels.inference.stop();
    await node.stop();
  };
  let conn;
  try {
    conn = await node.dial(addr, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    await close();
    throw new DspexError("config", `cannot reach ${join} (${(e as Error).message}); check the address, that the peer runs, and that --key-file is the cluster's key`);
  }
  const remote = conn.remotePeer;
  return {
    peer: remote.toString(),
    ask: (method, body = null, o = {}) => channels[o.channel ?? "coordination"].request(remote, method, body, { timeoutMs: o.timeoutMs ?? timeoutMs }),
    close,
  };
}

export async function withClusterClient<R>(join: string, clusterKey: Uint8Array | undefined, fn: (ask: (method: string, body?: unknown, timeoutMs?: number) => Promise<unknown>) => Promise<R>, timeoutMs = 10_000): Promise<R> {
  const client = await openClusterClient(join, clusterKey, timeoutMs);
  try {
    return await fn((method, body = null, t = timeoutMs) => client.ask(method, body, { timeoutMs: t }));
  } finally {
    await client.close();
  }
}

export async function queryStatus(join: string, clusterKey: Uint8Array | undefined, timeoutMs = 10_000): Promise<StatusReport> {
  return withClusterClient(join, clusterKey, async (ask) => (await ask("status")) as StatusReport, timeoutMs);
}
