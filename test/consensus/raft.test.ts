// Unit tests of the Raft core, driven by hand through TestNet (deterministic: each test
// names its seed; rerun the test to replay it).
import { describe, it } from "vitest";
import { applyConfChange } from "../../src/consensus/raft.js";
import type { Message } from "../../src/consensus/types.js";
import { expectFor, TestNet, terms } from "./helpers.js";

const ABC = ["a", "b", "c"];

describe("leader election", () => {
  it("a campaign wins with pre-vote, bumps the term once, and commits a no-op", () => {
    const seed = 1;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    ex(net.raft("a").role).toBe("leader");
    ex(net.raft("a").term).toBe(2);
    for (const id of ["b", "c"]) {
      ex(net.raft(id).role, id).toBe("follower");
      ex(net.raft(id).lead, id).toBe("a");
      ex(net.raft(id).log.committed, id).toBe(2); // bootstrap config + the leader's no-op
    }
    ex(net.raft("a").vote).toBe("a");
    ex(net.get("b").storage.load().hardState).toEqual({ term: 2, vote: "a", commit: 2 });
  });

  it("randomized timeouts elect exactly one leader, within two election timeouts, for many seeds", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const ex = expectFor(seed);
      const net = new TestNet(seed, ["a", "b", "c", "d", "e"]);
      let ticks = 0;
      while (net.leaders().length === 0 && ticks < 100) {
        net.tickAll(1);
        ticks++;
      }
      ex(net.leaders().length, "leaders").toBe(1);
      ex(ticks, "ticks to elect").toBeLessThanOrEqual(2 * 10 + 2);
      const l = net.leaders()[0]!;
      for (const id of net.members.keys()) ex(net.raft(id).lead, id).toBe(l);
    }
  });

  it("split votes resolve (no pre-vote): candidates retry with new random timeouts", () => {
    const seed = 3;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC, { preVote: false });
    net.raft("a").campaign();
    net.raft("b").campaign(); // both candidates of term 2, each votes for itself
    net.raft("c").campaign();
    net.deliver();
    ex(net.leaders().length).toBe(0);
    let ticks = 0;
    while (net.leaders().length === 0 && ticks < 200) {
      net.tickAll(1);
      ticks++;
    }
    ex(net.leaders().length).toBe(1);
  });

  it("a node with a stale log cannot win (up-to-date check)", () => {
    const seed = 4;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC, { checkQuorum: false });
    net.campaign("a");
    net.isolate("c");
    net.propose("a", { type: "noop" });
    net.heal();
    net.campaign("c");
    ex(net.raft("c").role).not.toBe("leader");
    ex(net.raft("a").role).toBe("leader"); // pre-vote failed: nobody's term moved
    ex(net.raft("a").term).toBe(2);
  });
});

describe("pre-vote and check-quorum", () => {
  it("a partitioned node rejoining does not disrupt a stable leader (pre-vote keeps its term)", () => {
    const seed = 5;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("c");
    net.tickAll(100); // c times out again and again; its pre-votes go nowhere
    ex(net.raft("c").term).toBe(2);
    ex(net.raft("c").role).toBe("preCandidate");
    net.heal();
    net.tickAll(30);
    ex(net.raft("a").role).toBe("leader");
    ex(net.raft("a").term).toBe(2);
    ex(net.raft("c").lead).toBe("a");
  });

  it("without pre-vote the same rejoin disrupts the leader (the contrast)", () => {
    const seed = 5;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC, { preVote: false, checkQuorum: false });
    net.campaign("a");
    net.isolate("c");
    net.tickAll(100);
    ex(net.raft("c").term).toBeGreaterThan(2);
    net.heal();
    net.tickAll(30);
    ex(net.raft("a").term).toBeGreaterThan(2); // a was deposed by c's higher term
  });

  it("with check-quorum, followers in a leader lease ignore a disruptive campaign", () => {
    const seed = 6;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC, { preVote: false, checkQuorum: true });
    net.campaign("a");
    net.raft("c").campaign(); // term 3 vote requests
    net.deliver();
    ex(net.raft("b").term).toBe(2); // b heard a within the election timeout: ignored c
    ex(net.raft("a").role).toBe("leader");
  });

  it("a leader that cannot reach a quorum steps down after an election timeout", () => {
    const seed = 7;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("a");
    net.tick("a", 10); // the first check still counts the acks of its election round
    ex(net.raft("a").role).toBe("leader");
    net.tick("a", 10);
    ex(net.raft("a").role).toBe("follower");
    ex(net.raft("a").lead).toBe(null);
    net.tickAll(60);
    const l = net.leaders();
    ex(l.length).toBe(1);
    ex(l[0]).not.toBe("a");
  });
});

