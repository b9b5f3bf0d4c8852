// bench/channels: does bulk inference traffic starve coordination? Two peers in two
// processes: coordination RTT p50/p99 idle, then during a 50 MB transfer on the inference
// channel between the same two peers (goal: p99 during <= 2x idle p99), and the inference
// channel's throughput. Prints JSON.
//
// Run: npx tsx bench/channels.ts [--mb 50] [--chunk-kb 1024] [--streams 4] [--rounds 7]
//                                [--interval-ms 2] [--variants 16/64/p,64/128] [--no-gc-tuning]
//      npx tsx --expose-gc bench/channels.ts --aged   (both ends run full GCs first)
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
// - --variants compares sender settings of the inference channel in the same run:
//   partKiB/windowKiB[/p] (p: yieldToPriority on), rotated per round. The first variant's
//   numbers are the top-level result. Default: the channel's own settings only.
// - Each ping is split into its two one-way delays (the remote stamps its clock: same host,
//   same clock), and both processes report event-loop delay p99 and GC pauses per phase, to
//   show where the loaded p99 comes from.
// - os.loadavg() is recorded with every round.
// - --aged: both processes run full GCs before the rounds. V8 sets its heap limits at every full
//   GC, so this is the state of a peer that has been up a while (a fresh process still runs on
//   its roomier initial limit, which hides the full-GC storms gc_tuning.ts is about).
//   --no-gc-tuning: both ends without that tuning, for the comparison.
//
// The remote peer is this file run with --serve (a Peer, like `dspex peer`, plus bench methods
// on the coordination channel: bench.ping stamps the remote clock, bench.stats reports the
// remote's event-loop delay and GC pauses since the last call, bench.gc runs full GCs).
import "../src/util/polyfill.js";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { Peer } from "../src/cluster/peer.js";
import { readClusterKey, writeClusterKey } from "../src/cluster/keys.js";
import { CHANNELS } from "../channels/specs.js";
import { heapGrowingPercent } from "../src/cluster/gc_tuning.js";

