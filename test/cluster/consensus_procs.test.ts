// Real `dspex peer` processes running Raft: five voters elect a leader; SIGKILL the
// leader, a new one is elected within 10 s and committed state survives; the killed peer
// restarts from its data directory and catches up; status shows leader and term.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { loadOrCreateIdentity, readClusterKey, writeClusterKey } from "../../src/cluster/keys.js";
import { queryStatus } from "../../src/cluster/client.js";
import type { StatusReport } from "../../src/cluster/peer.js";
import { eventually, spawnPeer, type PeerProc } from "./helpers.js";

const run = promisify(execFile);
const bin = fileURLToPath(new URL("../../bin/dspex.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "dspex-consensus-"));
const procs: PeerProc[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop("SIGKILL")));
});

describe("five dspex peers running Raft", () => {
  it("elect, survive a SIGKILLed leader, commit a topology switch and an LM budget, and catch up after restart", { timeout: 120_000 }, async () => {
    const keyFile = join(dir, "k.key");
    await writeClusterKey(keyFile);
    const key = await readClusterKey(keyFile);
    // `dspex identity` once (the CLI path), the other ids in-process (each tsx start costs seconds).
    const ids: string[] = [(await run(process.execPath, [bin, "identity", "--file", join(dir, "id0.key")])).stdout.trim()];
    expect(ids[0]).toBe(peerIdFromPrivateKey(await loadOrCreateIdentity(join(dir, "id0.key"))).toString());
    for (let i = 1; i < 5; i++) ids.push(peerIdFromPrivateKey(await loadOrCreateIdentity(join(dir, `id${i}.key`))).toString());
    const args = (i: number, boot?: string) => [
      "--key-file", keyFile, "--identity", join(dir, `id${i}.key`), "--voters", ids.join(","), "--data-dir", join(dir, `raft${i}`),
      ...(boot ? ["--bootstrap", boot] : []),
    ];
    procs[0] = await spawnPeer(args(0), 45_000);
    const rest = await Promise.all([1, 2, 3, 4].map((i) => spawnPeer(args(i, procs[0].addr), 45_000)));
    rest.forEach((p, j) => (procs[j + 1] = p));

    const agreed = async (alive: PeerProc[], not?: string) => {
      const all: StatusReport[] = await Promise.all(alive.map((p) => queryStatus(p.addr, key, 3000)));
      const l = all[0].leader;
      return l && l !== not && all.every((s) => s.leader === l) ? { leader: l, statuses: all } : undefined;
    };
    const first = await eventually(() => agreed(procs), 30_000, "a leader all five agree on");
    expect(first.statuses.every((s) => (s.term ?? 0) >= 1)).toBe(true);

    // Commit a topology switch through any peer (it is forwarded to the leader, answered after commit).
    await run(process.execPath, [bin, "topology", "set", "hyparview", "--join", procs[2].addr, "--key-file", keyFile, "--options", '{"expectedSize": 5}']);
    expect((await queryStatus(first.leader === procs[0].id ? procs[0].addr : procs[ids.indexOf(first.leader)].addr, key, 3000)).committedTopology).toBe("hyparview");
    await eventually(async () => ((await Promise.all(procs.map((p) => queryStatus(p.addr, key, 3000)))).every((s) => s.committedTopology === "hyparview" && s.topology === "hyparview") ? true : undefined), 15_000, "the switch committed and applied on all five");

    // A cluster-wide LM budget, through the CLI: refused locally when malformed, committed
    // and shown by every peer's status otherwise.
    const bad = await run(process.execPath, [bin, "limits", "set", "Open AI", "--rpm", "5", "--join", procs[1].addr, "--key-file", keyFile]).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect((bad as { stderr: string }).stderr).toMatch(/'Open AI' is not a provider name/);
    await run(process.execPath, [bin, "limits", "set", "openai", "--rpm", "500", "--join", procs[1].addr, "--key-file", keyFile]);
    await eventually(async () => ((await Promise.all(procs.map((p) => queryStatus(p.addr, key, 3000)))).every((s) => s.lmLimits?.openai?.rpm === 500) ? true : undefined), 15_000, "the LM budget committed on all five");
    const shown = await run(process.execPath, [bin, "status", "--join", procs[3].addr, "--key-file", keyFile]);
    expect(shown.stdout).toContain("LM budget openai: 500 requests/min (cluster-wide)");

    // SIGKILL the leader.
    const li = ids.indexOf(first.leader);
    await procs[li].stop("SIGKILL");
    const alive = procs.filter((_, i) => i !== li);
    const t0 = performance.now();
    const second = await eventually(() => agreed(alive, first.leader), 20_000, "a new leader after SIGKILL");
    const electionMs = performance.now() - t0;
    expect(electionMs).toBeLessThan(10_000);
    expect(second.statuses.every((s) => s.committedTopology === "hyparview" && s.topology === "hyparview")).toBe(true);

    // Restart it from its data directory: it rejoins and learns the leader.
    procs[li] = await spawnPeer(args(li, alive[0].addr), 45_000);
    const back = await eventually(async () => {
      const s = await queryStatus(procs[li].addr, key, 3000);
      // It rejoins running full-mesh and switches when it applies the committed command.
      return s.leader === second.leader && s.committedTopology === "hyparview" && s.topology === "hyparview" ? s : undefined;
    }, 20_000, "the restarted peer catching up and applying the committed topology");
    expect(back.term).toBeGreaterThanOrEqual(second.statuses[0].term ?? 0);
    console.log(JSON.stringify({ electionAfterSigkillMs: Math.round(electionMs), term: back.term }));
  });
});
