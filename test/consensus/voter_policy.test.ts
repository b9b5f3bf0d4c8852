// Automatic voter selection (src/consensus/voter_policy.ts): the pure decision function on
// hand-made views and 20,000 random ones, then the policy running on simulated leaders:
// a dead voter is removed after the bound and the lowest-id live durable learner promoted, for follower and leader deaths, never by a learner without durable storage;
// `--voters auto`-style growth from one voter; and randomized schedules (temporary crashes,
// partitions, lossy links, then permanent deaths) checked by the Raft safety monitor.
// Every failure names its seed; replay one with VOTER_SEED=<seed>.
import { describe, expect, it } from "vitest";
import { createRng } from "../../src/sim/rng.js";
import { randomFaultPlan } from "../../src/sim/faults.js";
import { Simulator } from "../../src/sim/simulator.js";
import { applyConfChange } from "../../src/consensus/raft.js";
import { raftSimFactory, type RaftSimNode, type RaftSimObserver } from "../../src/consensus/sim_node.js";
import { SafetyMonitor } from "../../src/consensus/sim_check.js";
import { decideVoterChange, quorumOf, type PolicyMember, type PolicyView, type VoterDecision, type VoterPolicy } from "../../src/consensus/voter_policy.js";
import type { ConfState, Message } from "../../src/consensus/types.js";
import { expectFor } from "./helpers.js";

const POLICY: VoterPolicy = { targetVoters: 3, deadAfter: 100, freshWithin: 20 };
const live = (over: Partial<PolicyMember> = {}): PolicyMember => ({ idle: 1, match: 50, state: "replicate", ...over });

function view(conf: ConfState, members: Record<string, PolicyMember>, over: Partial<PolicyView> = {}): PolicyView {
  return { self: "a", isLeader: true, conf, confIndex: 10, commit: 50, lastIndex: 50, transferring: false, members, durable: () => true, ...over };
}

