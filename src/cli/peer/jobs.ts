// `dspex peer` job wiring: the peer's own LM (--lm ...) runs the tasks it is leased, and
// the peer answers job requests (coordinating them when it is the Raft leader).
import type { Peer } from "../../cluster/peer.js";
import type { Logger } from "../../cluster/log.js";
import type { RaftDriver } from "../../cluster/raft_driver.js";
import { JobService } from "../../cluster/jobs/service.js";
import { openLM, type LMFlags, type OpenedLM } from "../lm_options.js";

export async function startJobs(peer: Peer, raft: RaftDriver | undefined, flags: LMFlags, capacity: number, logger: Logger): Promise<{ service: JobService; close(): Promise<void> }> {
  // Without --lm the peer still coordinates and forwards jobs; it just runs no tasks.
  const opened: OpenedLM | undefined = flags.lm ? await openLM(flags) : undefined;
  const service = new JobService(peer, raft, { capacity, logger, ...(opened ? { lm: opened.lm } : {}) });
  return {
    service,
    close: async () => {
      service.stop();
      await opened?.close();
    },
  };
}
