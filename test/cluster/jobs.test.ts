// Distributed evaluate and compile on three in-process peers (real libp2p connections on
// 127.0.0.1, Raft, one sim-lm per peer with the same seed): same scores and the same
// compiled program as a local run; a peer replying junk and a slow peer do not stall a job.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerIdFromPublicKey, peerIdFromString } from "@libp2p/peer-id";
import { stashReplySchema } from "../../src/cluster/jobs/wire.js";
import { z } from "zod";
import { Peer } from "../../src/cluster/peer.js";
import { loadOrCreateIdentity, newClusterKey } from "../../src/cluster/keys.js";
import { RaftDriver } from "../../src/cluster/raft_driver.js";
import { JobService } from "../../src/cluster/jobs/service.js";
import { ClusterJobs } from "../../src/cluster/jobs/client.js";
import { arithmeticSet } from "../../src/cli/commands/demo.js";
import { createLM, setModelPrice } from "../../src/engine/lm/index.js";
import { JobError } from "../../src/cluster/jobs/errors.js";
import { ChainOfThought } from "../../src/engine/modules/chain_of_thought.js";
import { Evaluate, type ExampleResult } from "../../src/engine/evaluate/evaluate.js";
import { LocalExecutor } from "../../src/engine/evaluate/executor.js";
import { withSettings } from "../../src/engine/settings.js";
import { programToJSON } from "../../src/engine/state.js";
import { BootstrapFewShot } from "../../src/engine/teleprompt/bootstrap.js";
import { createOptimizer } from "../../src/engine/teleprompt/by_name.js";
import { startSimLm, type SimLm } from "../../src/simlm/index.js";
import { eventually } from "./helpers.js";

const key = newClusterKey();
const dir = mkdtempSync(join(tmpdir(), "dspex-jobs-"));
const sims: SimLm[] = [];
const members: { peer: Peer; raft?: RaftDriver; jobs?: JobService }[] = [];
const lmFor = (sim: SimLm) => createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "sim", cache: false });

