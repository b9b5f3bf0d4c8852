// `dspex peer` consensus wiring: --voters / --data-dir / --voter-count start a RaftDriver.
//
//   --voters ID1,ID2,ID3   the founding voters; a listed peer needs --data-dir; any other
//                          peer given the same list joins as a learner (state in --data-dir,
//                          or in memory without it: such a learner is never promoted).
//   --voters auto          the peer started without --bootstrap founds a one-voter cluster
//                          (needs --data-dir); peers that join become learners, and the
//                          leader promotes live learners with a --data-dir (lowest id first)
//                          until there are --voter-count voters (default 3).
// In both modes the leader replaces a voter silent for 10 s by a live durable learner.
// The "propose" coordination method lives in RaftDriver (forwarded to the leader,
// answered after commit).
import { peerIdFromString } from "@libp2p/peer-id";
import type { Peer } from "../../cluster/peer.js";
import type { Logger } from "../../cluster/log.js";
import { RaftDriver } from "../../cluster/raft_driver.js";
import { CliError } from "../errors.js";
import { intFlag } from "../lm_options.js";

export interface ConsensusFlags {
  voters?: string;
  dataDir?: string;
  voterCount?: string;
  bootstrap?: string[];
}

export function startConsensus(peer: Peer, flags: ConsensusFlags, logger: Logger): RaftDriver | undefined {
  try {
    return start(peer, flags, logger);
  } catch (e) {
    // The peer is already up: stop it, or the process would print the error and keep running.
    void peer.stop().catch(() => undefined);
    throw e;
  }
}

function start(peer: Peer, flags: ConsensusFlags, logger: Logger): RaftDriver | undefined {
  if (!flags.voters) {
    if (flags.voterCount !== undefined) throw new CliError("--voter-count needs --voters (a list of peer ids, or 'auto')");
    return undefined;
  }
  const auto = flags.voters.trim() === "auto";
  let voters: string[];
  if (auto) {
    const founder = !flags.bootstrap?.length;
    if (founder && !flags.dataDir) throw new CliError("--voters auto: the founding peer (started without --bootstrap) is a voter and needs --data-dir <dir> for its Raft log");
    voters = founder ? [peer.id] : [];
  } else {
    voters = flags.voters.split(",").map((v) => v.trim()).filter(Boolean);
    for (const v of voters) {
      try {
        peerIdFromString(v);
      } catch {
        throw new CliError(`--voters: '${v}' is not a peer id (print one with 'dspex identity --file peer.key'), or use --voters auto`);
      }
    }
    if (voters.includes(peer.id) && !flags.dataDir) throw new CliError("this peer is one of --voters and needs --data-dir <dir> for its Raft log");
  }
  const targetVoters = intFlag("voter-count", flags.voterCount, auto ? 3 : voters.length, 1);
  return new RaftDriver(peer, { dir: flags.dataDir, voters, targetVoters, logger });
}
