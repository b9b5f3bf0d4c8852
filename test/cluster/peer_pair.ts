// Two in-process peers for channel tests (kept apart from helpers.ts, which the
// multi-process tests import without needing libp2p in the test process).
import { multiaddr } from "@multiformats/multiaddr";
import { Peer } from "../../src/cluster/peer.js";
import { newClusterKey } from "../../src/cluster/keys.js";

/** Two in-process peers sharing a fresh cluster key, b connected to a; no periodic telemetry or probes to disturb a test. */
export async function peerPair(): Promise<{ a: Peer; b: Peer; stop(): Promise<void> }> {
  const key = newClusterKey();
  const a = await Peer.start({ clusterKey: key, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  const b = await Peer.start({ clusterKey: key, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  await b.node.dial(multiaddr(a.multiaddrs()[0]), { signal: AbortSignal.timeout(10_000) });
  return {
    a,
    b,
    stop: async () => {
      await b.stop();
      await a.stop();
    },
  };
}
