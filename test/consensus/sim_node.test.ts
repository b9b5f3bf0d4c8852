import { describe, it } from "vitest";
import { Simulator } from "../../src/sim/simulator.js";
import { raftSimFactory, type RaftSimNode } from "../../src/consensus/sim_node.js";
import { propertyScheduleOptions, runSchedule } from "../../src/consensus/sim_check.js";
import type { Message } from "../../src/consensus/types.js";
import { expectFor } from "./helpers.js";

const ids = ["n1", "n2", "n3", "n4", "n5"];

function cluster(seed: number, extra: Partial<Parameters<typeof raftSimFactory>[0]> = {}) {
  const sim = new Simulator<Message>({ seed, connectionless: true, network: { minLatencyMs: 1, maxLatencyMs: 10 }, strict: true });
  const f = raftSimFactory({ initial: { voters: ids, learners: [] }, tickMs: 10, raft: { electionTick: 10, heartbeatTick: 2 }, validate: true, ...extra });
  for (const id of ids) sim.addNode(id, f);
  return sim;
}

function leader(sim: Simulator<Message>): RaftSimNode | undefined {
  let best: RaftSimNode | undefined;
  for (const id of ids) {
    const n = sim.node<RaftSimNode>(id);
    if (n && n.raft.role === "leader" && (!best || n.raft.term > best.raft.term)) best = n;
  }
  return best;
}

describe("raft in the simulator", () => {
  it("elects a leader; a topology switch proposed on a follower is applied by every peer", () => {
    const seed = 101;
    const ex = expectFor(seed);
    const sim = cluster(seed);
    sim.run({ until: 1000 });
    const l = leader(sim)!;
    ex(l).toBeDefined();
    const follower = sim.node<RaftSimNode>(ids.find((id) => id !== l.id)!)!;
    const r = follower.propose({ type: "setTopology", name: "hyparview", options: { activeView: 4 } });
    ex(r.ok && r.value.forwardedTo).toBe(l.id);
    sim.run({ until: 1200 });
    for (const id of ids) {
      const n = sim.node<RaftSimNode>(id)!;
      ex(n.state.topology?.name, id).toBe("hyparview");
      ex(n.raft.lead, id).toBe(l.id);
      ex(n.invalidMessages, id).toBe(0);
    }
  });

  it("term, vote and log survive crash and restart; the killed leader is replaced and catches up", () => {
    const seed = 102;
    const ex = expectFor(seed);
    const sim = cluster(seed, { compactEvery: 5 });
    sim.run({ until: 1000 });
    const l = leader(sim)!;
    for (let i = 0; i < 12; i++) sim.at(1000 + i * 10, () => leader(sim)?.propose({ type: "createJob", jobId: `j${i}`, spec: { i } }));
    sim.run({ until: 1500 });
    const before = { term: l.raft.term, last: l.raft.log.lastIndex(), digest: l.state.digest() };
    sim.crash(l.id);
    const t0 = sim.now;
    sim.run({ until: t0 + 2000, stopWhen: () => leader(sim) !== undefined && leader(sim)!.id !== l.id });
    const nl = leader(sim)!;
    ex(nl.id).not.toBe(l.id);
    ex(sim.now - t0, "election after leader crash (virtual ms)").toBeLessThan(1000);
    ex(nl.state.jobs.size).toBe(12); // committed state survived
    sim.restart(l.id);
    const back = sim.node<RaftSimNode>(l.id)!;
    ex(back.raft.term).toBe(before.term); // reloaded from durable storage
    ex(back.raft.log.lastIndex()).toBeGreaterThanOrEqual(before.last);
    ex(back.incarnation).toBe(1);
    sim.run({ until: sim.now + 500 });
    ex(back.raft.lead).toBe(nl.id);
    ex(back.state.jobs.size).toBe(12);
    ex(back.state.digest()).toBe(nl.state.digest());
    void before.digest;
  });

  it("replays exactly from a seed", () => {
    const seed = 103;
    const ex = expectFor(seed);
    const run = () => {
      const r = runSchedule({ ...propertyScheduleOptions(seed), boundMs: 1000 });
      return JSON.stringify({ ...r, plan: r.plan.length });
    };
    ex(run()).toBe(run());
  });

  it("paranoid schedules: cloned storage, frozen messages, zod-validated wire (200 seeds)", () => {
    for (let seed = 50_000; seed < 50_200; seed++) {
      const ex = expectFor(seed, `(replay: runSchedule({ ...propertyScheduleOptions(${seed}), paranoid: true }))`);
      const r = runSchedule({ ...propertyScheduleOptions(seed), boundMs: 1000, paranoid: true });
      ex(r.violations).toEqual([]);
      ex(r.leaderAfterHealMs).not.toBe(null);
    }
  }, 60_000);
});