describe("log replication", () => {
  it("replicates and commits proposals; followers forward proposals to the leader", () => {
    const seed = 8;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.propose("a", { type: "setTopology", name: "hyparview", options: {} });
    const fwd = net.raft("b").propose({ type: "setTopology", name: "static", options: { peers: 3 } });
    ex(fwd.ok && fwd.value.forwardedTo).toBe("a");
    net.deliver();
    for (const id of ABC) {
      ex(net.raft(id).log.committed, id).toBe(4);
      ex(net.get(id).state.topology?.name, id).toBe("static");
    }
  });

  it("resolves a divergent follower log with few round trips (fast backtracking by term)", () => {
    const seed = 9;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC, { maxEntriesPerMsg: 100 });
    net.campaign("a");
    net.isolate("a");
    for (let i = 0; i < 50; i++) net.raft("a").propose({ type: "noop", requestId: `stale${i}` }); // term 2, never committed
    net.dropQueued();
    net.tickAll(40); // b or c wins term 3
    const l = net.leaders().find((x) => x !== "a")!;
    ex(l).toBeDefined();
    for (let i = 0; i < 5; i++) net.propose(l, { type: "noop", requestId: `new${i}` });
    let rejects = 0;
    net.filter = (m: Message) => {
      if (m.type === "appResp" && m.reject && m.from === "a") rejects++;
      return true;
    };
    net.heal();
    net.tickAll(5);
    ex(rejects, "rejections before the logs matched").toBeLessThanOrEqual(2);
    const want = net.raft(l).log.entries;
    ex(terms(net.raft("a").log.entries)).toEqual(terms(want));
    ex(net.raft("a").log.lastIndex()).toBe(net.raft(l).log.lastIndex());
    ex(net.get("a").applied.some((e) => JSON.stringify(e.data).includes("stale"))).toBe(false);
  });

  it("Figure 8: an entry of an earlier term is not committed by counting replicas", () => {
    const seed = 10;
    const ex = expectFor(seed);
    const ids = ["s1", "s2", "s3", "s4", "s5"];
    const net = new TestNet(seed, ids, { preVote: false, checkQuorum: false, maxEntriesPerMsg: 1 });
    // (a) s1 leads term 2; X (term 2) reaches only s2.
    net.campaign("s1");
    for (const o of ["s3", "s4", "s5"]) net.cutLink("s1", o);
    net.propose("s1", { type: "noop", requestId: "X" });
    const xIndex = net.raft("s1").log.lastIndex();
    ex(net.raft("s2").log.term(xIndex)).toBe(2);
    // (b) s1 is cut off; s5 wins term 3 with s3, s4 and appends Y at the same index, shared with nobody.
    net.heal();
    net.isolate("s1");
    net.filter = (m) => !(m.from === "s5" && m.type === "app");
    net.campaign("s5");
    ex(net.raft("s5").role).toBe("leader");
    ex(net.raft("s5").term).toBe(3);
    ex(net.raft("s5").log.term(xIndex)).toBe(3);
    // (c) s5 is cut off; s1 restarts, wins term 4 and re-replicates X (one entry per
    // message). Stop the moment s1 has processed s3's ack of X: X is on a majority
    // (s1, s2, s3), but s1's own term-4 entry is not.
    net.heal();
    net.filter = () => true;
    net.isolate("s5");
    net.restart("s1");
    net.campaign("s1"); // term 3: s3 and s4 already voted for s5
    net.raft("s1").campaign(); // term 4
    const s1 = () => net.raft("s1");
    let stopped = false;
    for (let i = 0; i < 1000 && !stopped; i++) {
      if (net.deliverOne() === undefined) break;
      const withZ = ids.filter((id) => net.raft(id).log.term(xIndex + 1) === 4).length;
      if (s1().log.committed >= xIndex) ex(withZ, "s1 committed X before a term-4 entry reached a majority").toBeGreaterThanOrEqual(3);
      const m3 = s1().status().progress?.["s3"]?.match ?? 0;
      if (s1().role === "leader" && m3 >= xIndex && withZ < 3) stopped = true;
    }
    ex(stopped, "reached the Figure 8 moment").toBe(true);
    ex(s1().term).toBe(4);
    ex(ids.filter((id) => net.raft(id).log.term(xIndex) === 2).length, "X on a majority").toBeGreaterThanOrEqual(3);
    ex(s1().log.committed, "X must not count as committed").toBeLessThan(xIndex);
    // (d) Why it matters: s1 crashes now; s5 (last term 3) wins term 5 with s3 and s4,
    // and overwrites X. Nobody ever applied it, so nothing committed was lost.
    net.dropQueued();
    net.heal();
    net.isolate("s1");
    net.restart("s5"); // (still leader of term 3 in its own view)
    net.campaign("s5"); // term 4: everyone already voted for s1
    net.campaign("s5"); // term 5
    ex(net.raft("s5").role).toBe("leader");
    ex(net.raft("s5").term).toBe(5);
    net.propose("s5", { type: "noop", requestId: "after" });
    for (const id of ["s2", "s3", "s4", "s5"]) {
      ex(net.raft(id).log.term(xIndex), id).toBe(3);
      ex(net.get(id).applied.some((e) => (e.data as { requestId?: string } | null)?.requestId === "X"), id).toBe(false);
    }
  });

  it("commits earlier-term entries once an entry of the current term commits on top of them", () => {
    const seed = 11;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("a");
    net.raft("a").propose({ type: "noop", requestId: "old" }); // term 2, only on a
    net.deliver();
    const idx = net.raft("a").log.lastIndex();
    net.tick("a", 20); // check-quorum: a steps down
    ex(net.raft("a").role).toBe("follower");
    net.isolate("c");
    net.tick("b", 10); // b's leader lease runs out (a pre-vote it may start goes nowhere)
    net.dropQueued();
    net.heal();
    net.isolate("c");
    net.campaign("a"); // b votes for a: a's log is longer
    ex(net.raft("a").role).toBe("leader");
    ex(net.raft("a").term).toBe(3);
    ex(net.raft("a").log.term(idx)).toBe(2);
    ex(net.raft("a").log.committed).toBe(idx + 1); // the term-3 no-op carries "old" with it
    ex(net.get("b").applied.some((e) => (e.data as { requestId?: string } | null)?.requestId === "old")).toBe(true);
  });
});

