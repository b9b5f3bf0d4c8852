// bench/channels: does bulk inference traffic starve coordination? Two peers in two
// processes: coordination RTT p50/p99 idle, then during a 50 MB transfer on the inference
// channel between the same two peers (goal: p99 during <= 2x idle p99), and the inference
// channel's throughput. Prints JSON.
//
// Run: npx tsx bench/channels.ts [--mb 50] [--chunk-kb 1024] [--streams 4] [--rounds 7]
//                                [--interval-ms 2]
//
// Method, built for a small shared box (2 cores, other jobs running):
// - Several rounds; each round measures idle and loaded back to back (their order
//   alternates per round), so a round's ratio compares like with like; the verdict is the
//   median of per-round ratios.
// - Pings are sent open-loop on a fixed schedule (one every --interval-ms, whether or not
//   the previous one has returned), so a stall is sampled as many times as it lasts instead
//   of once (no coordinated omission). RTT is measured from the request() call.
// - Loaded samples are the pings sent while the 50 MB transfer is in flight; the idle phase
//   of the same round takes as many (estimated from the last transfer when idle goes first,
//   then both are cut to the same count), at the same interval.
// - os.loadavg() is recorded with every round.
import "../src/util/polyfill.js";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { Peer } from "../src/cluster/peer.js";
import { readClusterKey, writeClusterKey } from "../src/cluster/keys.js";
import { CHANNELS } from "../channels/specs.js";
import { spawnPeer } from "../test/cluster/helpers.js";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, got '${process.argv[i + 1]}'`);
  return v;
}
const MB = flag("mb", 50);
const CHUNK = Math.round(flag("chunk-kb", 1024) * 1024);
const STREAMS = flag("streams", 4);
const ROUNDS = flag("rounds", 7);
const INTERVAL_MS = flag("interval-ms", 2);

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const r2 = (x: number) => Math.round(x * 100) / 100;
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return r3(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]);
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = () => loadavg().map(r2);

const dir = mkdtempSync(join(tmpdir(), "dspex-bench-"));
const keyFile = join(dir, "k.key");
await writeClusterKey(keyFile);
const remote = await spawnPeer(["--key-file", keyFile]);
const local = await Peer.start({ clusterKey: await readClusterKey(keyFile), bootstrap: [remote.addr], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
await local.node.dial(multiaddr(remote.addr), { signal: AbortSignal.timeout(10_000) });
const target = peerIdFromString(remote.id);
const coord = local.channels.coordination;
const inf = local.channels.inference;

/**
 * Open-loop pings: one every INTERVAL_MS until `more()` says stop (checked before each send)
 * or `max` were sent. Returns each ping's RTT (ms), in send order.
 */
async function pings(more: () => boolean, max = Infinity): Promise<number[]> {
  const rtts: number[] = [];
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let k = 0; k < max && more(); k++) {
    const at = start + k * INTERVAL_MS;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (!more()) break;
    const i = rtts.length;
    rtts.push(NaN);
    const t = performance.now();
    inflight.push(
      coord.request(target, "ping", null, { timeoutMs: 10_000 }).then(() => {
        rtts[i] = performance.now() - t;
      }),
    );
  }
  await Promise.all(inflight);
  return rtts;
}

const payload = new Uint8Array(CHUNK).fill(7);
async function transfer(mb: number): Promise<number> {
  const parts = Math.ceil((mb * 1024 * 1024) / CHUNK);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: STREAMS }, async () => {
      while (next < parts) {
        next++;
        await inf.request(target, "sink", { data: payload }, { timeoutMs: 60_000 });
      }
    }),
  );
  return (parts * CHUNK) / (1024 * 1024) / ((performance.now() - t0) / 1000);
}

// Warm up streams, JIT and the bulk path on both ends; estimate how many pings a transfer lasts.
await pings(() => true, 200);
const warm = Math.min(MB, 10);
const warmMBps = await transfer(warm);
let expectSamples = Math.ceil(((MB / warmMBps) * 1000) / INTERVAL_MS);

/** Inference part bytes sent to the remote and not yet acknowledged by it (KiB), sampled every ms. */
const peerKey = remote.id;
const inflightKiB = (): number => ((inf as { bulkUnacked?: (p: string) => number }).bulkUnacked?.(peerKey) ?? NaN) / 1024;

const loadavgStart = load();
const eld = monitorEventLoopDelay({ resolution: 1 });
const rounds: Array<Record<string, unknown>> = [];
const allIdle: number[] = [];
const allLoaded: number[] = [];
const ratios: number[] = [];
const mbps: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const idleFirst = round % 2 === 0;
  let idle: number[] = [];
  let loaded: number[] = [];
  let speed = 0;
  let idleEld = 0;
  let loadedEld = 0;
  const inflight: number[] = [];
  // The in-flight probe runs in both phases, so both carry the same (small) overhead.
  const idleInflight: number[] = [];
  const runIdle = async () => {
    eld.reset();
    eld.enable();
    const probe = setInterval(() => idleInflight.push(inflightKiB()), 1);
    idle = await pings(() => true, idleFirst ? expectSamples : loaded.length);
    clearInterval(probe);
    eld.disable();
    idleEld = eld.percentile(99) / 1e6;
  };
  const runLoaded = async () => {
    let transferring = true;
    eld.reset();
    eld.enable();
    const t = transfer(MB).finally(() => (transferring = false));
    const probe = setInterval(() => inflight.push(inflightKiB()), 1);
    loaded = await pings(() => transferring);
    speed = await t;
    clearInterval(probe);
    expectSamples = loaded.length;
    eld.disable();
    loadedEld = eld.percentile(99) / 1e6;
  };
  if (idleFirst) {
    await runIdle();
    await runLoaded();
  } else {
    await runLoaded();
    await runIdle();
  }
  const n = Math.min(idle.length, loaded.length);
  idle = idle.slice(0, n);
  loaded = loaded.slice(0, n);
  allIdle.push(...idle);
  allLoaded.push(...loaded);
  const ratio = r2(pct(loaded, 99) / pct(idle, 99));
  ratios.push(ratio);
  mbps.push(speed);
  rounds.push({
    order: idleFirst ? "idle,loaded" : "loaded,idle",
    n,
    idle: { p50: pct(idle, 50), p99: pct(idle, 99), max: pct(idle, 100) },
    loaded: { p50: pct(loaded, 50), p99: pct(loaded, 99), max: pct(loaded, 100) },
    p99Ratio: ratio,
    inferenceMBps: r2(speed),
    inferenceUnackedKiB: { p50: pct(inflight, 50), max: pct(inflight, 100) },
    localEventLoopDelayP99Ms: { idle: r2(idleEld), loaded: r2(loadedEld) },
    loadavg: load(),
  });
}

const result = {
  goal: "coordination RTT p99 during transfer <= 2x idle p99 (median of per-round ratios)",
  p99RatioMedian: r2(median(ratios)),
  p99Ratios: ratios,
  pass: median(ratios) <= 2,
  inferenceMBpsMedian: r2(median(mbps)),
  coordinationRttMs: {
    idle: { p50: pct(allIdle, 50), p99: pct(allIdle, 99), n: allIdle.length },
    duringTransfer: { p50: pct(allLoaded, 50), p99: pct(allLoaded, 99), n: allLoaded.length },
  },
  loadavg: { start: loadavgStart, end: load() },
  config: {
    transferMB: MB,
    requestKiB: CHUNK / 1024,
    concurrentRequests: STREAMS,
    rounds: ROUNDS,
    pingIntervalMs: INTERVAL_MS,
    inferencePartKiB: (CHANNELS.inference.chunkBytes ?? 0) / 1024,
    inferenceBulkWindowKiB: (CHANNELS.inference.bulkWindowBytes ?? Infinity) / 1024,
    yamuxMaxStreamWindowKiB: 256,
  },
  rounds,
};
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
await local.stop();
await remote.stop();
