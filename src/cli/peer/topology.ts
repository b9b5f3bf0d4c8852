// `dspex peer --topology <name> [--topology-options <json>]`: the overlay this peer runs,
// and the cluster-wide switch: when the peer runs Raft, every committed `setTopology`
// (dspex topology set) is applied here too.
import { setTopologySchema } from "../../consensus/cluster_state.js";
import type { Peer } from "../../cluster/peer.js";
import type { Logger } from "../../cluster/log.js";
import type { RaftDriver } from "../../cluster/raft_driver.js";
import { TOPOLOGY_NAMES } from "../../../topology/managers.js";
import { parseTopologyChoice, type TopologyChoice } from "../../../topology/wire.js";
import { CliError } from "../errors.js";

export interface TopologyFlags {
  topology?: string;
  topologyOptions?: string;
}

/** Validate the flags; undefined when --topology is absent (the peer keeps full-mesh). */
export function topologyFromFlags(flags: TopologyFlags): TopologyChoice | undefined {
  if (flags.topology === undefined) {
    if (flags.topologyOptions !== undefined) throw new CliError(`--topology-options needs --topology <name> (${TOPOLOGY_NAMES.join(", ")})`);
    return undefined;
  }
  let options: unknown;
  if (flags.topologyOptions !== undefined) {
    try {
      options = JSON.parse(flags.topologyOptions);
    } catch (e) {
      throw new CliError(`--topology-options is not valid JSON (${(e as Error).message}); example: '{"expectedSize": 100}'`);
    }
  }
  const r = parseTopologyChoice(flags.topology, options);
  if (!r.ok) throw new CliError(`--topology: ${r.message}`);
  return r.value;
}

/**
 * Apply --topology (before the overlay starts, so the peer joins with it) and follow
 * committed switches. On bad flags the peer is stopped before the error is thrown, so the
 * process exits.
 */
export async function startTopology(peer: Peer, flags: TopologyFlags, raft: RaftDriver | undefined, logger: Logger): Promise<void> {
  let choice: TopologyChoice | undefined;
  try {
    choice = topologyFromFlags(flags);
  } catch (e) {
    raft?.stop();
    await peer.stop();
    throw e;
  }
  if (choice) peer.setTopology(choice.name, choice.options);
  if (raft) followCommitted(peer, raft, logger);
}

/** Switch whenever Raft applies a `setTopology` (including the one in a restored snapshot). */
export function followCommitted(peer: Peer, raft: RaftDriver, log: Logger): () => void {
  const apply = (name: string, options: unknown, index: number) => {
    const r = parseTopologyChoice(name, options);
    if (!r.ok) {
      // The state machine accepts any name; a bad one must not take the overlay down.
      log.warn("committed topology ignored", { index, error: r.message });
      return;
    }
    try {
      peer.setTopology(r.value.name, r.value.options);
      log.info("applied committed topology", { index, topology: r.value.name });
    } catch (e) {
      log.warn("committed topology ignored", { index, error: (e as Error).message });
    }
  };
  const now = raft.state.topology;
  if (now) apply(now.name, now.options, now.index);
  // A restart replays old commands: apply only the newest of each burst.
  let latest: { name: string; options: unknown; index: number } | undefined;
  return raft.onApply((result, data) => {
    if (!result.ok || result.type !== "setTopology") return;
    const cmd = setTopologySchema.safeParse(data);
    if (!cmd.success) return;
    const first = latest === undefined;
    latest = { name: cmd.data.name, options: cmd.data.options, index: result.index };
    if (first)
      setImmediate(() => {
        const t = latest!;
        latest = undefined;
        apply(t.name, t.options, t.index);
      });
  });
}
