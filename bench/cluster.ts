// bench/cluster: distributed throughput and optimizer wall time on local `dspex peer`
// processes. Prints one JSON object. Run: npx tsx bench/cluster.ts [--sizes 1,2,4] [--rounds 3]
// [--slots 8] [--peer-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"] (profile the peers)
//  1. Efficiency: N peers (N in --sizes), each with its own in-process sim-lm of fixed
//     capacity (8 concurrent, 100 ms per call) and 8 task slots. A distributed Evaluate of
//     N x 8 x 25 examples (25 "waves"); efficiency = achieved calls/s / (N x 80/s).
//     Goal: >= 0.9 at N = 4. Medians over --rounds jobs per size, measured on the
//     coordinator (Evaluate's own duration) and at the client (submit → last result), and,
//     alternating with those, the same jobs without worker prefetch.
//  2. BootstrapFewShotWithRandomSearch on the cluster of the largest N vs LocalExecutor
//     (concurrency 8) against one sim-lm of the same capacity: wall time ratio, same program.
import "../src/util/polyfill.js";
import { loadavg } from "node:os";
import { startLocalCluster } from "../src/cluster/local_cluster.js";
import { ClusterJobs } from "../src/cluster/jobs/client.js";
import { arithmeticSet } from "../src/cli/commands/demo.js";
import { ChainOfThought, LocalExecutor, createLM, withSettings, programToJSON } from "../src/index.js";
import { createOptimizer } from "../src/engine/teleprompt/by_name.js";
import { startSimLm } from "../src/simlm/index.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const sizes = arg("sizes", "1,2,4").split(",").map(Number);
const rounds = Number(arg("rounds", "3"));
const CAPACITY = 8;
const LATENCY = 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
// Task slots per peer (--capacity): two more than its LM's capacity, so two requests wait
// at the LM server and no LM slot idles while a finished task's reply travels and the next
// request arrives (how one configures a peer in front of a real model server). --slots 8
// measures with slots equal to the LM's capacity.
const SLOTS = Number(arg("slots", String(CAPACITY + 2)));
const peerArgs = () => ["--lm", "sim", "--sim-capacity", String(CAPACITY), "--sim-latency", String(LATENCY), "--lm-cache", "off", "--capacity", String(SLOTS)];

const out: Record<string, unknown> = { capacityPerPeer: CAPACITY, latencyMs: LATENCY, taskSlotsPerPeer: SLOTS, loadavgStart: loadavg() };
const efficiency: unknown[] = [];
let compileBench: unknown;
const largest = Math.max(...sizes);

for (const n of sizes) {
  const cluster = await startLocalCluster({ size: n, peerArgs, nodeArgs: arg("peer-node-args", "").split(" ").filter(Boolean) });
  try {
    await cluster.leader(60_000);
    const jobs = await ClusterJobs.connect(cluster.peers[0].addr, cluster.key);
    const program = new ChainOfThought("question -> answer");
    // Warm-up (JIT, lazily loaded code paths on every peer): the first job runs ~20% slower.
    await jobs.evaluate(program, arithmeticSet(n * CAPACITY * 10, 999), { metric: "exact_match", pollMs: 50 });
    const ideal = n * CAPACITY * (1000 / LATENCY);
    const coord: number[] = [];
    const client: number[] = [];
    // Same run, alternating: the default prefetch (0.25) against none (each task waits for
    // a round trip to the coordinator), so the ratio survives a noisy machine.
    const noPrefetch: number[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const prefetch of [undefined, 0]) {
        const devset = arithmeticSet(n * CAPACITY * 25, 1000 + r);
        const t0 = performance.now();
        const res = await jobs.evaluate(program, devset, { metric: "exact_match", pollMs: 50, ...(prefetch === 0 ? { prefetch } : {}) });
        const wall = performance.now() - t0;
        const eff = devset.length / (res.durationMs / 1000) / ideal;
        if (prefetch === 0) noPrefetch.push(eff);
        else {
          coord.push(eff);
          client.push(devset.length / (wall / 1000) / ideal);
        }
      }
    }
    efficiency.push({ peers: n, tasks: n * CAPACITY * 25, idealPerSec: ideal, efficiency: round(median(coord)), perRound: coord.map(round), clientSideEfficiency: round(median(client)), withoutPrefetch: round(median(noPrefetch)), withoutPrefetchPerRound: noPrefetch.map(round), loadavg: loadavg()[0] });

    if (n === largest) {
      const trainset = arithmeticSet(60, 1);
      const options = { numCandidates: 4, maxBootstrappedDemos: 4, maxLabeledDemos: 4 };
      const t0 = performance.now();
      const distributed = await jobs.compile(program, { optimizer: "random-search", optimizerOptions: options, trainset, metric: "exact_match", pollMs: 50 });
      const clusterMs = performance.now() - t0;
      const sim = await startSimLm({ port: 0, latencyMs: LATENCY, capacity: CAPACITY, seed: 0 });
      const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "sim", cache: false });
      const t1 = performance.now();
      const local = await withSettings({ lm }, () => createOptimizer("random-search", "exact_match", options).compile(program, { trainset, executor: new LocalExecutor({ concurrency: CAPACITY }), progress: false }));
      const localMs = performance.now() - t1;
      await sim.close();
      const same = JSON.stringify({ ...programToJSON(local), metadata: null }) === JSON.stringify({ ...distributed.json, metadata: null });
      compileBench = { optimizer: "random-search", peers: n, trainset: 60, clusterMs: Math.round(clusterMs), localMs: Math.round(localMs), speedup: round(localMs / clusterMs), sameProgram: same, loadavg: loadavg()[0] };
    }
    await jobs.close();
  } finally {
    await cluster.stop();
  }
}

out.efficiency = efficiency;
out.compile = compileBench;
out.loadavgEnd = loadavg();
process.stdout.write(JSON.stringify(out, null, 1) + "\n");

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