// Both ends tune their heap as every Peer does (--no-gc-tuning measures without it).
const heapTuning = !process.argv.includes("--no-gc-tuning");

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number, got '${process.argv[i + 1]}'`);
  return v;
}
function sflag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const r2 = (x: number) => Math.round(x * 100) / 100;
const pct = (xs: number[], p: number) => {
  const v = xs.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return r3(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]);
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = () => loadavg().map(r2);
/** Wall clock with sub-ms resolution, comparable between processes on one host. */
const clock = () => performance.timeOrigin + performance.now();

/** Event-loop delay p99 and GC pauses (count, total, max ms) since the last take(). */
function processStats() {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  let gc: number[] = [];
  let gcMajor: number[] = [];
  /** Major GCs by V8's GC callback flags (4 forced, 32 external memory, 64 started by a task once the heap neared its limit). */
  let gcMajorFlags: Record<string, number> = {};
  /** GC pauses as [start (clock()), end], to attribute slow pings. */
  let pauses: Array<[number, number]> = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.push(e.duration);
      pauses.push([performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration]);
      // kind 4: major (mark-compact); 1 minor (scavenge); 8 incremental marking step.
      const detail = (e as { detail?: { kind?: number; flags?: number } }).detail;
      if (detail?.kind === 4) {
        gcMajor.push(e.duration);
        const f = String(detail.flags ?? 0);
        gcMajorFlags[f] = (gcMajorFlags[f] ?? 0) + 1;
      }
    }
  }).observe({ entryTypes: ["gc"] });
  return {
    take() {
      const out = {
        eldP99Ms: r2(eld.percentile(99) / 1e6),
        eldMaxMs: r2(eld.max / 1e6),
        gcCount: gc.length,
        gcTotalMs: r2(gc.reduce((a, b) => a + b, 0)),
        gcMaxMs: r2(Math.max(0, ...gc)),
        gcMajorCount: gcMajor.length,
        gcMajorMaxMs: r2(Math.max(0, ...gcMajor)),
        gcMajorFlags,
        pauses,
      };
      eld.reset();
      gc = [];
      gcMajor = [];
      gcMajorFlags = {};
      pauses = [];
      return out;
    },
  };
}
function fullGc(): null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("--aged needs node's --expose-gc: npx tsx --expose-gc bench/channels.ts --aged");
  for (let i = 0; i < 3; i++) gc();
  return null;
}

type ProcStats = ReturnType<ReturnType<typeof processStats>["take"]>;

if (process.argv.includes("--serve")) {
  const peer = await Peer.start({ clusterKey: await readClusterKey(sflag("key-file")!), telemetryIntervalMs: 60_000, probeIntervalMs: 60_000, heapTuning });
  const stats = processStats();
  peer.channels.coordination.handle("bench.ping", z.null(), () => ({ t: clock() }));
  peer.channels.coordination.handle("bench.stats", z.null(), () => stats.take());
  peer.channels.coordination.handle("bench.gc", z.null(), () => fullGc());
  process.stdout.write(JSON.stringify({ event: "listening", peer: peer.id, addrs: peer.multiaddrs() }) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => void peer.stop().finally(() => process.exit(0)));
} else {
  await main();
}

interface Variant {
  name: string;
  partBytes: number;
  windowBytes: number;
  yieldToPriority: boolean;
}

function parseVariants(): Variant[] {
  const spec = CHANNELS.inference;
  const own: Variant = { name: "default", partBytes: spec.chunkBytes!, windowBytes: spec.bulkWindowBytes!, yieldToPriority: !!spec.yieldToPriority };
  const raw = sflag("variants");
  if (!raw) return [own];
  return raw.split(",").map((v) => {
    const [part, win, p] = v.split("/");
    return { name: v, partBytes: Number(part) * 1024, windowBytes: Number(win) * 1024, yieldToPriority: p === "p" };
  });
}

async function main(): Promise<void> {
  const MB = flag("mb", 50);
  const CHUNK = Math.round(flag("chunk-kb", 1024) * 1024);
  const STREAMS = flag("streams", 4);
  const ROUNDS = flag("rounds", 7);
  const INTERVAL_MS = flag("interval-ms", 2);
  const variants = parseVariants();

  const dir = mkdtempSync(join(tmpdir(), "dspex-bench-"));
  const keyFile = join(dir, "k.key");
  await writeClusterKey(keyFile);
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--serve", "--key-file", keyFile, ...(heapTuning ? [] : ["--no-gc-tuning"])], { stdio: ["pipe", "pipe", "inherit"] });
  process.on("exit", () => child.kill("SIGKILL"));
  const started = await new Promise<{ peer: string; addrs: string[] }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      try {
        const m = JSON.parse(l);
        if (m.event === "listening") resolve(m);
      } catch {
        // not ours
      }
    });
    child.once("exit", (code) => reject(new Error(`remote peer exited with ${code}`)));
  });
  const remoteAddr = `${started.addrs[0].replace(/\/p2p\/.*$/, "")}/p2p/${started.peer}`;
  const local = await Peer.start({ clusterKey: await readClusterKey(keyFile), bootstrap: [remoteAddr], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000, heapTuning });
  await local.node.dial(multiaddr(remoteAddr), { signal: AbortSignal.timeout(10_000) });
  const target = peerIdFromString(started.peer);
  const coord = local.channels.coordination;
  const inf = local.channels.inference;
  const localStats = processStats();
  const remoteStats = () => coord.request<ProcStats>(target, "bench.stats", null);

  interface Sample {
    rtt: number;
    /** clock() when request() was called. */
    at: number;
    /** One-way delays (ms): local request() call -> remote handler, remote handler -> reply here. */
    fwd: number;
    back: number;
  }
  /**
   * Open-loop pings: one every INTERVAL_MS until `more()` says stop (checked before each send)
   * or `max` were sent. Returns each ping's sample, in send order.
   */
  async function pings(more: () => boolean, max = Infinity): Promise<Sample[]> {
    const out: Sample[] = [];
    // A counter, not a promise per ping: the measuring process must not fill its own old
    // generation (and so trigger the mark-compact pauses it measures).
    let outstanding = 0;
    let allBack: (() => void) | undefined;
    const start = performance.now();
    for (let k = 0; k < max && more(); k++) {
      const at = start + k * INTERVAL_MS;
      const wait = at - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!more()) break;
      const t = performance.now();
      const sent = clock();
      const s: Sample = { rtt: NaN, at: sent, fwd: NaN, back: NaN };
      out.push(s);
      outstanding++;
      coord
        .request<{ t: number }>(target, "bench.ping", null, { timeoutMs: 10_000 })
        .then((r) => {
          s.rtt = performance.now() - t;
          const now = clock();
          s.fwd = r.t - sent;
          s.back = now - r.t;
        })
        .finally(() => {
          if (--outstanding === 0) allBack?.();
        });
    }
    if (outstanding > 0) await new Promise<void>((r) => (allBack = r));
    return out;
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

  const apply = (v: Variant) => {
    const spec = CHANNELS.inference; // the local channel's spec object: the sender settings
    spec.chunkBytes = v.partBytes;
    spec.bulkWindowBytes = v.windowBytes;
    spec.yieldToPriority = v.yieldToPriority;
  };

  // Warm up streams, JIT and the bulk path on both ends; estimate how many pings a transfer lasts.
  await pings(() => true, 200);
  const expect = new Map<string, number>();
  for (const v of variants) {
    apply(v);
    const mbps = await transfer(Math.min(MB, 10));
    expect.set(v.name, Math.ceil(((MB / mbps) * 1000) / INTERVAL_MS));
  }

  /** Inference part bytes sent to the remote and not yet acknowledged by it (KiB), sampled every ms. */
  const inflightKiB = (): number => inf.bulkUnacked(started.peer) / 1024;

  // --aged: full GCs on both ends first, as a peer that has been up a while has had (V8
  // recomputes the heap limits at every full GC; a fresh process still runs on its initial,
  // roomier limit). Needs --expose-gc.
  if (process.argv.includes("--aged")) {
    fullGc();
    await coord.request(target, "bench.gc", null);
  }
  // Settle (discarded): lets the GC's concurrent sweeping and any compilation triggered by the
  // warm-up finish, so the first round's idle phase is not measured on a busier process.
  await pings(() => true, 500);
  const loadavgStart = load();
  // Across rounds only the numbers are kept (packed double arrays), not the sample objects.
  type Columns = { rtt: number[]; fwd: number[]; back: number[] };
  const columns = (): Columns => ({ rtt: [], fwd: [], back: [] });
  const per = new Map<string, { rounds: Array<Record<string, unknown>>; idle: Columns; loaded: Columns; ratios: number[]; mbps: number[] }>();
  for (const v of variants) per.set(v.name, { rounds: [], idle: columns(), loaded: columns(), ratios: [], mbps: [] });
  const keep = (c: Columns, xs: Sample[]) => {
    for (const x of xs) {
      c.rtt.push(x.rtt);
      c.fwd.push(x.fwd);
      c.back.push(x.back);
    }
  };
  const columnSummary = (c: Columns) => ({
    p50: pct(c.rtt, 50),
    p99: pct(c.rtt, 99),
    max: pct(c.rtt, 100),
    fwdP50: pct(c.fwd, 50),
    fwdP99: pct(c.fwd, 99),
    backP50: pct(c.back, 50),
    backP99: pct(c.back, 99),
  });
  const summary = (xs: Sample[]) => {
    const c = columns();
    keep(c, xs);
    return columnSummary(c);
  };

  for (let round = 0; round < ROUNDS; round++) {
    const idleFirst = round % 2 === 0;
    for (let j = 0; j < variants.length; j++) {
      const v = variants[(round + j) % variants.length];
      apply(v);
      const acc = per.get(v.name)!;
      let idle: Sample[] = [];
      let loaded: Sample[] = [];
      let speed = 0;
      const inflight: number[] = [];
      let idleProc = { local: {} as ProcStats, remote: {} as ProcStats };
      let loadedProc = { local: {} as ProcStats, remote: {} as ProcStats };
      // The in-flight probe runs in both phases, so both carry the same (small) overhead.
      const idleInflight: number[] = [];
      const reset = async () => {
        localStats.take();
        await remoteStats();
      };
      const runIdle = async () => {
        await reset();
        const probe = setInterval(() => idleInflight.push(inflightKiB()), 1);
        idle = await pings(() => true, idleFirst ? expect.get(v.name)! : loaded.length);
        clearInterval(probe);
        idleProc = { local: localStats.take(), remote: await remoteStats() };
      };
      const runLoaded = async () => {
        let transferring = true;
        await reset();
        const t = transfer(MB).finally(() => (transferring = false));
        const probe = setInterval(() => inflight.push(inflightKiB()), 1);
        loaded = await pings(() => transferring);
        speed = await t;
        clearInterval(probe);
        loadedProc = { local: localStats.take(), remote: await remoteStats() };
        expect.set(v.name, loaded.length);
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
      keep(acc.idle, idle);
      keep(acc.loaded, loaded);
      // Attribution: of the loaded pings slower than 2x the idle p99, how many overlapped a GC
      // pause in this process or in the remote one.
      const slowMs = 2 * pct(idle.map((s) => s.rtt), 99);
      const slow = loaded.filter((s) => s.rtt > slowMs);
      const overlaps = (s: Sample, ps: Array<[number, number]>) => ps.some(([a, b]) => a < s.at + s.rtt && b > s.at);
      const slowPings = {
        thresholdMs: r3(slowMs),
        count: slow.length,
        overlapLocalGc: slow.filter((s) => overlaps(s, loadedProc.local.pauses)).length,
        overlapRemoteGc: slow.filter((s) => overlaps(s, loadedProc.remote.pauses)).length,
        overlapAnyGc: slow.filter((s) => overlaps(s, loadedProc.local.pauses) || overlaps(s, loadedProc.remote.pauses)).length,
        overlapAnyGcOfAll: loaded.filter((s) => overlaps(s, loadedProc.local.pauses) || overlaps(s, loadedProc.remote.pauses)).length,
      };
      const strip = (p: ProcStats) => ({ ...p, pauses: p.pauses.length });
      const ratio = r2(pct(loaded.map((s) => s.rtt), 99) / pct(idle.map((s) => s.rtt), 99));
      acc.ratios.push(ratio);
      acc.mbps.push(speed);
      acc.rounds.push({
        order: idleFirst ? "idle,loaded" : "loaded,idle",
        n,
        idle: summary(idle),
        loaded: summary(loaded),
        p99Ratio: ratio,
        inferenceMBps: r2(speed),
        inferenceUnackedKiB: { p50: pct(inflight, 50), max: pct(inflight, 100) },
        slowPings,
        process: {
          idle: { local: strip(idleProc.local), remote: strip(idleProc.remote) },
          loaded: { local: strip(loadedProc.local), remote: strip(loadedProc.remote) },
        },
        loadavg: load(),
      });
    }
  }

  const results = variants.map((v) => {
    const acc = per.get(v.name)!;
    return {
      variant: { name: v.name, partKiB: v.partBytes / 1024, bulkWindowKiB: v.windowBytes / 1024, yieldToPriority: v.yieldToPriority },
      p99RatioMedian: r2(median(acc.ratios)),
      p99Ratios: acc.ratios,
      // Informational: p99 of all loaded samples over p99 of all idle ones (~3,500 each; a
      // steadier estimate than one round's ~500, but it mixes rounds taken at different loads).
      p99RatioPooled: r2(pct(acc.loaded.rtt, 99) / pct(acc.idle.rtt, 99)),
      pass: median(acc.ratios) <= 2,
      inferenceMBpsMedian: r2(median(acc.mbps)),
      inferenceMBps: acc.mbps.map(r2),
      coordinationRttMs: {
        idle: { ...columnSummary(acc.idle), n: acc.idle.rtt.length },
        duringTransfer: { ...columnSummary(acc.loaded), n: acc.loaded.rtt.length },
      },
      rounds: acc.rounds,
    };
  });
  const first = results[0];
  const result = {
    goal: "coordination RTT p99 during transfer <= 2x idle p99 (median of per-round ratios)",
    p99RatioMedian: first.p99RatioMedian,
    p99RatioPooled: first.p99RatioPooled,
    pass: first.pass,
    inferenceMBpsMedian: first.inferenceMBpsMedian,
    coordinationRttMs: first.coordinationRttMs,
    loadavg: { start: loadavgStart, end: load() },
    config: {
      transferMB: MB,
      requestKiB: CHUNK / 1024,
      concurrentRequests: STREAMS,
      rounds: ROUNDS,
      pingIntervalMs: INTERVAL_MS,
      yamuxMaxStreamWindowKiB: 256,
      heapGrowingPercent: heapGrowingPercent(),
      aged: process.argv.includes("--aged"),
    },
    variants: results,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  await local.stop();
  child.stdin!.end();
  await new Promise((r) => child.once("exit", r));
}
