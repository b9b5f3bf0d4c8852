// Real `dspex peer` processes: three founding voters and two peers that are not in the
// voter list (so they join as learners, with --data-dir: eligible for promotion). The
// learners learn the leader; a proposal sent to a learner is forwarded and answered after
// commit; SIGKILL the leader: a new leader is elected, and once the dead voter has been
// silent for the 10 s bound it is removed and the lowest-id learner promoted, so three live
// voters remain and the committed state survives. (A removed voter coming back as a learner
// is tested in-process, in raft.test.ts: same code, no process start-up cost.)
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { afterAll, describe, expect, it } from "vitest";
import { loadOrCreateIdentity, readClusterKey, writeClusterKey } from "../../src/cluster/keys.js";
import { queryStatus, withClusterClient } from "../../src/cluster/client.js";
import { eventually, spawnPeer, type PeerProc } from "./helpers.js";

interface RaftView {
  id: string;
  role: string;
  term: number;
  lead: string | null;
  commit: number;
  voters: string[];
  learners: string[];
  durable: boolean;
  topology: string | null;
  voterChanges: Array<{ rule: string; change: { type: string; node: string }; at: number }>;
}

const dir = mkdtempSync(join(tmpdir(), "dspex-learners-"));
const procs: PeerProc[] = [];
afterAll(async () => {
  // Skip the one already SIGKILLed (stop() would wait for an exit that already happened).
  await Promise.all(procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.stop("SIGKILL")));
});

describe("dspex peers with learners and automatic voter replacement", () => {
  it("learners learn the leader, forward proposals; a SIGKILLed voter is replaced by a learner after 10 s", { timeout: 90_000 }, async () => {
    const keyFile = join(dir, "k.key");
    await writeClusterKey(keyFile);
    const key = await readClusterKey(keyFile);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(peerIdFromPrivateKey(await loadOrCreateIdentity(join(dir, `id${i}.key`))).toString());
    const voters = ids.slice(0, 3);
    const args = (i: number, boot?: string) => [
      "--key-file", keyFile, "--identity", join(dir, `id${i}.key`), "--voters", voters.join(","), "--data-dir", join(dir, `raft${i}`),
      ...(boot ? ["--bootstrap", boot] : []),
    ];
    const raftStatus = (p: PeerProc) => withClusterClient(p.addr, key, async (ask) => (await ask("raftStatus", null, 3000)) as RaftView, 3000);
    const propose = (p: PeerProc, cmd: unknown) => withClusterClient(p.addr, key, async (ask) => (await ask("propose", cmd, 10_000)) as { accepted: boolean; committed: boolean; leader: string; result: { ok: boolean; index: number } }, 10_000);

    const tStart = performance.now();
    // Generous start-up bound: five tsx processes starting at once on a busy 2-core box.
    procs[0] = await spawnPeer(args(0), 45_000);
    const rest = await Promise.all([1, 2, 3, 4].map((i) => spawnPeer(args(i, procs[0].addr), 45_000)));
    rest.forEach((p, j) => (procs[j + 1] = p));
    const startedMs = performance.now() - tStart;

    // Everyone agrees on a leader; the two unlisted peers are learners and say so in status.
    const first = await eventually(async () => {
      const all = await Promise.all(procs.map((p) => raftStatus(p)));
      const l = all[0].lead;
      // Peers 3 and 4 call themselves learners at once; the leader lists them once their join committed.
      const ok = l && all.every((s) => s.lead === l) && all[3].role === "learner" && all[4].role === "learner" && all.find((s) => s.id === l)?.learners.length === 2;
      return ok ? { leader: l, all } : undefined;
    }, 30_000, "a leader all five agree on, two learners");
    const agreedMs = performance.now() - tStart;
    const byLeader = first.all.find((s) => s.id === first.leader)!;
    expect(byLeader.voters).toEqual([...voters].sort());
    expect(byLeader.learners).toEqual([ids[3], ids[4]].sort());
    const st = await queryStatus(procs[4].addr, key, 3000);
    expect(st).toMatchObject({ leader: first.leader, role: "learner" });
    expect(st.term).toBeGreaterThanOrEqual(1);

    // A proposal sent to a learner is forwarded to the leader and answered after commit.
    const r = await propose(procs[3], { type: "setTopology", name: "hyparview", options: { expectedSize: 5 } });
    expect(r).toMatchObject({ accepted: true, committed: true, leader: first.leader, result: { ok: true } });
    await eventually(async () => ((await Promise.all(procs.map((p) => queryStatus(p.addr, key, 3000)))).every((s) => s.committedTopology === "hyparview") ? true : undefined), 10_000, "the switch applied by all five");

    // SIGKILL the leader. A new leader is elected; the dead voter is removed once silent for
    // 10 s (counted from the new leader's election) and the lowest-id learner promoted.
    const li = ids.indexOf(first.leader);
    await procs[li].stop("SIGKILL");
    const t0 = performance.now();
    const alive = procs.filter((_, i) => i !== li);
    const second = await eventually(async () => {
      const all = await Promise.all(alive.map((p) => raftStatus(p)));
      const l = all[0].lead;
      return l && l !== first.leader && all.every((s) => s.lead === l) ? l : undefined;
    }, 20_000, "a new leader after SIGKILL");
    const electedMs = performance.now() - t0;
    const promoted = [ids[3], ids[4]].sort()[0];
    const leaderProc = procs[ids.indexOf(second)];
    let last: RaftView | undefined;
    const replaced = await eventually(async () => {
      const s = (last = await raftStatus(leaderProc));
      return s.voters.length === 3 && !s.voters.includes(first.leader) && s.voters.includes(promoted) && s.commit > 0 ? s : undefined;
    }, 30_000, `the dead voter replaced (leader's view: ${JSON.stringify(last)})`).catch((e) => {
      throw new Error(`${(e as Error).message}; last view ${JSON.stringify(last)}`);
    });
    const replacedMs = performance.now() - t0;
    expect(replaced.voterChanges.map((c) => [c.rule, c.change.node])).toEqual([
      ["remove-dead-voter", first.leader],
      ["promote", promoted],
    ]);
    // Not before the bound (silence counted from the new leader's election), not much after.
    expect(replacedMs).toBeGreaterThan(10_000);
    expect(replacedMs).toBeLessThan(electedMs + 10_000 + 4_000);

    // Three live voters, one leader, the committed state intact; the other learner still proposes.
    const after = await Promise.all(alive.map((p) => raftStatus(p)));
    expect(after.every((s) => s.lead === second && s.topology === "hyparview")).toBe(true);
    expect(after.find((s) => s.id === promoted)!.role).toMatch(/follower|leader/);
    const other = [ids[3], ids[4]].find((x) => x !== promoted)!;
    const r2 = await propose(procs[ids.indexOf(other)], { type: "setTopology", name: "full-mesh", options: {} });
    expect(r2).toMatchObject({ committed: true, leader: second, result: { ok: true } });

    console.log(JSON.stringify({ startedMs: Math.round(startedMs), agreedMs: Math.round(agreedMs), electionAfterSigkillMs: Math.round(electedMs), voterReplacedAfterSigkillMs: Math.round(replacedMs), boundMs: 10_000, promoted: promoted.slice(-8) }));
  });
});
