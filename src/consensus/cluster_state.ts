// The replicated cluster state machine: what every peer agrees on through Raft.
//
//   topology   the overlay every peer runs (name + options), switched with `setTopology`
//   members    the Raft voter set and learners (mirrored from committed config entries)
//   jobs       job records: spec, status, and checkpoints (append-only batches of
//              completed task ids + result digests) so a new coordinator resumes a job
//   lmLimits   cluster-wide LM request/token budgets per provider, shared by all jobs
//
// Commands are plain JSON with a `type` discriminator. `apply` validates each with zod and
// rejects a bad one with an error value (the entry is still consumed, identically on every
// peer); nothing a proposer sends can crash a peer. Apply is deterministic: no clock, no
// randomness, only the command and the log index.

import { z } from "zod";
import type { ConfState, Entry } from "./types.js";

const id = z.string().min(1).max(256);
const json = z.json();

export const JOB_STATUSES = ["pending", "running", "done", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
const TERMINAL: ReadonlySet<JobStatus> = new Set(["done", "failed", "cancelled"]);
const TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  pending: ["running", "failed", "cancelled"],
  running: ["pending", "done", "failed", "cancelled"],
  done: [],
  failed: [],
  cancelled: [],
};

/** Optional idempotency key: a command with a key seen recently is applied once. */
const requestId = id.optional();

export const setTopologySchema = z.strictObject({
  type: z.literal("setTopology"),
  name: z.string().min(1).max(64),
  options: z.record(z.string(), json).default({}),
  requestId,
});

export const createJobSchema = z.strictObject({
  type: z.literal("createJob"),
  jobId: id,
  /** What to run: plain data (program state, dataset reference, metric name...). */
  spec: json,
  requestId,
});

export const setJobStatusSchema = z.strictObject({
  type: z.literal("setJobStatus"),
  jobId: id,
  status: z.enum(JOB_STATUSES),
  error: z.string().max(4096).optional(),
  /** The job's outcome (e.g. a compiled program's JSON) when it reaches done. */
  result: json.optional(),
  requestId,
});

export const taskResultSchema = z.strictObject({
  taskId: id,
  /** Digest of the task's result (the result itself lives with the coordinator / in checkpoints on disk). */
  digest: z.string().min(1).max(256),
  /** The result itself, so a new coordinator can resume the job without redoing the task. */
  result: json.optional(),
});

export const checkpointSchema = z.strictObject({
  type: z.literal("checkpoint"),
  jobId: id,
  tasks: z.array(taskResultSchema).min(1).max(10_000),
  requestId,
});

/** Provider names as in model strings ("openai/gpt-4o" -> "openai"). */
export const providerSchema = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, "a provider name like 'openai' (lowercase letters, digits, . _ -)");

/** Set (or, with neither rpm nor tpm, remove) the cluster-wide budget of one LM provider. */
export const setLmLimitSchema = z.strictObject({
  type: z.literal("setLmLimit"),
  provider: providerSchema,
  rpm: z.number().positive().max(1e9).optional(),
  tpm: z.number().positive().max(1e12).optional(),
  requestId,
});

export const noopSchema = z.strictObject({ type: z.literal("noop"), requestId });

export const clusterCommandSchema = z.discriminatedUnion("type", [setTopologySchema, createJobSchema, setJobStatusSchema, checkpointSchema, setLmLimitSchema, noopSchema]);

export type ClusterCommand = z.input<typeof clusterCommandSchema>;
type ParsedCommand = z.output<typeof clusterCommandSchema>;
type Json = z.infer<typeof json>;

export interface Topology {
  name: string;
  options: Record<string, Json>;
  /** Log index of the command that set it. */
  index: number;
}

export interface LmLimit {
  /** Requests (task starts) per minute across the cluster. */
  rpm?: number;
  /** Tokens per minute across the cluster. */
  tpm?: number;
  /** Log index of the command that set it. */
  index: number;
}

export interface CheckpointBatch {
  /** Log index of the checkpoint command. */
  index: number;
  tasks: Array<{ taskId: string; digest: string; result?: Json }>;
}

