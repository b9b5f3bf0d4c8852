// Running eval/compile on a cluster from the CLI (`--join <multiaddr>`): connect through any
// peer, show the job's progress (a bar on a TTY), and say who did the work.
import { Command } from "commander";
import { readClusterKey } from "../cluster/keys.js";
import { ClusterJobs } from "../cluster/jobs/client.js";
import type { JobStats } from "../cluster/jobs/service.js";
import { chooseProgress } from "../engine/evaluate/progress.js";
import type { JobProgress } from "../cluster/jobs/wire.js";

export interface JoinFlags {
  join?: string;
  keyFile?: string;
}

export function addJoinOptions(cmd: Command): Command {
  return cmd
    .option("--join <multiaddrs>", "run on a cluster: any peer's full address, or several comma-separated (the client moves to another peer if its peer dies; the job runs on the peers' LMs, not --lm)")
    .option("--key-file <file>", "with --join: the cluster key");
}

export async function connectJobs(flags: JoinFlags): Promise<ClusterJobs & { close(): Promise<void> }> {
  const key = flags.keyFile ? await readClusterKey(flags.keyFile) : undefined;
  return await ClusterJobs.connect(flags.join!.split(",").map((a) => a.trim()).filter(Boolean), key);
}

/** A progress callback for ClusterJobs that drives a bar (or nothing when quiet). */
export function jobProgress(label: string, quiet: boolean, force = false): { onProgress: (p: { progress?: JobProgress }) => void; stop(): void } {
  const bar = chooseProgress(quiet ? false : force ? true : "auto");
  let started = false;
  return {
    onProgress: (p) => {
      if (!p.progress) return;
      if (!started) {
        bar.start(p.progress.total, label);
        started = true;
      }
      bar.update(p.progress.done, {});
    },
    stop: () => bar.stop(),
  };
}

/** "peer …abc123: 40%, peer …def456: 60%" */
export function shareOfWork(stats: JobStats): string {
  const total = Object.values(stats.perPeer).reduce((a, b) => a + b, 0) + stats.replayed;
  if (total === 0) return "no tasks";
  const parts = Object.entries(stats.perPeer)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([p, n]) => `…${p.slice(-6)} ${n} (${Math.round((n / total) * 100)}%)`);
  if (stats.replayed) parts.push(`replayed from checkpoints ${stats.replayed}`);
  return parts.join(", ");
}
