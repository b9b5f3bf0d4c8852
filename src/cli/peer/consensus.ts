// `dspex peer` consensus wiring: --voters / --data-dir start a RaftDriver on this peer.
import { peerIdFromString } from "@libp2p/peer-id";
import { z } from "zod";
import type { Peer } from "../../cluster/peer.js";
import type { Logger } from "../../cluster/log.js";
import { RaftDriver } from "../../cluster/raft_driver.js";
import { CliError } from "../errors.js";

export interface ConsensusFlags {
  voters?: string;
  dataDir?: string;
}

export function startConsensus(peer: Peer, flags: ConsensusFlags, logger: Logger): RaftDriver | undefined {
  if (!flags.voters) return undefined;
  const voters = flags.voters.split(",").map((v) => v.trim()).filter(Boolean);
  if (!flags.dataDir) throw new CliError("--voters needs --data-dir <dir> for the Raft log");
  for (const v of voters) {
    try {
      peerIdFromString(v);
    } catch {
      throw new CliError(`--voters: '${v}' is not a peer id (print one with 'dspex identity --file peer.key')`);
    }
  }
  const raft = new RaftDriver(peer, { dir: flags.dataDir, voters, logger });
  peer.channels.coordination.handle("propose", z.unknown(), (cmd) => {
    const r = raft.propose(cmd);
    if (!r.ok) throw Object.assign(new Error(r.message), { code: "not_accepted" });
    return { accepted: true };
  });
  return raft;
}