beforeAll(async () => {
  // A price for the simulated model, so results carry costs (for the budget test).
  setModelPrice("sim-1", { input: 1, output: 2 });
  for (let i = 0; i < 3; i++) sims.push(await startSimLm({ port: 0, latencyMs: 5, seed: 3 }));
  const identities = await Promise.all([0, 1, 2].map((i) => loadOrCreateIdentity(join(dir, `id${i}.key`))));
  const voters = identities.map((k) => peerIdFromPublicKey(k.publicKey).toString());
  const first = await Peer.start({ clusterKey: key, identity: identities[0], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  const rest = await Promise.all([1, 2].map((i) => Peer.start({ clusterKey: key, identity: identities[i], bootstrap: [first.multiaddrs()[0]], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 })));
  const peers = [first, ...rest];
  await eventually(async () => ((await Promise.all(peers.map((p) => p.dspexPeers()))).every((l) => l.length === 2) ? true : undefined), 20_000, "full mesh of three");
  for (const [i, peer] of peers.entries()) {
    const raft = new RaftDriver(peer, { dir: join(dir, `raft${i}`), voters, tickMs: 20 });
    members.push({ peer, raft, jobs: new JobService(peer, raft, { lm: lmFor(sims[i]), capacity: 8 }) });
  }
  await eventually(async () => (members.some((m) => m.raft!.isLeader()) ? true : undefined), 20_000, "a leader");
}, 60_000);

afterAll(async () => {
  for (const m of members) {
    m.jobs?.stop();
    m.raft?.stop();
    await m.peer.stop();
  }
  await Promise.all(sims.map((s) => s.close()));
});

const follower = () => members.find((m) => m.raft && !m.raft.isLeader() && m.jobs)!;

describe("distributed jobs", () => {
  it("evaluates on the cluster with the local score, each example exactly once, work on every peer", { timeout: 60_000 }, async () => {
    const devset = arithmeticSet(300, 5);
    const program = new ChainOfThought("question -> answer");
    const local = await withSettings({ lm: lmFor(sims[0]) }, () => new Evaluate({ devset, metric: "exact_match", executor: new LocalExecutor({ concurrency: 16 }), progress: false }).run(program));
    const seen: number[] = [];
    const r = await ClusterJobs.local(follower().jobs!).evaluate(program, devset, { metric: "exact_match", onProgress: (p) => p.progress && seen.push(p.progress.done) });
    expect(r.score).toBe(local.score);
    expect(r.total).toBe(300);
    expect(r.results.map((x: ExampleResult) => x.index)).toEqual(devset.map((_, i) => i));
    expect(Object.keys(r.stats.perPeer).length).toBe(3);
    expect(Object.values(r.stats.perPeer).reduce((a, b) => a + b, 0)).toBe(300);
    expect(seen.length).toBeGreaterThan(0);
  });

  it("workers keep a job's recent results for a new coordinator to collect (task.stash), and only that job's", { timeout: 60_000 }, async () => {
    const devset = arithmeticSet(60, 21);
    const program = new ChainOfThought("question -> answer");
    const r = await ClusterJobs.local(follower().jobs!).evaluate(program, devset, { metric: "exact_match" });
    const asker = members[0].peer;
    const stashes = await Promise.all(
      members.map(async (m) => (m.peer === asker ? m.jobs!["worker"].stashed(r.jobId) : stashReplySchema.parse(await asker.channels.inference.request(peerIdFromString(m.peer.id), "task.stash", { job: r.jobId })))),
    );
    const keys = new Set(stashes.flatMap((s) => s.results.map((x) => x.key)));
    // Every distinct task's result is in some worker's stash (keys are content keys: equal
    // examples share one).
    expect(r.errors).toBe(0);
    expect(keys.size).toBe(new Set(devset.map((e) => JSON.stringify(e.toDict()))).size);
    expect(keys.size).toBeGreaterThan(40);
    expect(stashes.every((s) => s.results.every((x) => x.result.ok))).toBe(true);
    const other = stashReplySchema.parse(await asker.channels.inference.request(peerIdFromString(members[1].peer.id), "task.stash", { job: "no-such-job" }));
    expect(other.results).toEqual([]);
  });

  it("compiles on the cluster to the same program as a local compile", { timeout: 60_000 }, async () => {
    const trainset = arithmeticSet(40, 11);
    const program = new ChainOfThought("question -> answer");
    const local = await withSettings({ lm: lmFor(sims[1]) }, () =>
      new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: 4, maxLabeledDemos: 4 }).compile(program, { trainset, executor: new LocalExecutor({ concurrency: 8 }), progress: false }),
    );
    const r = await ClusterJobs.local(follower().jobs!).compile(program, { optimizer: "bootstrap", optimizerOptions: { maxBootstrappedDemos: 4, maxLabeledDemos: 4 }, trainset, metric: "exact_match" });
    const strip = (j: Record<string, unknown>) => ({ ...j, metadata: null });
    expect(strip(r.json)).toEqual(strip(programToJSON(local) as Record<string, unknown>));
  });

  it("runs every optimizer unchanged: labeled, random-search and mipro give the local program", { timeout: 120_000 }, async () => {
    const trainset = arithmeticSet(30, 12);
    const program = new ChainOfThought("question -> answer");
    const strip = (j: Record<string, unknown>) => ({ ...j, metadata: null });
    const cases = [
      { name: "labeled" as const, options: { maxLabeledDemos: 3 } },
      { name: "random-search" as const, options: { numCandidates: 3, maxBootstrappedDemos: 2, maxLabeledDemos: 2 } },
      { name: "mipro" as const, options: { numCandidates: 2, numTrials: 4, maxBootstrappedDemos: 2, maxLabeledDemos: 2, minibatchSize: 10, seed: 5 } },
    ];
    for (const c of cases) {
      const local = await withSettings({ lm: lmFor(sims[0]) }, () =>
        createOptimizer(c.name, "exact_match", c.options).compile(program, { trainset, executor: new LocalExecutor({ concurrency: 8 }), progress: false }),
      );
      const r = await ClusterJobs.local(follower().jobs!).compile(program, { optimizer: c.name, optimizerOptions: c.options, trainset, metric: "exact_match" });
      expect({ optimizer: c.name, program: strip(r.json) }).toEqual({ optimizer: c.name, program: strip(programToJSON(local) as Record<string, unknown>) });
    }
  });

  it("stops a job over its cost budget, paces task starts to an rpm budget, and cancels", { timeout: 60_000 }, async () => {
    const jobs = ClusterJobs.local(follower().jobs!);
    const program = new ChainOfThought("question -> answer");
    const err = await jobs.evaluate(program, arithmeticSet(200, 21), { metric: "exact_match", costBudgetUsd: 0.002 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobError);
    expect((err as Error).message).toMatch(/exceeds its budget of \$0.002/);

    // 600 task starts per minute = 10/s (burst 10): 40 tasks need >= 3 s.
    const t0 = performance.now();
    const paced = await jobs.evaluate(program, arithmeticSet(40, 22), { metric: "exact_match", rpm: 600 });
    expect(paced.total).toBe(40);
    expect(performance.now() - t0).toBeGreaterThan(2500);

    const abort = new AbortController();
    const cancelled = await jobs
      .evaluate(program, arithmeticSet(60, 23), { metric: "exact_match", rpm: 120, signal: abort.signal, onProgress: (p) => (p.progress?.done ?? 0) > 0 && abort.abort() })
      .catch((e: unknown) => e);
    expect((cancelled as JobError).code).toBe("cancelled");
  });

  it("paces task starts to a cluster-wide provider budget committed through Raft and shared by concurrent jobs", { timeout: 60_000 }, async () => {
    const f = follower();
    // Proposed on a follower: forwarded to the leader, answered once committed.
    const set = await f.raft!.submit({ type: "setLmLimit", provider: "openai", rpm: 600 });
    expect(set.result.ok).toBe(true);
    await eventually(async () => (members.every((m) => !m.raft || m.raft.state.lmLimits.openai?.rpm === 600) ? true : undefined), 10_000, "the limit applied everywhere");
    try {
      const jobs = ClusterJobs.local(f.jobs!);
      const program = new ChainOfThought("question -> answer");
      // 600 starts per minute = 10/s with a burst of 10, for both jobs together: their 40
      // task starts need >= 3 s (each job alone would be done in ~1 s).
      const t0 = performance.now();
      const [a, b] = await Promise.all([jobs.evaluate(program, arithmeticSet(20, 31), { metric: "exact_match" }), jobs.evaluate(program, arithmeticSet(20, 32), { metric: "exact_match" })]);
      expect(a.total + b.total).toBe(40);
      expect(performance.now() - t0).toBeGreaterThan(2500);
    } finally {
      const cleared = await f.raft!.submit({ type: "setLmLimit", provider: "openai" });
      expect(cleared.result.ok).toBe(true);
    }
    // A bad limit is refused by the state machine on every peer alike.
    const bad = await f.raft!.submit({ type: "setLmLimit", provider: "Open AI", rpm: 1 });
    expect(bad.result.ok).toBe(false);
  });

  it("ignores a peer replying junk and re-leases its tasks; steals from a slow peer", { timeout: 90_000 }, async () => {
    // A fourth peer that claims to be a worker but answers every task with a malformed result.
    const junk = await Peer.start({ clusterKey: key, bootstrap: [members[0].peer.multiaddrs()[0]], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
    members.push({ peer: junk });
    let junkCalls = 0;
    junk.channels.coordination.handle("worker.info", z.unknown(), () => ({ peer: junk.id, capacity: 8, lm: "junk/1", missing: [], tasksRun: 0 }));
    junk.channels.inference.handle("task.run", z.unknown(), () => {
      junkCalls++;
      return { result: { id: 7, ok: "yes" } };
    });
    // A fifth, slow worker: its LM takes 4 s per call.
    const slowSim = await startSimLm({ port: 0, latencyMs: 4000, seed: 3 });
    sims.push(slowSim);
    const slow = await Peer.start({ clusterKey: key, bootstrap: [members[0].peer.multiaddrs()[0]], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
    members.push({ peer: slow, jobs: new JobService(slow, undefined, { lm: lmFor(slowSim), capacity: 2 }) });
    const leader = members.find((m) => m.raft?.isLeader())!;
    await eventually(async () => ((await leader.peer.dspexPeers()).length === 4 ? true : undefined), 20_000, "junk and slow peers connected to the leader");

    const devset = arithmeticSet(200, 9);
    const program = new ChainOfThought("question -> answer");
    const local = await withSettings({ lm: lmFor(sims[0]) }, () => new Evaluate({ devset, metric: "exact_match", executor: new LocalExecutor({ concurrency: 16 }), progress: false }).run(program));
    const t0 = performance.now();
    const r = await ClusterJobs.local(follower().jobs!).evaluate(program, devset, { metric: "exact_match", leaseMs: 20_000 });
    const wallMs = performance.now() - t0;
    expect(junkCalls).toBeGreaterThan(0);
    expect(r.score).toBe(local.score);
    expect(r.results).toHaveLength(200);
    expect(r.stats.perPeer[junk.id]).toBeUndefined();
    expect(r.stats.released).toBeGreaterThan(0);
    // The slow peer held at most 2 tasks at 4 s each; backups on idle peers finish them sooner.
    expect(r.stats.speculative).toBeGreaterThan(0);
    expect(wallMs).toBeLessThan(15_000);
  });
});