describe("decideVoterChange", () => {
  const conf = { voters: ["a", "b", "c"], learners: ["d", "e"] };
  const healthy = { a: live(), b: live(), c: live(), d: live(), e: live() };
  const cDead = { ...healthy, c: live({ idle: 100 }) };

  it("does nothing when not leader, transferring, a change is uncommitted, or all voters are live", () => {
    expect(decideVoterChange(POLICY, view(conf, cDead, { isLeader: false }))).toBeNull();
    expect(decideVoterChange(POLICY, view(conf, cDead, { transferring: true }))).toBeNull();
    expect(decideVoterChange(POLICY, view(conf, cDead, { confIndex: 51 }))).toBeNull();
    expect(decideVoterChange(POLICY, view(conf, healthy))).toBeNull();
    expect(decideVoterChange(POLICY, view(conf, { ...healthy, c: live({ idle: 99 }) }))).toBeNull(); // not yet: the bound is 100 ticks
  });

  it("removes a dead voter when an eligible learner can take its place, then promotes the lowest-id one", () => {
    expect(decideVoterChange(POLICY, view(conf, cDead))).toMatchObject({ change: { type: "removeNode", node: "c" }, rule: "remove-dead-voter", successor: "d" });
    // d is not eligible: no durable storage / lagging / probing / not heard recently.
    const e = { change: { type: "removeNode", node: "c" }, successor: "e" };
    expect(decideVoterChange(POLICY, view(conf, cDead, { durable: (id) => id !== "d" }))).toMatchObject(e);
    expect(decideVoterChange(POLICY, view(conf, { ...cDead, d: live({ match: 10 }) }))).toMatchObject(e);
    expect(decideVoterChange(POLICY, view(conf, { ...cDead, d: live({ state: "probe" }) }))).toMatchObject(e);
    expect(decideVoterChange(POLICY, view(conf, { ...cDead, d: live({ idle: 21 }) }))).toMatchObject(e);
    // No eligible learner: the dead voter stays (removing it would not make the cluster more tolerant).
    expect(decideVoterChange(POLICY, view(conf, cDead, { durable: () => false }))).toBeNull();
    // A voter the leader has no progress for counts as dead.
    const { c: _c, ...noC } = healthy;
    expect(decideVoterChange(POLICY, view(conf, noC))).toMatchObject({ change: { type: "removeNode", node: "c" }, successor: "d" });
    // Next round: two voters, target three: the successor is promoted.
    expect(decideVoterChange(POLICY, view({ voters: ["a", "b"], learners: ["d", "e"] }, healthy))).toMatchObject({ change: { type: "addVoter", node: "d" }, rule: "promote" });
  });

  it("removes dead voters above the target even without a successor, the most silent first", () => {
    const four = { voters: ["a", "b", "c", "d"], learners: ["e"] };
    const d = decideVoterChange(POLICY, view(four, cDead, { durable: () => false }));
    expect(d).toMatchObject({ change: { type: "removeNode", node: "c" }, rule: "remove-dead-voter" });
    expect(d?.successor).toBeUndefined();
    const five = { voters: ["a", "b", "c", "d", "e"], learners: [] };
    const two = { ...healthy, b: live({ idle: 150 }), c: live({ idle: 300 }) };
    expect(decideVoterChange(POLICY, view(five, two))?.change).toEqual({ type: "removeNode", node: "c" });
  });

  it("demotes one voter when there are too many and all are live; grows towards the target", () => {
    const four = { voters: ["a", "b", "c", "d"], learners: ["e"] };
    expect(decideVoterChange(POLICY, view(four, healthy))).toMatchObject({ change: { type: "addLearner", node: "d" }, rule: "demote" });
    expect(decideVoterChange(POLICY, view(four, healthy, { self: "d" }))?.change).toEqual({ type: "addLearner", node: "c" }); // never the leader itself
    const one = { voters: ["a"], learners: ["d", "c", "b"] };
    expect(decideVoterChange(POLICY, view(one, healthy))).toMatchObject({ change: { type: "addVoter", node: "b" }, rule: "promote" });
  });

  it("changes nothing without a live quorum; removes long-silent learners only when asked", () => {
    const five = { voters: ["a", "b", "c", "d", "e"], learners: ["f"] };
    const m = { a: live(), b: live(), c: live({ idle: 200 }), d: live({ idle: 200 }), e: live({ idle: 200 }), f: live() };
    expect(decideVoterChange({ ...POLICY, targetVoters: 5 }, view(five, m))).toBeNull();
    const gone = { ...healthy, e: live({ idle: 5000 }) };
    expect(decideVoterChange(POLICY, view(conf, gone))).toBeNull();
    expect(decideVoterChange({ ...POLICY, removeLearnersAfter: 5000 }, view(conf, gone))).toMatchObject({ change: { type: "removeNode", node: "e" }, rule: "remove-dead-learner" });
  });

  it("on 20,000 random views: a valid single change, never below a live quorum, never the leader, only durable caught-up learners promoted, deterministic", { timeout: 60_000 }, () => {
    const seed = Number(process.env.VOTER_SEED ?? 7);
    const rng = createRng(seed, "policy-views");
    const ex = expectFor(seed, "random views");
    const ids = ["p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    let decided = 0;
    for (let k = 0; k < 20_000; k++) {
      const shuffled = rng.shuffle([...ids]);
      const nv = 1 + rng.int(6);
      const nl = rng.int(ids.length - nv + 1);
      const c: ConfState = { voters: shuffled.slice(0, nv).sort(), learners: shuffled.slice(nv, nv + nl).sort() };
      const self = rng.pick(c.voters);
      const members: Record<string, PolicyMember> = {};
      for (const id of [...c.voters, ...c.learners]) {
        if (rng.next() < 0.05) continue; // no progress known
        members[id] = { idle: rng.pick([0, 5, 30, 99, 100, 400, 6000]), match: 40 + rng.int(11) * (rng.next() < 0.2 ? -4 : 1), state: rng.pick(["replicate", "replicate", "probe", "snapshot"]) };
      }
      const durableSet = new Set(ids.filter(() => rng.next() < 0.7));
      const p: VoterPolicy = { targetVoters: rng.pick([1, 3, 5]), deadAfter: 100, freshWithin: 20, removeLearnersAfter: rng.pick([0, 5000]) };
      const v = view(c, members, { self, confIndex: rng.next() < 0.1 ? 60 : 10, durable: (id) => durableSet.has(id) });
      const d = decideVoterChange(p, v);
      ex(JSON.stringify(decideVoterChange(p, v)), `view ${k}`).toBe(JSON.stringify(d));
      if (d === null) continue;
      decided++;
      const where = `view ${k}: ${JSON.stringify({ c, self, members, target: p.targetVoters })} -> ${JSON.stringify(d)}`;
      const next = applyConfChange(c, d.change);
      ex(typeof next, where).toBe("object");
      const nc = next as ConfState;
      const isLive = (id: string) => id === self || (members[id] !== undefined && members[id]!.idle < p.deadAfter);
      ex(nc.voters.filter(isLive).length >= quorumOf(nc.voters.length), where).toBe(true);
      ex(d.change.node === self, where).toBe(false);
      if (d.change.type === "addVoter") {
        const m = members[d.change.node]!;
        ex(durableSet.has(d.change.node) && m.state === "replicate" && m.idle <= p.freshWithin && 50 - m.match <= 32, where).toBe(true);
      }
    }
    ex(decided).toBeGreaterThan(2000);
  });
});

// ---- In the simulator ----------------------------------------------------------------

const TICK = 10;
const BOUND_TICKS = 100; // 1,000 virtual ms
const BOUND = BOUND_TICKS * TICK;

interface Decision extends VoterDecision {
  at: number;
  by: string;
  term: number;
}

function cluster(seed: number, conf: ConfState, opts: { durable?: (id: string) => boolean; target?: number; lossy?: boolean } = {}) {
  const monitor = new SafetyMonitor(seed);
  const decisions: Decision[] = [];
  const observer: RaftSimObserver = {
    onReady: (n, rd, now) => monitor.onReady(n, rd, now),
    onApply: (n, e, r, now) => monitor.onApply(n, e, r, now),
    afterEvent: (n, now) => monitor.afterEvent(n, now),
    onVoterDecision: (n, d, now) => decisions.push({ ...d, at: now, by: n.id, term: n.raft.term }),
  };
  const sim = new Simulator<Message>({
    seed,
    connectionless: true,
    strict: true,
    network: opts.lossy ? { minLatencyMs: 1, maxLatencyMs: 10, lossRate: 0.01, duplicateRate: 0.01, reorderRate: 0.02, reorderDelayMs: 30 } : { minLatencyMs: 1, maxLatencyMs: 10 },
  });
  const f = raftSimFactory({
    initial: conf,
    tickMs: TICK,
    raft: { electionTick: 10, heartbeatTick: 2 },
    compactEvery: 16,
    validate: true,
    observer,
    voterPolicy: { targetVoters: opts.target ?? conf.voters.length, deadAfter: BOUND_TICKS, freshWithin: 20, ...(opts.durable ? { durable: opts.durable } : {}) },
  });
  const ids = [...conf.voters, ...conf.learners];
  for (const id of ids) sim.addNode(id, f);
  const leader = (): RaftSimNode | undefined => {
    let best: RaftSimNode | undefined;
    for (const id of ids) {
      const n = sim.node<RaftSimNode>(id);
      if (n && n.raft.role === "leader" && (!best || n.raft.term > best.raft.term)) best = n;
    }
    return best;
  };
  /** A leader whose committed configuration has `target` voters, all up and following it. */
  const settled = (target: number): RaftSimNode | undefined => {
    const l = leader();
    if (!l || l.raft.log.committed < l.raft.status().confIndex) return undefined;
    const v = l.raft.conf.voters;
    if (v.length !== target) return undefined;
    for (const id of [...v, ...l.raft.conf.learners]) {
      const n = sim.node<RaftSimNode>(id);
      if (v.includes(id) && !n) return undefined;
      if (n && (n.raft.lead !== l.id || n.raft.term !== l.raft.term)) return undefined;
    }
    return l;
  };
  return { sim, monitor, decisions, leader, settled, ids };
}

function workload(sim: Simulator<Message>, ids: readonly string[], seed: number, from: number, to: number, every = 40): number {
  const rng = createRng(seed, "workload");
  let n = 0;
  for (let t = from; t < to; t += every) {
    const target = rng.pick(ids);
    const i = n++;
    sim.at(t, () => {
      try {
        sim.node<RaftSimNode>(target)?.propose({ type: "checkpoint", jobId: "job", tasks: [{ taskId: `t${i}`, digest: `d${i}` }], requestId: `r${i}` });
      } catch (e) {
        if (!/has not started/.test((e as Error).message)) throw e; // restarted at this very instant
      }
    });
  }
  return n;
}

describe("voter selection in the simulator", () => {
  const conf = { voters: ["n1", "n2", "n3"], learners: ["n4", "n5"] };

  for (const victimIsLeader of [false, true]) {
    it(`removes a crashed ${victimIsLeader ? "leader" : "follower"} voter after ${BOUND} ms and promotes the lowest-id learner; state survives`, () => {
      const seed = victimIsLeader ? 202 : 201;
      const ex = expectFor(seed);
      const c = cluster(seed, conf);
      c.sim.run({ until: 800 });
      const l = c.leader()!;
      ex(l, "a leader").toBeDefined();
      l.propose({ type: "createJob", jobId: "job", spec: { k: 1 } });
      c.sim.run({ until: 1000 });
      const before = workload(c.sim, c.ids, seed, 1000, 1480); // committed before the crash
      const victim = victimIsLeader ? l.id : conf.voters.find((v) => v !== l.id)!;
      c.sim.at(1500, () => c.sim.crash(victim));
      c.sim.run({ until: 8000, stopWhen: () => c.settled(3) !== undefined && !c.settled(3)!.raft.conf.voters.includes(victim), checkEvery: 5 });
      const s = c.settled(3);
      ex(s, `settled with 3 voters; decisions ${JSON.stringify(c.decisions)}`).toBeDefined();
      ex(s!.raft.conf).toEqual({ voters: [...conf.voters.filter((v) => v !== victim), "n4"].sort(), learners: ["n5"] });
      const remove = c.decisions.find((d) => d.rule === "remove-dead-voter")!;
      const promote = c.decisions.find((d) => d.rule === "promote")!;
      ex(remove).toMatchObject({ change: { type: "removeNode", node: victim }, successor: "n4" });
      ex(promote).toMatchObject({ change: { type: "addVoter", node: "n4" } });
      // Not before the bound (counted from its last answer, one heartbeat before the crash at
      // most); soon after it (plus an election when the leader died).
      ex(remove.at - 1500).toBeGreaterThanOrEqual(BOUND - 3 * TICK);
      ex(remove.at - 1500).toBeLessThan(BOUND + (victimIsLeader ? 600 : 100));
      ex(promote.at - remove.at).toBeLessThan(100);
      ex(c.decisions.length, JSON.stringify(c.decisions)).toBe(2);
      // The new configuration commits.
      s!.propose({ type: "checkpoint", jobId: "job", tasks: [{ taskId: "after", digest: "x" }] });
      c.sim.run({ until: c.sim.now + 300 });
      ex(c.monitor.violations).toEqual([]);
      for (const id of c.ids.filter((i) => i !== victim)) {
        const n = c.sim.node<RaftSimNode>(id)!;
        ex(n.state.jobs.get("job")?.completed, id).toBe(before + 1);
        ex(n.state.digest(), id).toBe(s!.state.digest());
      }
      console.log(JSON.stringify({ victim: victimIsLeader ? "leader" : "follower", promotedAfterMs: Math.round(promote.at - 1500), removedAfterMs: Math.round(remove.at - 1500) }));
    });
  }

  it("never promotes a learner without durable storage", () => {
    const seed = 203;
    const ex = expectFor(seed);
    const c = cluster(seed, conf, { durable: (id) => id !== "n4" });
    c.sim.run({ until: 800 });
    const victim = conf.voters.find((v) => v !== c.leader()!.id)!;
    c.sim.crash(victim);
    c.sim.run({ until: 4000 });
    ex(c.settled(3)?.raft.conf).toEqual({ voters: [...conf.voters.filter((v) => v !== victim), "n5"].sort(), learners: ["n4"] });
    // With only the in-memory learner left, the next dead voter is not replaced.
    const l = c.leader()!;
    const victim2 = l.raft.conf.voters.find((v) => v !== l.id)!;
    c.sim.crash(victim2);
    c.sim.run({ until: 7000 });
    ex(c.leader()?.raft.conf.voters).toContain(victim2);
    ex(c.decisions.filter((d) => d.change.node === "n4")).toEqual([]);
    ex(c.monitor.violations).toEqual([]);
  });

  it("grows a one-voter cluster to the target by promoting the lowest ids (--voters auto)", () => {
    const seed = 204;
    const ex = expectFor(seed);
    const c = cluster(seed, { voters: ["n1"], learners: ["n2", "n3", "n4", "n5"] }, { target: 3 });
    c.sim.run({ until: 3000, stopWhen: () => c.settled(3) !== undefined, checkEvery: 5 });
    ex(c.settled(3)?.raft.conf).toEqual({ voters: ["n1", "n2", "n3"], learners: ["n4", "n5"] });
    ex(c.decisions.map((d) => d.rule)).toEqual(["promote", "promote"]);
    c.sim.run({ until: c.sim.now + 2000 });
    ex(c.decisions.length).toBe(2); // and then it stays put
  });

  // Randomized: temporary faults first (crashes, partitions, a degraded network: some may
  // outlast the bound and cause replacements, which must stay safe), then permanent
  // deaths: one voter; a voter and a learner; or two voters one after the other. After the
  // last death plus the bound, three live voters must follow one leader.
  const single = process.env.VOTER_SEED !== undefined ? [Number(process.env.VOTER_SEED)] : undefined;
  const seeds = single ?? Array.from({ length: Number(process.env.VOTER_SCHEDULES ?? 100) }, (_, i) => 1000 + i);
  it(`${seeds.length} randomized schedules with permanent deaths: safe, and back to 3 live voters`, { timeout: 300_000 }, () => {
    const failures: string[] = [];
    const recovery: number[] = [];
    for (const seed of seeds) {
      const rng = createRng(seed, "deaths");
      const c = cluster(seed, conf, { lossy: true });
      const faultMs = 1500;
      const plan = randomFaultPlan(seed, { nodes: c.ids, durationMs: faultMs, startMs: 300, crashes: rng.int(4), partitions: rng.int(2), degradations: rng.int(2), restartDelayMs: [20, 400] });
      c.sim.schedule(plan);
      workload(c.sim, c.ids, seed, 0, faultMs + 4000, 60);
      const kind = seed % 3;
      const dead = new Set<string>();
      const t1 = faultMs + 200 + rng.range(0, 800);
      const t2 = kind === 2 ? t1 + 3 * BOUND : faultMs + rng.range(0, 3000);
      // Victims are chosen when they die, from the configuration of the leader of that moment.
      const kill = (role: "voter" | "learner") => {
        const l = c.leader();
        const conf = l?.raft.conf ?? { voters: c.ids, learners: [] };
        const pool = (role === "voter" ? conf.voters : conf.learners).filter((id) => !dead.has(id));
        if (pool.length === 0) return;
        const v = pool[Math.floor(rng.next() * pool.length)]!;
        dead.add(v);
        c.sim.crash(v);
      };
      c.sim.at(t1, () => kill("voter"));
      if (kind > 0) c.sim.at(t2, () => kill(kind === 1 ? "learner" : "voter"));
      const last = Math.max(t1, kind > 0 ? t2 : 0);
      const end = last + BOUND + 3000;
      let where = "";
      try {
        c.sim.run({ until: last + 1 });
        c.sim.run({ until: end, stopWhen: () => c.settled(3) !== undefined && c.settled(3)!.raft.conf.voters.every((v) => !dead.has(v)), checkEvery: 5 });
        const s = c.settled(3);
        if (!s || s.raft.conf.voters.some((v) => dead.has(v))) where = `not back to 3 live voters by ${end} (leader ${c.leader()?.id} conf ${JSON.stringify(c.leader()?.raft.conf)}, dead ${[...dead]})`;
        else recovery.push(c.sim.now - last);
        // Dead-voter decisions after the temporary faults name only permanently dead voters.
        for (const d of c.decisions) {
          if (d.rule === "remove-dead-voter" && d.at > faultMs + BOUND + 500 && !dead.has(d.change.node)) where += ` removed a live voter: ${JSON.stringify(d)}`;
        }
        const byIndex = new Map<number, string>();
        for (const id of c.ids) {
          const n = c.sim.node<RaftSimNode>(id);
          if (!n) continue;
          const prev = byIndex.get(n.state.appliedIndex);
          if (prev !== undefined && prev !== n.state.digest()) where += ` state machines differ at ${n.state.appliedIndex}`;
          byIndex.set(n.state.appliedIndex, n.state.digest());
        }
      } catch (e) {
        where += ` ${(e as Error).message}`;
      }
      if (c.monitor.violations.length > 0 || where) {
        failures.push(`seed=${seed} kind=${kind} (replay: VOTER_SEED=${seed} npx vitest run test/consensus/voter_policy.test.ts): ${where} ${c.monitor.violations.join("; ")} decisions=${JSON.stringify(c.decisions.map((d) => [Math.round(d.at), d.by, d.rule, d.change]))}`);
      }
    }
    recovery.sort((a, b) => a - b);
    console.log(JSON.stringify({ schedules: seeds.length, failures: failures.length, recoveryAfterLastDeathMs: { p50: recovery[recovery.length >> 1], max: recovery[recovery.length - 1] } }));
    expect(failures.slice(0, 5)).toEqual([]);
  });
});