export interface JobRecord {
  jobId: string;
  spec: Json;
  status: JobStatus;
  error?: string;
  result?: Json;
  createdIndex: number;
  updatedIndex: number;
  checkpoints: CheckpointBatch[];
  /** Number of distinct completed tasks across all batches. */
  completed: number;
  /** Finished long enough ago that its checkpoints were dropped (per-task results are gone). */
  trimmed?: boolean;
}

export type ApplyResult =
  | { readonly index: number; readonly ok: true; readonly type: string; readonly duplicate?: boolean; readonly accepted?: number }
  | { readonly index: number; readonly ok: false; readonly code: "INVALID_COMMAND" | "REJECTED"; readonly message: string };

/** The serialised form (snapshot data). */
export interface ClusterStateSnapshot {
  v: 1;
  appliedIndex: number;
  topology: Topology | null;
  members: { voters: string[]; learners: string[] };
  jobs: JobRecord[];
  recentRequests: string[];
  /** Absent in snapshots written before LM limits existed. */
  lmLimits?: Record<string, LmLimit>;
}

const snapshotSchema = z.strictObject({
  v: z.literal(1),
  appliedIndex: z.number().int().nonnegative(),
  topology: z.strictObject({ name: z.string(), options: z.record(z.string(), json), index: z.number().int() }).nullable(),
  members: z.strictObject({ voters: z.array(z.string()), learners: z.array(z.string()) }),
  jobs: z.array(
    z.strictObject({
      jobId: z.string(),
      spec: json,
      status: z.enum(JOB_STATUSES),
      error: z.string().optional(),
      result: json.optional(),
      createdIndex: z.number().int(),
      updatedIndex: z.number().int(),
      checkpoints: z.array(z.strictObject({ index: z.number().int(), tasks: z.array(taskResultSchema) })),
      completed: z.number().int(),
      trimmed: z.boolean().optional(),
    }),
  ),
  recentRequests: z.array(z.string()),
  lmLimits: z.record(z.string(), z.strictObject({ rpm: z.number().optional(), tpm: z.number().optional(), index: z.number().int() })).optional(),
});

/** Finished jobs kept in the state (status, outcome); older ones are forgotten. */
export const MAX_FINISHED_JOBS = 100;
/** Finished jobs whose checkpoints (per-task results) are kept; older ones keep their outcome only. */
export const FINISHED_JOBS_WITH_RESULTS = 8;

/** How many idempotency keys are remembered (oldest forgotten first). */
export const RECENT_REQUESTS = 4096;

export class ClusterState {
  appliedIndex = 0;
  topology: Topology | null = null;
  members: { voters: string[]; learners: string[] } = { voters: [], learners: [] };
  readonly jobs = new Map<string, JobRecord>();
  /** By provider, sorted by name in snapshots. */
  lmLimits: Record<string, LmLimit> = {};
  private readonly taskIds = new Map<string, Set<string>>();
  private recent: string[] = [];
  private readonly recentSet = new Set<string>();

  /** Apply one committed log entry. Never throws on bad data. */
  apply(e: Entry): ApplyResult {
    const index = e.index;
    if (index <= this.appliedIndex) {
      return { index, ok: false, code: "REJECTED", message: `entry ${index} already applied (at ${this.appliedIndex})` };
    }
    this.appliedIndex = index;
    if (e.type === "config") {
      const c = e.data as ConfState;
      this.members = { voters: [...c.voters], learners: [...c.learners] };
      return { index, ok: true, type: "config" };
    }
    if (e.data === null || e.data === undefined) return { index, ok: true, type: "noop" };
    const parsed = clusterCommandSchema.safeParse(e.data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
      return { index, ok: false, code: "INVALID_COMMAND", message: `invalid cluster command${where}: ${issue?.message ?? "bad input"}` };
    }
    const cmd = parsed.data;
    if (cmd.requestId !== undefined) {
      if (this.recentSet.has(cmd.requestId)) return { index, ok: true, type: cmd.type, duplicate: true };
    }
    const r = this.exec(cmd, index);
    if (r.ok && cmd.requestId !== undefined) this.remember(cmd.requestId);
    return r;
  }

