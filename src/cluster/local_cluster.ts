// A throwaway cluster of `dspex peer` processes on 127.0.0.1 (for `dspex demo` and
// bench/cluster): a fresh cluster key, identities and Raft data in a temp directory, every
// peer a voter (up to 5; more join as plain peers), and everything removed on stop.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { loadOrCreateIdentity, readClusterKey, writeClusterKey } from "./keys.js";
import { queryStatus } from "./client.js";

const bin = fileURLToPath(new URL("../../bin/dspex.js", import.meta.url));

export interface LocalPeer {
  id: string;
  addr: string;
  child: ChildProcess;
}

export interface LocalCluster {
  peers: LocalPeer[];
  key: Uint8Array;
  keyFile: string;
  /** The current Raft leader's id (polls until all peers agree). */
  leader(timeoutMs?: number): Promise<string>;
  kill(id: string, signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalClusterOptions {
  size: number;
  /** Extra `dspex peer` flags for peer i (e.g. its --lm). */
  peerArgs: (i: number) => string[];
  startTimeoutMs?: number;
  /** Node flags for every peer process (e.g. ["--cpu-prof", "--cpu-prof-dir=prof"] to profile). */
  nodeArgs?: string[];
}

export async function startLocalCluster(o: LocalClusterOptions): Promise<LocalCluster> {
  const dir = await mkdtemp(join(tmpdir(), "dspex-cluster-"));
  const keyFile = join(dir, "cluster.key");
  await writeClusterKey(keyFile);
  const key = await readClusterKey(keyFile);
  const ids: string[] = [];
  for (let i = 0; i < o.size; i++) ids.push(peerIdFromPrivateKey(await loadOrCreateIdentity(join(dir, `peer${i}.key`))).toString());
  const voters = ids.slice(0, Math.min(5, o.size));
  const children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL"));
  process.once("exit", killAll);
  const start = (i: number, boot?: string) =>
    spawnPeer(
      [
        "peer", "--json", "--key-file", keyFile, "--identity", join(dir, `peer${i}.key`), "--voters", voters.join(","), "--data-dir", join(dir, `raft${i}`),
        ...(boot ? ["--bootstrap", boot] : []),
        ...o.peerArgs(i),
      ],
      children,
      o.startTimeoutMs ?? 60_000,
      o.nodeArgs ?? [],
    );
  const peers: LocalPeer[] = [];
  try {
    peers.push(await start(0));
    peers.push(...(await Promise.all(ids.slice(1).map((_, j) => start(j + 1, peers[0].addr)))));
  } catch (e) {
    killAll();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const alive = () => peers.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  return {
    peers,
    key,
    keyFile,
    async leader(timeoutMs = 30_000) {
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        const all = await Promise.all(alive().map((p) => queryStatus(p.addr, key, 3000).catch(() => undefined)));
        const l = all[0]?.leader;
        if (l && all.every((s) => s?.leader === l)) return l;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`the local cluster did not agree on a leader within ${timeoutMs} ms`);
    },
    async kill(id, signal = "SIGKILL") {
      const p = peers.find((x) => x.id === id);
      if (!p || p.child.exitCode !== null) return;
      const exited = new Promise((r) => p.child.once("exit", r));
      p.child.kill(signal);
      await exited;
    },
    async stop() {
      await Promise.all(
        alive().map(async (p) => {
          const exited = new Promise((r) => p.child.once("exit", r));
          p.child.kill("SIGTERM");
          const t = setTimeout(() => p.child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(t);
        }),
      );
      process.removeListener("exit", killAll);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function spawnPeer(args: string[], children: ChildProcess[], timeoutMs: number, nodeArgs: string[]): Promise<LocalPeer> {
  const child = spawn(process.execPath, [...nodeArgs, bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = createInterface({ input: child.stdout! });
  return await new Promise<LocalPeer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`a peer did not start within ${timeoutMs} ms; its stderr: ${stderr}`)), timeoutMs);
    lines.on("line", (l) => {
      try {
        const m = JSON.parse(l) as { event?: string; peer: string; addrs: string[] };
        if (m.event === "listening") {
          clearTimeout(timer);
          resolve({ id: m.peer, addr: m.addrs[0], child });
        }
      } catch {
        // not a JSON line
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`a peer exited with ${code} while starting: ${stderr}`));
    });
  });
}