describe("snapshots and compaction", () => {
  it("a lagging follower catches up through InstallSnapshot", () => {
    const seed = 12;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("c");
    for (let i = 0; i < 20; i++) net.propose("a", { type: "createJob", jobId: `j${i}`, spec: { i } });
    for (const id of ["a", "b"]) {
      const r = net.raft(id);
      const s = r.compact(r.log.applied, net.get(id).state.snapshot());
      ex(s.ok, id).toBe(true);
      net.drain(id);
      ex(net.get(id).storage.load().entries.length, `${id} stored entries after compaction`).toBe(0);
    }
    ex(net.raft("a").log.snapIndex).toBe(22);
    net.heal();
    net.tickAll(5);
    const c = net.get("c");
    ex(c.raft.log.snapIndex).toBe(22);
    ex(c.raft.log.committed).toBe(22);
    ex(c.state.digest()).toBe(net.get("a").state.digest());
    ex(c.state.jobs.size).toBe(20);
    ex(c.storage.load().snapshot?.index).toBe(22);
    // It keeps replicating normally afterwards.
    net.propose("a", { type: "setTopology", name: "static", options: {} });
    ex(c.state.topology?.name).toBe("static");
    // A restart rebuilds memory from the snapshot plus the entries after it.
    const c2 = net.restart("c");
    net.tickAll(3);
    ex(c2.state.digest()).toBe(net.get("a").state.digest());
  });

  it("compaction is refused past the applied index", () => {
    const seed = 13;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    const r = net.raft("a").compact(99, {});
    ex(r.ok).toBe(false);
    ex(!r.ok && r.error.code).toBe("NOT_APPLIED");
  });
});