  /**
   * Keep the newest MAX_FINISHED_JOBS finished jobs (by when they finished): the state, its
   * snapshots and every peer's memory would otherwise grow with every job ever run.
   * Deterministic: it depends only on the records, so every peer forgets the same jobs.
   */
  private forgetOldJobs(): void {
    const finished = [...this.jobs.values()].filter((j) => TERMINAL.has(j.status));
    if (finished.length <= FINISHED_JOBS_WITH_RESULTS) return;
    finished.sort((a, b) => b.updatedIndex - a.updatedIndex); // newest first
    for (const [k, j] of finished.entries()) {
      if (k >= MAX_FINISHED_JOBS) {
        this.jobs.delete(j.jobId);
        this.taskIds.delete(j.jobId);
      } else if (k >= FINISHED_JOBS_WITH_RESULTS && !j.trimmed) {
        // Checkpoints carry every task's result: the bulk of the state and of its snapshots.
        j.checkpoints = [];
        j.trimmed = true;
        this.taskIds.delete(j.jobId);
      }
    }
  }

  private remember(key: string): void {
    this.recent.push(key);
    this.recentSet.add(key);
    if (this.recent.length > RECENT_REQUESTS) {
      const old = this.recent.shift()!;
      this.recentSet.delete(old);
    }
  }

  private exec(cmd: ParsedCommand, index: number): ApplyResult {
    const reject = (message: string): ApplyResult => ({ index, ok: false, code: "REJECTED", message });
    switch (cmd.type) {
      case "noop":
        return { index, ok: true, type: "noop" };
      case "setTopology":
        this.topology = { name: cmd.name, options: cmd.options, index };
        return { index, ok: true, type: cmd.type };
      case "setLmLimit": {
        const next = { ...this.lmLimits };
        if (cmd.rpm === undefined && cmd.tpm === undefined) delete next[cmd.provider];
        else next[cmd.provider] = copyLimit({ rpm: cmd.rpm, tpm: cmd.tpm, index });
        this.lmLimits = next;
        return { index, ok: true, type: cmd.type };
      }
      case "createJob": {
        if (this.jobs.has(cmd.jobId)) return reject(`job ${cmd.jobId} already exists`);
        this.jobs.set(cmd.jobId, { jobId: cmd.jobId, spec: cmd.spec, status: "pending", createdIndex: index, updatedIndex: index, checkpoints: [], completed: 0 });
        this.taskIds.set(cmd.jobId, new Set());
        return { index, ok: true, type: cmd.type };
      }
      case "setJobStatus": {
        const job = this.jobs.get(cmd.jobId);
        if (job === undefined) return reject(`no job ${cmd.jobId}`);
        if (job.status === cmd.status) return { index, ok: true, type: cmd.type, duplicate: true };
        if (!TRANSITIONS[job.status].includes(cmd.status)) return reject(`job ${cmd.jobId}: cannot go from ${job.status} to ${cmd.status}`);
        job.status = cmd.status;
        job.updatedIndex = index;
        if (cmd.error !== undefined) job.error = cmd.error;
        if (cmd.result !== undefined) job.result = cmd.result;
        if (TERMINAL.has(job.status)) this.forgetOldJobs();
        return { index, ok: true, type: cmd.type };
      }
      case "checkpoint": {
        const job = this.jobs.get(cmd.jobId);
        if (job === undefined) return reject(`no job ${cmd.jobId}`);
        if (TERMINAL.has(job.status)) return reject(`job ${cmd.jobId} is ${job.status}`);
        const seen = this.taskIds.get(cmd.jobId)!;
        // Each task's result is accepted once: the first batch that names it wins.
        const fresh = cmd.tasks.filter((t) => {
          if (seen.has(t.taskId)) return false;
          seen.add(t.taskId);
          return true;
        });
        if (fresh.length > 0) {
          job.checkpoints.push({ index, tasks: fresh });
          job.completed += fresh.length;
          job.updatedIndex = index;
        }
        return { index, ok: true, type: cmd.type, accepted: fresh.length };
      }
    }
  }

