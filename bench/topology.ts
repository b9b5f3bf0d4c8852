// Overlay benchmark in the deterministic simulator.
// Usage: npx tsx bench/topology.ts [--only hyparview,full-mesh,...] [--sizes 100,1000,10000] [--seed N]
// Prints one JSON document: per topology and N, connections per node, messages per
// broadcast, delivery after 10% and 50% failures, convergence times (virtual), and
// simulator speed (virtual s per wall s). Full-mesh stops at 1,000 nodes (N^2 / 2
// connections: 50M at 10,000 is not a sane deployment, nor a sane simulation).
import { activeStats, broadcastMessages, clientServerProblems, cluster, crashFraction, delivery, fullMeshProblems, hyparviewProblems, runUntil, type Cluster } from "../test/topology/harness.js";
import type { TopologyName } from "../topology/types.js";

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const seed = Number(arg("--seed") ?? 1);
const only = (arg("--only") ?? "hyparview,full-mesh,client-server,static").split(",") as TopologyName[];
const sizes = (arg("--sizes") ?? "100,1000,10000").split(",").map(Number);

const randomEarlier = (i: number): number[] => (i === 0 ? [] : [(Math.imul(i, 2654435761) >>> 0) % i]);

interface Setup {
  c: Cluster;
  ok: () => boolean;
}

function setup(topology: TopologyName, n: number): Setup {
  switch (topology) {
    case "hyparview": {
      const c = cluster({ seed, n, topology, options: () => ({ expectedSize: n }), startSpreadMs: Math.min(10_000, n * 2), bootstrap: randomEarlier });
      return { c, ok: () => hyparviewProblems(c).length === 0 };
    }
    case "full-mesh": {
      const c = cluster({ seed, n, topology, startSpreadMs: Math.min(5000, n * 5), bootstrap: randomEarlier });
      return { c, ok: () => fullMeshProblems(c).length === 0 };
    }
    case "client-server": {
      const ns = Math.max(3, Math.round(n / 500));
      const servers = [...Array(ns).keys()];
      const c = cluster({
        seed,
        n,
        topology,
        startSpreadMs: Math.min(10_000, n * 2),
        options: (i) => ({ role: i < ns ? "server" : "client", servers, serversPerClient: 2 }),
        bootstrap: () => [],
      });
      return { c, ok: () => clientServerProblems(c, servers, 2).length === 0 };
    }
    case "static": {
      // Ring plus two chords per node.
      const list = (i: number): number[] => [...new Set([(i + 1) % n, (i + 7) % n, (i * 3 + 1) % n])].filter((j) => j !== i);
      const c = cluster({ seed, n, topology, options: (i) => ({ peers: list(i) }), startSpreadMs: Math.min(5000, n), bootstrap: () => [] });
      return {
        c,
        ok: () => c.live().every((i) => list(i).every((j) => !c.sim.isUp(j) || c.sim.isConnected(i, j))),
      };
    }
  }
}

function measureBroadcasts(c: Cluster, k: number): { ratio: number; messages: number } {
  let ratio = 0;
  const m0 = broadcastMessages(c);
  const live = c.live();
  for (let b = 0; b < k; b++) {
    const id = c.broadcast(live[(b * 7919) % live.length]!, { b });
    c.sim.run({ duration: 2000 });
    ratio += delivery(c, id).ratio;
  }
  return { ratio: ratio / k, messages: Math.round((broadcastMessages(c) - m0) / k) };
}

function bench(topology: TopologyName, n: number): Record<string, unknown> {
  const w0 = performance.now();
  const { c, ok } = setup(topology, n);
  const step = n >= 5000 ? 1000 : 500;
  c.sim.run({ until: Math.min(10_000, n * 2) });
  const converged = runUntil(c, ok, step, 60_000);
  const conns = activeStats(c);
  measureBroadcasts(c, 2); // warm up (Plumtree prunes the first flood into a tree)
  const steady = measureBroadcasts(c, 5);
  // 10% crash, then measure.
  crashFraction(c, 0.1, seed, [0]);
  const t10c = c.sim.now;
  c.sim.run({ duration: 50 }); // let the crash be noticed (one link latency) before checking
  const reconv10 = runUntil(c, ok, 250, 30_000);
  c.sim.run({ duration: 1000 });
  const after10 = measureBroadcasts(c, 3);
  // Another 40% (50% of the original nodes down in total), at once.
  crashFraction(c, 0.4, seed + 1, [0]);
  const t0 = c.sim.now;
  c.sim.run({ duration: 50 });
  const reconv50 = runUntil(c, ok, 250, 30_000);
  c.sim.run({ duration: 1000 });
  const after50 = measureBroadcasts(c, 3);
  const m = c.sim.metrics();
  const wall = (performance.now() - w0) / 1000;
  return {
    topology,
    n,
    convergedAtMs: converged ?? null,
    connectionsPerNode: { mean: +conns.mean.toFixed(2), max: conns.max },
    messagesPerBroadcast: steady.messages,
    deliveryRatio: +steady.ratio.toFixed(4),
    after10pctCrash: { deliveryRatio: +after10.ratio.toFixed(4), reconvergedMs: reconv10 === undefined ? null : reconv10 - t10c },
    after50pctCrash: { deliveryRatio: +after50.ratio.toFixed(4), reconvergedMs: reconv50 === undefined ? null : reconv50 - t0, messagesPerBroadcast: after50.messages },
    virtualSeconds: +(m.virtualTimeMs / 1000).toFixed(1),
    wallSeconds: +wall.toFixed(1),
    virtualSecondsPerWallSecond: +(m.virtualTimeMs / 1000 / (m.wallTimeMs / 1000)).toFixed(2),
    events: m.events,
  };
}

const results: Record<string, unknown>[] = [];
for (const t of only) {
  for (const n of sizes) {
    if (t === "full-mesh" && n > 1000) {
      results.push({ topology: t, n, skipped: "full mesh at 10,000 nodes means ~50M connections; not simulated" });
      continue;
    }
    const r = bench(t, n);
    results.push(r);
    process.stderr.write(JSON.stringify(r) + "\n");
  }
}
console.log(JSON.stringify({ seed, note: "virtual times in ms; messages = broadcast-layer messages (gossip, IHAVE batches, graft, prune); failures crash nodes at once (10%, then 40% more)", results }, null, 2));