describe("membership", () => {
  it("adds a learner that follows the log and knows the leader but never campaigns, then promotes it", () => {
    const seed = 14;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.propose("a", { type: "setTopology", name: "hyparview", options: {} });
    net.add("d");
    const r = net.raft("a").proposeConfChange({ type: "addLearner", node: "d" });
    ex(r.ok).toBe(true);
    net.deliver();
    net.tickAll(3);
    const d = net.get("d");
    ex(d.raft.lead).toBe("a");
    ex(d.raft.conf).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    ex(d.state.topology?.name).toBe("hyparview");
    ex(d.state.members.learners).toEqual(["d"]);
    // A learner never campaigns, even without a leader.
    net.isolate("d");
    net.tick("d", 100);
    ex(d.raft.role).toBe("follower");
    net.heal();
    // Promote: now 4 voters, quorum 3.
    ex(net.raft("a").proposeConfChange({ type: "addVoter", node: "d" }).ok).toBe(true);
    net.deliver();
    ex(net.raft("a").conf.voters).toEqual(["a", "b", "c", "d"]);
    net.isolate("b");
    net.isolate("c");
    net.raft("a").propose({ type: "noop", requestId: "needs-3" });
    net.deliver();
    const idx = net.raft("a").log.lastIndex();
    ex(net.raft("a").log.committed, "a + d are not a quorum of 4").toBeLessThan(idx);
    net.heal();
    net.tickAll(2);
    ex(net.raft("a").log.committed).toBe(idx);
  });

  it("one change at a time; invalid changes are refused with error values", () => {
    const seed = 15;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    const a = net.raft("a");
    ex(a.proposeConfChange({ type: "addLearner", node: "d" }).ok).toBe(true);
    const second = a.proposeConfChange({ type: "addLearner", node: "e" });
    ex(!second.ok && second.error.code).toBe("CONF_CHANGE_PENDING");
    net.deliver();
    const dup = a.proposeConfChange({ type: "addVoter", node: "b" });
    ex(!dup.ok && dup.error.code).toBe("INVALID_CONF_CHANGE");
    const onFollower = net.raft("b").proposeConfChange({ type: "removeNode", node: "c" });
    ex(!onFollower.ok && onFollower.error.code).toBe("NOT_LEADER");
    ex(!onFollower.ok && onFollower.error.leader).toBe("a");
    ex(applyConfChange({ voters: ["a"], learners: [] }, { type: "removeNode", node: "a" })).toBe("cannot remove the last voter");
  });

  it("a new leader may not change membership before committing an entry of its term", () => {
    const seed = 16;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.filter = (m) => m.type !== "appResp"; // the no-op's acks are lost
    net.campaign("a");
    const a = net.raft("a");
    ex(a.role).toBe("leader");
    ex(a.log.committed).toBe(1);
    const early = a.proposeConfChange({ type: "addLearner", node: "d" });
    ex(!early.ok && early.error.code).toBe("CONF_CHANGE_PENDING");
    net.filter = () => true;
    net.tickAll(2);
    ex(a.log.committed).toBe(2);
    ex(a.proposeConfChange({ type: "addLearner", node: "d" }).ok).toBe(true);
  });

  it("removing the leader hands leadership to a remaining voter", () => {
    const seed = 17;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    ex(net.raft("a").proposeConfChange({ type: "removeNode", node: "a" }).ok).toBe(true);
    net.deliver();
    net.tickAll(3);
    const l = net.leaders();
    ex(l.length).toBe(1);
    ex(["b", "c"]).toContain(l[0]);
    ex(net.raft(l[0]!).conf.voters).toEqual(["b", "c"]);
    ex(net.raft("a").role).toBe("follower");
    ex(net.raft("a").isVoter()).toBe(false);
    // The shrunken cluster keeps committing.
    net.propose(l[0]!, { type: "noop", requestId: "after-removal" });
    ex(net.raft("b").log.committed).toBe(net.raft(l[0]!).log.lastIndex());
  });
});