  /** JSON-able snapshot (deterministic: same applied entries => same value). */
  snapshot(): ClusterStateSnapshot {
    return {
      v: 1,
      appliedIndex: this.appliedIndex,
      topology: this.topology === null ? null : { name: this.topology.name, options: { ...this.topology.options }, index: this.topology.index },
      members: { voters: [...this.members.voters], learners: [...this.members.learners] },
      // Explicit key order: the digest must not depend on how a record was built.
      jobs: [...this.jobs.values()].map((j) => {
        const rec: JobRecord = { jobId: j.jobId, spec: j.spec, status: j.status, createdIndex: j.createdIndex, updatedIndex: j.updatedIndex, checkpoints: [], completed: j.completed };
        if (j.error !== undefined) rec.error = j.error;
        if (j.result !== undefined) rec.result = j.result;
        if (j.trimmed) rec.trimmed = true;
        rec.checkpoints = j.checkpoints.map((b) => ({ index: b.index, tasks: b.tasks.map((t) => ({ taskId: t.taskId, digest: t.digest, ...(t.result !== undefined ? { result: t.result } : {}) })) }));
        return rec;
      }),
      recentRequests: [...this.recent],
      // Only when set, so snapshots (and digests) of clusters that never set one are unchanged.
      ...(Object.keys(this.lmLimits).length > 0 ? { lmLimits: Object.fromEntries(Object.keys(this.lmLimits).sort().map((p) => [p, copyLimit(this.lmLimits[p])])) } : {}),
    };
  }

  /** Replace the state with a snapshot; an error value (state unchanged) if it is malformed. */
  restore(data: unknown): { ok: true } | { ok: false; message: string } {
    const parsed = snapshotSchema.safeParse(data);
    if (!parsed.success) return { ok: false, message: `invalid cluster state snapshot: ${parsed.error.issues[0]?.message ?? "bad input"}` };
    const s = parsed.data;
    this.appliedIndex = s.appliedIndex;
    this.topology = s.topology;
    this.members = s.members;
    this.jobs.clear();
    this.taskIds.clear();
    for (const j of s.jobs) {
      const rec: JobRecord = { ...j, spec: j.spec };
      if (j.error === undefined) delete rec.error;
      if (j.result === undefined) delete rec.result;
      if (!j.trimmed) delete rec.trimmed;
      this.jobs.set(j.jobId, rec);
      this.taskIds.set(j.jobId, new Set(j.checkpoints.flatMap((b) => b.tasks.map((t) => t.taskId))));
    }
    this.lmLimits = {};
    for (const [p, l] of Object.entries(s.lmLimits ?? {})) this.lmLimits[p] = copyLimit(l);
    this.recent = [...s.recentRequests];
    this.recentSet.clear();
    for (const k of this.recent) this.recentSet.add(k);
    return { ok: true };
  }

  /** A 64-bit FNV-1a digest (hex) of the snapshot: equal on every peer at the same applied index. */
  digest(): string {
    return fnv64(JSON.stringify(this.snapshot()));
  }

  /** Completed task ids of a job (for resuming it). */
  completedTasks(jobId: string): ReadonlySet<string> {
    return this.taskIds.get(jobId) ?? new Set();
  }
}

/** A limit with a fixed key order and no undefined fields (snapshots are compared by digest). */
function copyLimit(l: { rpm?: number | undefined; tpm?: number | undefined; index: number }): LmLimit {
  return { ...(l.rpm !== undefined ? { rpm: l.rpm } : {}), ...(l.tpm !== undefined ? { tpm: l.tpm } : {}), index: l.index };
}

/** 64-bit FNV-1a of a string as 16 hex digits (two 32-bit lanes; not cryptographic). */
export function fnv64(s: string): string {
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0xcbf29ce4 | 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c ^ (h1 >>> 16), 0x01000193);
  }
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}
