// bench/channels: does bulk inference traffic starve coordination? Two peers in two
// processes: coordination RTT p50/p99 idle, then during a 50 MB transfer on the inference
// channel between the same two peers (goal: p99 during <= 2x idle p99), and the inference
// channel's throughput. Prints JSON. Run: npx tsx bench/channels.ts [--mb 50]
import "../src/util/polyfill.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { Peer } from "../src/cluster/peer.js";
import { readClusterKey, writeClusterKey } from "../src/cluster/keys.js";
import { spawnPeer } from "../test/cluster/helpers.js";

const mbArg = process.argv.indexOf("--mb");
const MB = mbArg > 0 ? Number(process.argv[mbArg + 1]) : 50;
const chunkArg = process.argv.indexOf("--chunk-kb");
const CHUNK = (chunkArg > 0 ? Number(process.argv[chunkArg + 1]) : 1024) * 1024;
const streamsArg = process.argv.indexOf("--streams");
const STREAMS = streamsArg > 0 ? Number(process.argv[streamsArg + 1]) : 4;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 1000) / 1000;
};

const dir = mkdtempSync(join(tmpdir(), "dspex-bench-"));
const keyFile = join(dir, "k.key");
await writeClusterKey(keyFile);
const remote = await spawnPeer(["--key-file", keyFile]);
const local = await Peer.start({ clusterKey: await readClusterKey(keyFile), bootstrap: [remote.addr], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
await local.node.dial(multiaddr(remote.addr), { signal: AbortSignal.timeout(10_000) });
const target = peerIdFromString(remote.id);
const coord = local.channels.coordination;
const inf = local.channels.inference;

async function pings(n: number | (() => boolean)): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; typeof n === "number" ? i < n : n(); i++) {
    const t = performance.now();
    await coord.request(target, "ping", null, { timeoutMs: 10_000 });
    out.push(performance.now() - t);
  }
  return out;
}

await pings(200); // warm up streams and JIT
const idle = await pings(1000);

const payload = new Uint8Array(CHUNK).fill(7);
let transferring = true;
const t0 = performance.now();
const transfer = (async () => {
  let next = 0;
  await Promise.all(
    Array.from({ length: STREAMS }, async () => {
      while (next < (MB * 1024 * 1024) / CHUNK) {
        next++;
        await inf.request(target, "sink", { data: payload }, { timeoutMs: 60_000 });
      }
    }),
  );
  transferring = false;
})();
const during = await pings(() => transferring);
await transfer;
const seconds = (performance.now() - t0) / 1000;

const result = {
  loadavg: (await import("node:os")).loadavg().map((x) => Math.round(x * 100) / 100),
  transferMB: MB,
  chunkKiB: CHUNK / 1024,
  concurrentTransfers: STREAMS,
  coordinationRttMs: {
    idle: { p50: pct(idle, 50), p99: pct(idle, 99), n: idle.length },
    duringTransfer: { p50: pct(during, 50), p99: pct(during, 99), n: during.length },
  },
  p99Ratio: Math.round((pct(during, 99) / pct(idle, 99)) * 100) / 100,
  goal: "p99 during <= 2x idle p99",
  inferenceThroughputMBps: Math.round((MB / seconds) * 10) / 10,
  yamuxMaxStreamWindow: "256 KiB",
};
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
await local.stop();
await remote.stop();
