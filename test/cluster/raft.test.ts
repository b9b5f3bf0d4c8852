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
