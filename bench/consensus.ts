// Raft in the simulator: election time after a leader crash, commit latency, proposal
// throughput, and randomized fault schedules per second. Prints one JSON object.
//
//   npx tsx bench/consensus.ts [--schedules N] [--from S] [--elections N]
//   npx tsx bench/consensus.ts --seed 1234 [--trace]     # replay one property-test schedule
import { propertyScheduleOptions, runSchedule } from "../src/consensus/sim_check.js";
import { raftSimFactory, type RaftSimNode } from "../src/consensus/sim_node.js";
import { Simulator } from "../src/sim/simulator.js";
import type { Message } from "../src/consensus/types.js";

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith("--") ? "true" : v;
}

function dist(xs: number[]): Record<string, number> {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => Math.round(100 * s[Math.min(s.length - 1, Math.floor(p * s.length))]!) / 100;
  return { n: s.length, min: q(0), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1), mean: Math.round((100 * s.reduce((a, b) => a + b, 0)) / Math.max(1, s.length)) / 100 };
}

const ids = ["n1", "n2", "n3", "n4", "n5"];
const NET = { minLatencyMs: 1, maxLatencyMs: 10 };
const RAFT = { electionTick: 10, heartbeatTick: 2 };
const TICK_MS = 10;

function cluster(seed: number, observer?: Parameters<typeof raftSimFactory>[0]["observer"]) {
  const sim = new Simulator<Message>({ seed, connectionless: true, network: NET });
  const f = raftSimFactory({ initial: { voters: ids, learners: [] }, tickMs: TICK_MS, raft: RAFT, compactEvery: 1000, observer });
  for (const id of ids) sim.addNode(id, f);
  return sim;
}

function leaderOf(sim: Simulator<Message>): RaftSimNode | undefined {
  let best: RaftSimNode | undefined;
  for (const id of ids) {
    const n = sim.node<RaftSimNode>(id);
    if (n && n.raft.role === "leader" && (!best || n.raft.term > best.raft.term)) best = n;
  }
  return best;
}

/** Kill the leader of a settled 5-node cluster; time until a new leader is known by a majority. */
function electionAfterCrash(seeds: number): { electionMs: Record<string, number>; firstCommitMs: Record<string, number> } {
  const el: number[] = [];
  const commit: number[] = [];
  for (let seed = 0; seed < seeds; seed++) {
    const sim = cluster(seed);
    sim.run({ until: 1000 });
    const old = leaderOf(sim)!;
    const t0 = sim.now;
    sim.crash(old.id);
    let newLeader: RaftSimNode | undefined;
    sim.run({
      until: t0 + 10_000,
      stopWhen: () => {
        const l = leaderOf(sim);
        if (!l || l.id === old.id) return false;
        let know = 0;
        for (const id of ids) if (sim.node<RaftSimNode>(id)?.raft.lead === l.id) know++;
        if (know >= 3) newLeader = l;
        return newLeader !== undefined;
      },
    });
    if (!newLeader) throw new Error(`seed=${seed}: no new leader`);
    el.push(sim.now - t0);
    const p = newLeader.propose({ type: "noop", requestId: "x" });
    if (p.ok && p.value.index !== undefined) {
      const idx = p.value.index;
      sim.run({ until: sim.now + 10_000, stopWhen: () => newLeader!.raft.log.applied >= idx });
      commit.push(sim.now - t0);
    }
  }
  return { electionMs: dist(el), firstCommitMs: dist(commit) };
}

