// Raft on real peers (three in this process, real libp2p connections on 127.0.0.1):
// election, a forwarded proposal applied everywhere, leader loss, restart from disk.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { multiaddr } from "@multiformats/multiaddr";
import { Peer } from "../../src/cluster/peer.js";
import { loadOrCreateIdentity, newClusterKey } from "../../src/cluster/keys.js";
import { RaftDriver } from "../../src/cluster/raft_driver.js";
import { eventually } from "./helpers.js";

const key = newClusterKey();
const dir = mkdtempSync(join(tmpdir(), "dspex-raft-peers-"));
const running: { peer: Peer; raft: RaftDriver }[] = [];
const pick = (s: { role: string; term: number; lead: string | null; commit: number }) => ({ role: s.role, term: s.term, lead: s.lead?.slice(-6), commit: s.commit });

async function startMember(i: number, voters: string[] | undefined, bootstrap?: string) {
  const identity = await loadOrCreateIdentity(join(dir, `id${i}.key`));
  const peer = await Peer.start({ clusterKey: key, identity, bootstrap: bootstrap ? [bootstrap] : [], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  return { peer, identity };
}

afterAll(async () => {
  for (const m of running) {
    m.raft.stop();
    await m.peer.stop();
  }
});

describe("Raft over the coordination channel", () => {
  it("elects one leader, applies a forwarded command everywhere, survives losing the leader", { timeout: 60_000 }, async () => {
    // Peer ids first (identities are files), then start everyone with the same voter list.
    const ids = await Promise.all([0, 1, 2].map(async (i) => (await loadOrCreateIdentity(join(dir, `id${i}.key`))).publicKey));
    const { peerIdFromPublicKey } = await import("@libp2p/peer-id");
    const voters = ids.map((k) => peerIdFromPublicKey(k).toString());
    const first = await startMember(0, voters);
    const members = [first, ...(await Promise.all([1, 2].map((i) => startMember(i, voters, first.peer.multiaddrs()[0]))))];
    // Everyone connected to everyone first (member exchange), so losing the bootstrap peer
    // cannot split the other two.
    await eventually(async () => ((await Promise.all(members.map((m) => m.peer.members()))).every((l) => l.length === 2) ? true : undefined), 20_000, "full mesh of three");
    for (const [i, m] of members.entries()) running.push({ peer: m.peer, raft: new RaftDriver(m.peer, { dir: join(dir, `raft${i}`), voters, tickMs: 20 }) });

    const leaderOf = () => {
      const leads = running.map((r) => r.raft.status().lead);
      return leads.every((l) => l && l === leads[0]) ? leads[0]! : undefined;
    };
    const leader = await eventually(async () => leaderOf(), 20_000, "a leader all three agree on");
    const leaders = running.filter((r) => r.raft.status().role === "leader");
    expect(leaders).toHaveLength(1);
    expect(leaders[0].peer.id).toBe(leader);
    const st = await running[1].peer.status();
    expect(st.leader).toBe(leader);
    expect(st.term).toBeGreaterThanOrEqual(1);

    const follower = running.find((r) => r.peer.id !== leader)!;
    expect(follower.raft.propose({ type: "setTopology", name: "hyparview", options: { expectedSize: 3 } })).toEqual({ ok: true });
    await eventually(async () => (running.every((r) => r.raft.state.topology?.name === "hyparview") ? true : undefined), 10_000, "the command applied on every peer");

    // Lose the leader: the other two elect a new one and keep the committed state.
    const old = running.find((r) => r.peer.id === leader)!;
    running.splice(running.indexOf(old), 1);
    old.raft.stop();
    await old.peer.stop();
    const t0 = performance.now();
    const next = await eventually(async () => {
      const l = leaderOf();
      return l && l !== leader ? l : undefined;
    }, 30_000, `a new leader (statuses when the leader stopped: ${JSON.stringify(running.map((r) => ({ id: r.peer.id.slice(-6), ...pick(r.raft.status()) })))})`);
    const electedMs = performance.now() - t0;
    expect(next).not.toBe(leader);
    expect(electedMs).toBeLessThan(10_000);
    expect(running.every((r) => r.raft.state.topology?.name === "hyparview")).toBe(true);
    // The remaining pair still commits.
    expect(running[0].raft.propose({ type: "setTopology", name: "full-mesh", options: {} })).toEqual({ ok: true });
    await eventually(async () => (running.every((r) => r.raft.state.topology?.name === "full-mesh") ? true : undefined), 10_000, "commit with two of three");

    // Restart the old leader from its disk state: it catches up.
    const idx = voters.indexOf(leader);
    const back = await startMember(idx, voters, running[0].peer.multiaddrs()[0]);
    const raft = new RaftDriver(back.peer, { dir: join(dir, `raft${idx}`), voters, tickMs: 20 });
    running.push({ peer: back.peer, raft });
    await eventually(async () => (raft.state.topology?.name === "full-mesh" ? true : undefined), 15_000, "the restarted peer catching up");
    expect(raft.status().term).toBeGreaterThan(1);
  });
});

describe("learners, forwarded proposals and automatic voter selection (in-process)", () => {
  it("non-voters join as learners, proposals through a learner commit, a dead voter is replaced by the durable learner and comes back as a learner, an in-memory learner restarts and catches up", { timeout: 60_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), "dspex-raft-learners-"));
    const keys = await Promise.all([0, 1, 2, 3, 4].map((i) => loadOrCreateIdentity(join(base, `id${i}.key`))));
    const { peerIdFromPublicKey } = await import("@libp2p/peer-id");
    const ids = keys.map((k) => peerIdFromPublicKey(k.publicKey).toString());
    const voters = ids.slice(0, 3);
    const group: { peer: Peer; raft: RaftDriver }[] = [];
    const start = async (i: number, boot?: string) => {
      const peer = await Peer.start({ clusterKey: key, identity: keys[i], bootstrap: boot ? [boot] : [], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
      // Peer 4 is a learner without a data directory (state in memory).
      const raft = new RaftDriver(peer, { dir: i === 4 ? undefined : join(base, `raft${i}`), voters, tickMs: 20, deadVoterMs: 2000 });
      const m = { peer, raft };
      group[i] = m;
      running.push(m);
      return m;
    };
    const first = await start(0);
    await Promise.all([1, 2, 3, 4].map((i) => start(i, first.peer.multiaddrs()[0])));
    const view = () => group.filter(Boolean).map((m) => ({ id: m.peer.id.slice(-6), ...pick(m.raft.status()), role: m.raft.role() }));
    const agreed = (members: { raft: RaftDriver }[]) => {
      const leads = members.map((m) => m.raft.status().lead);
      return leads.every((l) => l && l === leads[0]) ? leads[0]! : undefined;
    };
    const leader = await eventually(async () => {
      const l = agreed(group);
      return l && group[3].raft.role() === "learner" && group[4].raft.role() === "learner" ? l : undefined;
    }, 20_000, `five agree on a leader, two learners (${JSON.stringify(view())})`);
    const lm = group.find((m) => m.peer.id === leader)!;
    expect(lm.raft.status().conf).toEqual({ voters: [...voters].sort(), learners: [ids[3], ids[4]].sort() });
    expect((await group[4].peer.status()).leader).toBe(leader);
    expect((await group[4].peer.status()).role).toBe("learner");

    // A proposal through the in-memory learner: forwarded, answered after commit.
    const sub = await group[4].raft.submit({ type: "setTopology", name: "hyparview", options: {} });
    expect(sub).toMatchObject({ committed: true, leader, result: { ok: true, type: "setTopology" } });
    expect(lm.raft.state.topology?.name).toBe("hyparview"); // applied on the leader when answered
    await eventually(async () => (group.every((m) => m.raft.state.topology?.name === "hyparview") ? true : undefined), 5_000, "applied everywhere");
    // Invalid commands are refused early; the state machine's rejections come back as results.
    await expect(group[3].raft.submit("junk")).rejects.toMatchObject({ code: "bad_request" });
    expect((await group[3].raft.submit({ type: "setJobStatus", jobId: "nope", status: "done" })).result).toMatchObject({ ok: false, code: "REJECTED" });

    // Kill a voter that is not the leader: after 2 s the leader removes it and promotes the
    // durable learner (peer 3), never the in-memory one (peer 4).
    const vi = voters.findIndex((v) => v !== leader);
    const victim = group[vi];
    running.splice(running.indexOf(victim), 1);
    victim.raft.stop();
    await victim.peer.stop();
    const t0 = performance.now();
    const rest = group.filter((m) => m !== victim);
    await eventually(async () => {
      const c = lm.raft.status().conf;
      return c.voters.length === 3 && !c.voters.includes(victim.peer.id) && c.voters.includes(ids[3]) && lm.raft.status().commit >= lm.raft.status().confIndex ? true : undefined;
    }, 10_000, `the dead voter replaced (${JSON.stringify(lm.raft.describe())})`);
    const replacedMs = performance.now() - t0;
    expect(replacedMs).toBeGreaterThan(1500);
    expect(lm.raft.voterChanges.map((c) => [c.rule, c.change])).toEqual([
      ["remove-dead-voter", { type: "removeNode", node: victim.peer.id }],
      ["promote", { type: "addVoter", node: ids[3] }],
    ]);
    await eventually(async () => (group[3].raft.role() === "follower" && agreed(rest) === leader ? true : undefined), 5_000, "the promoted learner knows it is a voter");
    const again = await group[4].raft.submit({ type: "setTopology", name: "full-mesh", options: {} });
    expect(again.committed).toBe(true);

    // The removed voter restarts from its data directory, still believing it is a voter (it
    // was down when it was removed): it says hello, and comes back as a learner.
    const revived = await start(vi, lm.peer.multiaddrs()[0]);
    await eventually(async () => (revived.raft.role() === "learner" && revived.raft.status().lead === leader && revived.raft.state.topology?.name === "full-mesh" ? true : undefined), 15_000, `the removed voter back as a learner (${JSON.stringify(view())})`);
    expect(lm.raft.status().conf.voters).not.toContain(victim.peer.id);

    // The in-memory learner restarts with the same identity and an empty log: it rejoins and
    // the leader replicates to it from the start.
    const old = group[4];
    running.splice(running.indexOf(old), 1);
    old.raft.stop();
    await old.peer.stop();
    const back = await start(4, lm.peer.multiaddrs()[0]);
    await eventually(async () => (back.raft.state.topology?.name === "full-mesh" && back.raft.role() === "learner" && back.raft.status().lead === leader ? true : undefined), 15_000, `the restarted in-memory learner caught up (${JSON.stringify(view())})`);
    console.log(JSON.stringify({ deadVoterMs: 2000, replacedAfterMs: Math.round(replacedMs) }));
  });

  it("--voters auto: the founder grows the voter set to the target from the peers that join", { timeout: 60_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), "dspex-raft-auto-"));
    const members: { peer: Peer; raft: RaftDriver }[] = [];
    for (let i = 0; i < 4; i++) {
      const identity = await loadOrCreateIdentity(join(base, `id${i}.key`));
      const peer = await Peer.start({ clusterKey: key, identity, bootstrap: i === 0 ? [] : [members[0].peer.multiaddrs()[0]], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
      const raft = new RaftDriver(peer, { dir: join(base, `raft${i}`), voters: i === 0 ? [peer.id] : [], targetVoters: 3, tickMs: 20 });
      members.push({ peer, raft });
      running.push({ peer, raft });
    }
    const founder = members[0];
    const conf = await eventually(async () => {
      const c = founder.raft.status().conf;
      return c.voters.length === 3 && c.learners.length === 1 && members.every((m) => m.raft.status().lead === founder.peer.id) ? c : undefined;
    }, 20_000, `three voters and a learner (${JSON.stringify(founder.raft.describe())})`);
    expect(conf.voters).toContain(founder.peer.id);
    expect(founder.raft.voterChanges.every((c) => c.rule === "promote")).toBe(true);
    expect(founder.raft.voterChanges).toHaveLength(2);
  });
});

