// Wire shapes of distributed jobs, checked with zod on receipt. Tasks and programs travel
// as data (program JSON, example records, metric names); no code ever crosses the wire.
import { z } from "zod";
import { optimizerSpecSchema } from "../../engine/teleprompt/by_name.js";

const name = z.string().min(1).max(256);
const record = z.record(z.string().max(256), z.unknown());
const usage = z.object({
  promptTokens: z.number().nonnegative(),
  completionTokens: z.number().nonnegative(),
  totalTokens: z.number().nonnegative(),
  costUsd: z.number().nonnegative(),
});

export const taskSchema = z.strictObject({
  id: z.string().max(256),
  program: z.string().max(256),
  example: record,
  inputKeys: z.array(z.string().max(256)).max(1000),
  metric: name.optional(),
  config: record.optional(),
  trace: z.boolean().optional(),
  excludeExampleFromDemos: z.boolean().optional(),
});

/** Coordinator → worker (inference channel): run one task. */
export const runTaskSchema = z.strictObject({
  job: z.string().max(256),
  /** Content key of the program; its JSON is sent the first time a worker needs it. */
  programKey: z.string().max(128),
  program: record.optional(),
  task: taskSchema,
});
export type RunTaskRequest = z.infer<typeof runTaskSchema>;

export const traceSchema = z.array(z.strictObject({ predictor: z.string().max(1024), inputs: record, outputs: record })).max(10_000);

/** Worker → coordinator: a task's result (validated; a malformed one is ignored and the task re-leased). */
export const taskResultSchema = z.strictObject({
  id: z.string().max(256),
  ok: z.boolean(),
  prediction: record.optional(),
  score: z.number().finite().optional(),
  trace: traceSchema.optional(),
  usage,
  error: z.strictObject({ code: z.string().max(128), message: z.string().max(8192) }).optional(),
});

export const runTaskReplySchema = z.union([z.strictObject({ result: taskResultSchema }), z.strictObject({ missingProgram: z.literal(true) })]);
export type RunTaskReply = z.infer<typeof runTaskReplySchema>;

/** A new coordinator → workers: the job's results they computed recently (their replies may have gone to a dead coordinator). */
export const stashRequestSchema = z.strictObject({ job: z.string().max(256) });
export const stashReplySchema = z.strictObject({ results: z.array(z.strictObject({ key: z.string().max(128), result: taskResultSchema })).max(10_000) });
export type StashReply = z.infer<typeof stashReplySchema>;

/** What a coordinator asks a worker before leasing it tasks of a job. */
export const workerInfoSchema = z.strictObject({ metric: name.optional(), modules: z.array(name).max(1000).optional() });
export const workerInfoReplySchema = z.strictObject({
  peer: z.string().max(128),
  capacity: z.number().int().min(1).max(100_000),
  lm: z.string().max(256).nullable(),
  /** Names from the question this peer cannot resolve (unregistered metric or module kind). */
  missing: z.array(z.string().max(512)).max(1000),
  tasksRun: z.number().int().nonnegative(),
});
export type WorkerInfo = z.infer<typeof workerInfoReplySchema>;

const programJson = record;
const dataset = z.array(record).max(1_000_000);

/** Knobs of a job that are not part of its result: how it runs. */
export const jobOptionsSchema = z.strictObject({
  /** A lease not answered within this time is given to another peer. */
  leaseMs: z.number().int().min(100).max(3_600_000).optional(),
  /** Stop the job (failed) once the LM cost summed over all peers exceeds this (US dollars). */
  costBudgetUsd: z.number().nonnegative().optional(),
  /** Cluster-wide budget of task starts per minute (≈ LM requests for single-call programs). */
  rpm: z.number().positive().optional(),
  /** Cluster-wide token budget per minute, paced from the tokens tasks have used so far. */
  tpm: z.number().positive().optional(),
  /**
   * Tasks a remote worker may hold beyond its capacity, as a fraction of it (default 0.25;
   * 0 = none). They wait in the worker's queue, so it starts the next task without a round
   * trip to the coordinator.
   */
  prefetch: z.number().min(0).max(4).optional(),
});
export type JobOptions = z.infer<typeof jobOptionsSchema>;

export const evaluateSpecSchema = z.strictObject({
  kind: z.literal("evaluate"),
  program: programJson,
  devset: dataset,
  metric: name,
  inputKeys: z.array(name).max(1000).optional(),
  maxErrors: z.number().int().nonnegative().optional(),
  failureScore: z.number().finite().optional(),
  options: jobOptionsSchema.default({}),
});

export const compileSpecSchema = z.strictObject({
  kind: z.literal("compile"),
  program: programJson,
  trainset: dataset,
  valset: dataset.optional(),
  metric: name,
  inputKeys: z.array(name).max(1000).optional(),
  optimizer: optimizerSpecSchema,
  options: jobOptionsSchema.default({}),
});

export const jobSpecSchema = z.discriminatedUnion("kind", [evaluateSpecSchema, compileSpecSchema]);
export type JobSpec = z.infer<typeof jobSpecSchema>;
export type JobSpecInput = z.input<typeof jobSpecSchema>;

export const submitSchema = z.strictObject({ jobId: name, spec: z.unknown() });
export const jobIdSchema = z.strictObject({ jobId: name });
export const resultPageSchema = z.strictObject({ jobId: name, offset: z.number().int().nonnegative(), limit: z.number().int().min(1).max(10_000) });

export interface JobProgress {
  done: number;
  total?: number;
  /** Accepted task results per peer id. */
  perPeer: Record<string, number>;
  /** Results served from checkpoints (work a previous coordinator finished). */
  replayed: number;
  /** Leases given again after a timeout, a lost peer or a bad reply. */
  released: number;
  /** Extra copies of slow tasks started on idle peers; the first result wins. */
  speculative: number;
  usage: z.infer<typeof usage>;
}

export interface JobStatusReply {
  jobId: string;
  status: "pending" | "running" | "done" | "failed" | "cancelled";
  error?: string;
  leader: string;
  progress?: JobProgress;
  /** Checkpointed (replicated) task results. */
  checkpointed: number;
  /** The job's outcome once done (an evaluation summary, or the compiled program). */
  value?: unknown;
}

/** Largest job spec accepted (it is replicated through Raft in one log entry). */
export const MAX_SPEC_BYTES = 768 * 1024;