/** Proposals at a steady rate on the leader: latency to commit (leader applied) and to all applied. */
function commitLatency(seed: number, n: number, everyMs: number): Record<string, unknown> {
  const proposedAt = new Map<string, number>();
  const leaderLat: number[] = [];
  const allCount = new Map<string, number>();
  const allLat: number[] = [];
  let leaderId = "";
  const sim = cluster(seed, {
    onApply(node, e, _r, now) {
      const rid = (e.data as { requestId?: string } | null)?.requestId;
      if (rid === undefined) return;
      const t = proposedAt.get(rid);
      if (t === undefined) return;
      if (node.id === leaderId) leaderLat.push(now - t);
      const c = (allCount.get(rid) ?? 0) + 1;
      allCount.set(rid, c);
      if (c === ids.length) allLat.push(now - t);
    },
  });
  sim.run({ until: 1000 });
  const l = leaderOf(sim)!;
  leaderId = l.id;
  const start = sim.now;
  for (let i = 0; i < n; i++) {
    sim.at(start + i * everyMs, () => {
      const rid = `p${i}`;
      proposedAt.set(rid, sim.now);
      l.propose({ type: "checkpoint", jobId: "j", tasks: [{ taskId: `t${i}`, digest: `d${i}` }], requestId: rid });
    });
  }
  sim.run({ until: start + n * everyMs + 1000 });
  return { proposals: n, intervalMs: everyMs, leaderCommitMs: dist(leaderLat), allAppliedMs: dist(allLat) };
}

/** As many proposals as the simulator will take: wall-clock throughput of the whole stack. */
function throughput(seed: number, n: number): Record<string, unknown> {
  let applied = 0;
  let leaderId = "";
  const sim = cluster(seed, {
    onApply(node) {
      if (node.id === leaderId) applied++;
    },
  });
  sim.run({ until: 1000 });
  const l = leaderOf(sim)!;
  leaderId = l.id;
  const before = applied;
  const w0 = performance.now();
  const start = sim.now;
  const span = 1000; // one virtual second
  for (let i = 0; i < n; i++) sim.at(start + (i * span) / n, () => l.propose({ type: "noop", requestId: `q${i}` }));
  sim.run({ until: start + span + 500 });
  const wall = performance.now() - w0;
  const done = applied - before;
  return {
    proposals: n,
    committed: done,
    virtualSpanMs: span,
    wallMs: Math.round(wall),
    proposalsPerWallSec: Math.round((done / wall) * 1000),
    events: sim.metrics().events,
  };
}

function schedules(from: number, count: number): Record<string, unknown> {
  const t0 = performance.now();
  const lead: number[] = [];
  const commit: number[] = [];
  let violations = 0;
  let noLeader = 0;
  let events = 0;
  for (let seed = from; seed < from + count; seed++) {
    const r = runSchedule({ ...propertyScheduleOptions(seed), boundMs: 1000 });
    events += r.events;
    if (r.violations.length > 0) {
      violations++;
      console.error(r.violations.join("\n"));
    }
    if (r.leaderAfterHealMs === null) noLeader++;
    else lead.push(r.leaderAfterHealMs);
    if (r.commitAfterHealMs !== null) commit.push(r.commitAfterHealMs);
  }
  const wall = performance.now() - t0;
  return {
    schedules: count,
    fromSeed: from,
    violations,
    noLeaderWithin1000ms: noLeader,
    leaderAfterHealMs: dist(lead),
    commitAfterHealMs: dist(commit),
    eventsPerSchedule: Math.round(events / count),
    wallMs: Math.round(wall),
    schedulesPerSec: Math.round((count / wall) * 1000),
  };
}

const seedArg = arg("seed");
if (seedArg !== undefined) {
  const seed = Number(seedArg);
  const r = runSchedule({ ...propertyScheduleOptions(seed), boundMs: 1000, trace: arg("trace") === "true" });
  if (r.trace) for (const line of r.trace) console.log(line);
  console.log(JSON.stringify({ ...r, trace: undefined }, null, 2));
} else {
  const out = {
    node: process.version,
    loadavg: (await import("node:os")).loadavg().map((x) => Math.round(x * 100) / 100),
    config: { tickMs: TICK_MS, ...RAFT, network: NET, nodes: ids.length },
    electionAfterLeaderCrash: electionAfterCrash(Number(arg("elections", "300"))),
    commitLatency: commitLatency(1, 500, 5),
    throughput: throughput(2, Number(arg("proposals", "20000"))),
    faultSchedules: schedules(Number(arg("from", "0")), Number(arg("schedules", "10000"))),
  };
  console.log(JSON.stringify(out, null, 2));
}
