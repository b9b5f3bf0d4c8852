// Log compaction on real peers (three in this process, real libp2p connections): the
// driver snapshots the cluster state every `compactEvery` applied entries, the WAL is
// rewritten around the snapshot, a follower that was down while the log was compacted
// catches up from the leader's snapshot (over 1 MiB: it travels on the inference channel),
// and a peer restarted from its own disk gets the same state back.
import { mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { peerIdFromPublicKey } from "@libp2p/peer-id";
import { Peer } from "../../src/cluster/peer.js";
import { loadOrCreateIdentity, newClusterKey } from "../../src/cluster/keys.js";
import { RaftDriver } from "../../src/cluster/raft_driver.js";
import { eventually } from "./helpers.js";

const key = newClusterKey();
const dir = mkdtempSync(join(tmpdir(), "dspex-raft-compaction-"));
const running = new Map<number, { peer: Peer; raft: RaftDriver }>();
const COMPACT_EVERY = 25;

async function start(i: number, voters: string[], boot?: string) {
  const identity = await loadOrCreateIdentity(join(dir, `id${i}.key`));
  const peer = await Peer.start({ clusterKey: key, identity, bootstrap: boot ? [boot] : [], telemetryIntervalMs: 60_000, probeIntervalMs: 60_000 });
  const raft = new RaftDriver(peer, { dir: join(dir, `raft${i}`), voters, tickMs: 20, compactEvery: COMPACT_EVERY });
  running.set(i, { peer, raft });
  return { peer, raft };
}

async function stop(i: number) {
  const m = running.get(i)!;
  running.delete(i);
  m.raft.stop();
  await m.peer.stop();
}

afterAll(async () => {
  for (const i of [...running.keys()]) await stop(i);
});

describe("Raft log compaction on real peers", () => {
  it("compacts every N entries; a follower down meanwhile catches up from the snapshot; a restart from disk restores the same state", { timeout: 90_000 }, async () => {
    const keys = await Promise.all([0, 1, 2].map((i) => loadOrCreateIdentity(join(dir, `id${i}.key`))));
    const voters = keys.map((k) => peerIdFromPublicKey(k.publicKey).toString());
    const first = await start(0, voters);
    await Promise.all([1, 2].map((i) => start(i, voters, first.peer.multiaddrs()[0])));
    const leaderIndex = async () =>
      eventually(async () => {
        const all = [...running.entries()];
        const l = all.find(([, m]) => m.raft.isLeader());
        return l && all.every(([, m]) => m.raft.status().lead === l[1].peer.id) ? l[0] : undefined;
      }, 20_000, "a leader everyone agrees on");
    const li = await leaderIndex();
    const down = [0, 1, 2].find((i) => i !== li)!;
    await stop(down);

    // 120 commands, each committed before the next: 60 jobs with 24 KB specs (so the state,
    // and the snapshot a lagging follower needs, outgrow a 1 MiB coordination frame) and a
    // rising budget.
    const leader = running.get(li)!;
    for (let n = 1; n <= 120; n++) {
      const cmd = n % 2 ? { type: "createJob", jobId: `job${n}`, spec: { blob: "x".repeat(24_000) } } : { type: "setLmLimit", provider: "openai", rpm: n };
      const r = await leader.raft.submit(cmd);
      expect(r.result.ok).toBe(true);
    }
    expect(JSON.stringify(leader.raft.state.snapshot()).length).toBeGreaterThan(1024 * 1024);
    const applied = leader.raft.raft.log.applied;
    expect(leader.raft.raft.log.snapIndex).toBeGreaterThanOrEqual(applied - COMPACT_EVERY);
    expect(leader.raft.raft.log.snapIndex).toBeGreaterThanOrEqual(100);
    expect(readdirSync(join(dir, `raft${li}`)).some((f) => f.startsWith("snap-"))).toBe(true);

    // The follower that missed everything comes back: the entries it lacks were compacted
    // away, so it can only catch up by installing the leader's snapshot.
    const back = await start(down, voters, leader.peer.multiaddrs()[0]);
    await eventually(async () => (back.raft.state.lmLimits.openai?.rpm === 120 ? true : undefined), 20_000, "the returning follower catching up");
    await eventually(async () => (back.raft.state.appliedIndex === leader.raft.state.appliedIndex ? true : undefined), 10_000, "the follower at the leader's applied index");
    expect(back.raft.state.digest()).toBe(leader.raft.state.digest());

    // A restart from disk (snapshot + the WAL after it) restores the same state.
    const other = [0, 1, 2].find((i) => i !== li && i !== down)!;
    const digestBefore = running.get(other)!.raft.state.digest();
    const appliedBefore = running.get(other)!.raft.state.appliedIndex;
    await stop(other);
    // The WAL holds what came after the last snapshot (< 25 entries, ~0.3 MB), not all 1.4 MB.
    expect(statSync(join(dir, `raft${other}`, "raft.wal")).size).toBeLessThan(700 * 1024);
    const again = await start(other, voters, leader.peer.multiaddrs()[0]);
    expect(again.raft.state.appliedIndex).toBeGreaterThan(0); // from its own snapshot, before any message
    await eventually(async () => (again.raft.state.appliedIndex >= appliedBefore ? true : undefined), 20_000, "the restarted peer re-applying its log");
    if (again.raft.state.appliedIndex === appliedBefore) expect(again.raft.state.digest()).toBe(digestBefore);
    expect(again.raft.state.lmLimits.openai?.rpm).toBe(120);
  });
});