describe("a learner the leader has never met (sparse overlay)", () => {
  it("joins through a follower, and the leader reaches it with the addresses the join carried", { timeout: 60_000 }, async () => {
    const base = mkdtempSync(join(tmpdir(), "dspex-raft-sparse-"));
    const keys = await Promise.all([0, 1, 2, 3].map((i) => loadOrCreateIdentity(join(base, `id${i}.key`))));
    const { peerIdFromPublicKey } = await import("@libp2p/peer-id");
    const ids = keys.map((k) => peerIdFromPublicKey(k.publicKey).toString());
    const voters = ids.slice(0, 3);
    // Static overlays: voters keep each other; the learner keeps only the voter it joins through.
    const start = async (i: number, peers: string[], boot: string[] = []) => {
      const peer = await Peer.start({ clusterKey: key, identity: keys[i], bootstrap: boot, topology: { name: "static", options: { peers } }, telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
      const raft = new RaftDriver(peer, { dir: i === 3 ? undefined : join(base, `raft${i}`), voters, tickMs: 20 });
      running.push({ peer, raft });
      return { peer, raft };
    };
    const v0 = await start(0, voters.filter((x) => x !== ids[0]));
    // Each voter is given the addresses of those started before it: they all connect.
    const v1 = await start(1, voters.filter((x) => x !== ids[1]), [v0.peer.multiaddrs()[0]]);
    const v2 = await start(2, voters.filter((x) => x !== ids[2]), [v0.peer.multiaddrs()[0], v1.peer.multiaddrs()[0]]);
    const vs = [v0, v1, v2];
    const leader = await eventually(async () => {
      const l = vs.find((m) => m.raft.isLeader());
      return l && vs.every((m) => m.raft.status().lead === l.peer.id) ? l : undefined;
    }, 20_000, "a leader among the three voters");
    const via = vs.find((m) => m !== leader)!;
    const learner = await start(3, [via.peer.id], [via.peer.multiaddrs()[0]]);
    expect(leader.peer.node.getConnections().some((c) => c.remotePeer.toString() === ids[3])).toBe(false);
    await eventually(async () => (leader.raft.state.members.learners.includes(ids[3]) ? true : undefined), 20_000, "the learner admitted");
    expect(leader.raft.propose({ type: "setTopology", name: "static", options: { peers: [] } })).toEqual({ ok: true });
    await eventually(async () => (learner.raft.state.topology?.name === "static" ? true : undefined), 20_000, "the learner receiving the log from the leader");
  });
});
