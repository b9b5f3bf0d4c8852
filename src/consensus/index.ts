// Public API of the Raft module (sans-IO core, storage, cluster state machine, simulator adapter).
export * from "./types.js";
export { RaftNode, RaftInvariantError, applyConfChange, bootstrapState, emptyState, type RaftConfig, type RaftStatus, type Proposed } from "./raft.js";
export { RaftLog } from "./log.js";
export { Progress, type ProgressState } from "./progress.js";
export { KvRaftStorage, MemoryRaftStorage, isEmptyState, persistUpdateOf, type KvStore, type PersistUpdate, type RaftStorage } from "./storage.js";
export { parseRaftMessage, raftMessageSchema, entrySchema, snapshotSchema, confStateSchema } from "./messages.js";
export {
  ClusterState,
  clusterCommandSchema,
  fnv64,
  JOB_STATUSES,
  RECENT_REQUESTS,
  type ApplyResult,
  type CheckpointBatch,
  type ClusterCommand,
  type ClusterStateSnapshot,
  type JobRecord,
  type JobStatus,
  type Topology,
} from "./cluster_state.js";
export { RaftSimNode, raftSimFactory, type RaftSimObserver, type RaftSimOptions } from "./sim_node.js";
export { runSchedule, propertyScheduleOptions, SafetyMonitor, type ScheduleOptions, type ScheduleResult } from "./sim_check.js";
export { decideVoterChange, policyViewOf, quorumOf, type PolicyMember, type PolicyView, type VoterDecision, type VoterPolicy } from "./voter_policy.js";
