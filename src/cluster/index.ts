// Cluster entry point: `import { Peer, ClusterJobs } from "dspex/cluster"`.
import "../util/polyfill.js";
export { Peer, type PeerOptions, type StatusReport, type MemberInfo, type Telemetry } from "./peer.js";
export { RaftDriver, type RaftDriverOptions } from "./raft_driver.js";
export { openClusterClient, withClusterClient, queryStatus, type ClusterClient } from "./client.js";
export { newClusterKey, readClusterKey, writeClusterKey, loadOrCreateIdentity } from "./keys.js";
export { startLocalCluster, type LocalCluster, type LocalClusterOptions } from "./local_cluster.js";
export { JobService, type JobServiceOptions, type JobStats, type JobValue } from "./jobs/service.js";
export { ClusterJobs, type ClusterEvaluateOptions, type ClusterEvaluation, type ClusterCompileOptions, type ClusterCompilation } from "./jobs/client.js";
export { ClusterExecutor, type ClusterExecutorOptions } from "./jobs/cluster_executor.js";
export { WorkerPool } from "./jobs/pool.js";
export { TaskWorker } from "./jobs/worker.js";
export { JobError, type JobErrorCode } from "./jobs/errors.js";
export type { JobOptions, JobProgress, JobSpec, JobStatusReply } from "./jobs/wire.js";