describe("learners that lose their log; member silence", () => {
  it("a learner restarted with empty storage is stuck until the leader relearns it, then catches up (compacted log: snapshot)", () => {
    for (const compact of [false, true]) {
      const seed = 18;
      const ex = expectFor(seed, compact ? "compacted" : "full log");
      const net = new TestNet(seed, [...ABC, "d"], {}, { voters: ABC, learners: ["d"] });
      net.campaign("a");
      for (let i = 0; i < 5; i++) net.propose("a", { type: "createJob", jobId: `j${i}`, spec: {} });
      net.tickAll(2);
      const a = net.raft("a");
      if (compact) ex(a.compact(a.log.applied, net.get("a").state.snapshot()).ok).toBe(true);
      ex(net.get("d").state.jobs.size).toBe(5);
      // d loses everything (in-memory storage, restarted with the same id).
      net.members.delete("d");
      net.queue = net.queue.filter((m) => m.to !== "d" && m.from !== "d");
      const d = net.add("d");
      net.tickAll(5);
      ex(d.raft.log.lastIndex(), "the leader thinks d has everything: nothing is resent").toBe(0);
      ex(a.status().progress!.d!.match).toBeGreaterThan(0);
      // Voters are refused (a voter that forgets acknowledged entries cannot be repaired).
      const v = a.relearn("b");
      ex(!v.ok && v.error.code).toBe("INVALID_ARGUMENT");
      ex(!net.raft("b").relearn("d").ok).toBe(true); // leader only
      const r = a.relearn("d");
      ex(r.ok && r.value.match).toBe(a.log.lastIndex());
      net.deliver();
      net.tickAll(3);
      ex(d.state.jobs.size).toBe(5);
      ex(d.raft.lead).toBe("a");
      ex(d.raft.log.committed).toBe(a.log.committed);
    }
  });

  it("the leader reports each member's silence in ticks, counted from its election", () => {
    const seed = 19;
    const ex = expectFor(seed);
    const net = new TestNet(seed, [...ABC, "d"], {}, { voters: ABC, learners: ["d"] });
    net.campaign("a");
    const a = net.raft("a");
    ex(a.status().progress!.b!.idle).toBe(0);
    ex(a.status().confIndex).toBe(1);
    net.isolate("c");
    net.tickAll(7);
    const p = a.status().progress!;
    ex(p.a!.idle).toBe(0);
    ex(p.b!.idle).toBeLessThanOrEqual(1);
    ex(p.d!.idle).toBeLessThanOrEqual(1);
    ex(p.c!.idle).toBe(7);
    net.heal();
    net.tickAll(1);
    ex(a.status().progress!.c!.idle).toBeLessThanOrEqual(1);
    // A member added later starts with a clean record.
    ex(a.proposeConfChange({ type: "addLearner", node: "e" }).ok).toBe(true);
    ex(a.status().progress!.e!.idle).toBe(0);
    ex(a.status().confIndex).toBe(a.log.lastIndex());
  });
});

describe("leadership transfer", () => {
  it("transfers to an up-to-date voter at once, and blocks proposals meanwhile", () => {
    const seed = 18;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    ex(net.raft("a").transferLeadership("b").ok).toBe(true);
    const p = net.raft("a").propose({ type: "noop" });
    ex(!p.ok && p.error.code).toBe("TRANSFER_IN_PROGRESS");
    net.deliver();
    ex(net.raft("b").role).toBe("leader");
    ex(net.raft("b").term).toBe(3);
    ex(net.raft("a").lead).toBe("b");
  });

  it("catches a lagging target up first; a follower's request is forwarded", () => {
    const seed = 19;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("c");
    for (let i = 0; i < 5; i++) net.propose("a", { type: "noop", requestId: `x${i}` });
    net.heal();
    ex(net.raft("b").transferLeadership("c").ok).toBe(true); // forwarded to a
    net.deliver();
    ex(net.raft("c").role).toBe("leader");
    ex(net.raft("c").log.lastIndex()).toBeGreaterThanOrEqual(7);
  });

  it("an unfinished transfer is abandoned after an election timeout", () => {
    const seed = 20;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("c");
    net.raft("a").transferLeadership("c");
    net.deliver();
    ex(net.raft("a").leadTransferee).toBe("c");
    net.tick("a", 10);
    ex(net.raft("a").leadTransferee).toBe(null);
  });
});

describe("read index", () => {
  it("serves linearizable reads after a heartbeat round confirms leadership", () => {
    const seed = 21;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.propose("a", { type: "noop" });
    ex(net.raft("a").readIndex("r1").ok).toBe(true);
    net.drain("a");
    ex(net.get("a").readStates).toEqual([]); // not before the quorum answers
    net.deliver();
    ex(net.get("a").readStates).toEqual([{ index: 3, context: "r1" }]);
    ex(net.raft("b").readIndex("r2").ok).toBe(true);
    net.deliver();
    ex(net.get("b").readStates).toEqual([{ index: 3, context: "r2" }]);
  });

  it("a deposed leader cut off from the quorum cannot serve a read", () => {
    const seed = 22;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    net.isolate("a");
    for (let i = 0; i < 60 && !net.leaders().some((x) => x !== "a"); i++) {
      net.raft("b").tick();
      net.raft("c").tick();
      net.deliver();
    }
    ex(net.leaders().some((x) => x !== "a")).toBe(true);
    ex(net.leaders()).toContain("a"); // still believes it leads (it has not ticked)
    net.raft("a").readIndex("stale");
    net.deliver();
    ex(net.get("a").readStates).toEqual([]);
  });
});

describe("durability", () => {
  it("term, vote and log survive a restart; state is rebuilt from the log", () => {
    const seed = 23;
    const ex = expectFor(seed);
    const net = new TestNet(seed, ABC);
    net.campaign("a");
    for (let i = 0; i < 3; i++) net.propose("a", { type: "createJob", jobId: `j${i}`, spec: {} });
    const before = net.raft("b");
    const b = net.restart("b");
    ex(b.raft.term).toBe(before.term);
    ex(b.raft.vote).toBe("a");
    ex(b.raft.log.lastIndex()).toBe(before.log.lastIndex());
    net.drain("b");
    ex(b.state.jobs.size).toBe(3); // committed entries re-applied from the persisted log
    for (const id of ABC) net.restart(id);
    net.tickAll(40);
    ex(net.leaders().length).toBe(1);
    for (const id of ABC) ex(net.get(id).state.jobs.size, id).toBe(3);
  });
});
