// Distributed jobs on a peer. Every peer is a worker (TaskWorker) and answers job requests;
// a peer that is not the Raft leader forwards them to the leader, which is the coordinator:
// it admits a job (refusing it up front when some peer cannot run it), replicates the job
// record, runs Evaluate or the optimizer over a ClusterExecutor, and checkpoints every
// accepted result into the replicated record in small batches. A newly elected leader finds
// running jobs in the replicated state and runs them again with those results replayed, so
// finished tasks are not redone and the deterministic optimizers reach the same program.
import { randomUUID } from "node:crypto";
import { peerIdFromString } from "@libp2p/peer-id";
import { LRUCache } from "lru-cache";
import { z } from "zod";
import { stableJson } from "../../engine/evaluate/checkpoint.js";
import { Evaluate, type EvaluationResult, type ExampleResult } from "../../engine/evaluate/evaluate.js";
import type { TaskResult } from "../../engine/evaluate/executor.js";
import { errorMessage } from "../../engine/errors.js";
import type { LM } from "../../engine/lm/types.js";
import { withSettings } from "../../engine/settings.js";
import { programFromJSON, programToJSON, type ProgramJSON } from "../../engine/state.js";
import { createOptimizer } from "../../engine/teleprompt/by_name.js";
import { encodeFrame } from "../../../channels/codec.js";
import { FINISHED_JOBS_WITH_RESULTS, fnv64, type JobRecord } from "../../consensus/cluster_state.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type { Peer } from "../peer.js";
import type { RaftDriver } from "../raft_driver.js";
import { ClusterExecutor, newProgress } from "./cluster_executor.js";
import { JobError } from "./errors.js";
import { ProviderBudgets } from "./limits.js";
import { WorkerPool, askInfo, type Question } from "./pool.js";
import { TaskWorker } from "./worker.js";
import { MAX_SPEC_BYTES, jobIdSchema, jobSpecSchema, resultPageSchema, stashReplySchema, submitSchema, type JobProgress, type JobSpec, type JobStatusReply, type StashReply } from "./wire.js";

/** How long a resuming coordinator waits for each worker's stash of finished results. */
const STASH_COLLECT_TIMEOUT_MS = 3_000;

export interface JobServiceOptions {
  lm?: LM;
  capacity: number;
  logger?: Logger;
  /**
   * Results per checkpoint entry at most (also capped at ~48 KB). Default 25: results not yet
   * committed are work a new coordinator redoes, and at ~1,000 tasks/s (5 local peers) 100 per
   * entry lost ~10% of a compile's LM calls when its coordinator was killed.
   */
  checkpointBatch?: number;
  /** Longest a result waits before it is checkpointed. Default 100 ms. */
  checkpointMs?: number;
}

/** Who did the work: accepted results per peer, and how the coordinator(s) got them. */
export interface JobStats {
  perPeer: Record<string, number>;
  replayed: number;
  released: number;
  speculative: number;
}

export type JobValue = (({ kind: "evaluate" } & EvaluationResult) | { kind: "compile"; program: ProgramJSON }) & { stats: JobStats };

interface Runner {
  abort: AbortController;
  progress: JobProgress;
  done: Promise<void>;
}

/** The client-facing methods; each forwards to the leader's "leader.*" twin. */
export const METHODS = {
  "job.submit": { leader: "leader.submit", schema: submitSchema, channel: "coordination" },
  "job.status": { leader: "leader.status", schema: jobIdSchema, channel: "coordination" },
  "job.cancel": { leader: "leader.cancel", schema: jobIdSchema, channel: "coordination" },
  "job.results": { leader: "leader.results", schema: resultPageSchema, channel: "inference" },
} as const;
export type JobMethod = keyof typeof METHODS;

export class JobService {
  readonly worker: TaskWorker;
  private readonly runners = new Map<string, Runner>();
  /** Finished jobs' per-example results, kept for result pages (rebuilt from checkpoints if missing). */
  private readonly finished = new LRUCache<string, ExampleResult[]>({ max: 16 });
  private readonly rebuilding = new Map<string, Promise<ExampleResult[]>>();
  private readonly log: Logger;
  private readonly timer: NodeJS.Timeout;
  private cachedLeader: { id: string; at: number } | undefined;
  /** Cluster-wide per-provider LM budgets (committed limits), shared by every job run here. */
  private readonly budgets = new ProviderBudgets();
  private stopped = false;

  constructor(
    readonly peer: Peer,
    readonly raft: RaftDriver | undefined,
    private readonly options: JobServiceOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.worker = new TaskWorker(peer, { capacity: options.capacity, ...(options.lm ? { lm: options.lm } : {}) });
    for (const [method, m] of Object.entries(METHODS)) {
      peer.channels[m.channel].handle(method, m.schema, (body) => this.request(method as JobMethod, body));
      peer.channels[m.channel].handle(m.leader, m.schema, (body) => this.lead(method as JobMethod, body));
    }
    raft?.onApply(() => this.reconcile());
    this.timer = setInterval(() => this.reconcile(), 500);
    this.timer.unref();
  }

  /** Handle a client request here if this peer coordinates, else forward it to the leader. */
  async request(method: JobMethod, body: unknown): Promise<unknown> {
    if (this.raft?.isLeader()) return this.lead(method, body);
    const leader = await this.leader();
    const m = METHODS[method];
    return await this.peer.channels[m.channel].request(peerIdFromString(leader), m.leader, body, { timeoutMs: method === "job.submit" ? 30_000 : 15_000 });
  }

  /** The current coordinator: Raft's leader, or (on a peer without Raft) the one peers report. */
  async leader(): Promise<string> {
    const known = this.raft?.status().lead;
    if (known) return known;
    if (this.raft) throw new JobError("no_leader", "no coordinator is elected right now (Raft election in progress); retry in a moment");
    if (this.cachedLeader && performance.now() - this.cachedLeader.at < 1000) return this.cachedLeader.id;
    let best: { id: string; term: number } | undefined;
    await Promise.all(
      (await this.peer.dspexPeers()).map(async (p) => {
        const s = (await this.peer.channels.coordination.request(p, "status", null, { timeoutMs: 3000 }).catch(() => undefined)) as { leader?: string | null; term?: number } | undefined;
        if (s?.leader && (!best || (s.term ?? 0) > best.term)) best = { id: s.leader, term: s.term ?? 0 };
      }),
    );
    if (!best) throw new JobError("no_leader", "no peer in reach knows a coordinator: the cluster needs peers running Raft (dspex peer --voters ...)");
    this.cachedLeader = { id: best.id, at: performance.now() };
    return best.id;
  }

  private async lead(method: JobMethod, body: unknown): Promise<unknown> {
    const raft = this.raft;
    if (!raft?.isLeader()) throw new JobError("no_leader", `peer ${this.peer.id} is not the coordinator any more; retry`);
    switch (method) {
      case "job.submit":
        return await this.submit(body as z.infer<typeof submitSchema>);
      case "job.status":
        return this.status((body as { jobId: string }).jobId);
      case "job.cancel": {
        const { jobId } = body as { jobId: string };
        const r = await raft.proposeAndWait({ type: "setJobStatus", jobId, status: "cancelled", requestId: `cancel:${jobId}` });
        if (!r.ok) throw new JobError("refused", r.message);
        this.runners.get(jobId)?.abort.abort();
        return { cancelled: true };
      }
      case "job.results":
        return await this.results(body as z.infer<typeof resultPageSchema>);
    }
  }

  private async submit(req: z.infer<typeof submitSchema>): Promise<{ accepted: true; jobId: string }> {
    const raft = this.raft!;
    const existing = raft.state.jobs.get(req.jobId);
    if (existing) return { accepted: true, jobId: req.jobId }; // a retried submit
    const parsed = jobSpecSchema.safeParse(req.spec);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new JobError("refused", `invalid job spec${i?.path.length ? ` at ${i.path.join(".")}` : ""}: ${i?.message ?? "bad input"}`);
    }
    const spec = parsed.data;
    const size = encodeFrame(spec).length;
    if (size > MAX_SPEC_BYTES) {
      throw new JobError("refused", `job spec is ${size} bytes; the limit is ${MAX_SPEC_BYTES} (it is replicated in one Raft entry): split the dataset into several jobs`);
    }
    try {
      programFromJSON(spec.program as ProgramJSON);
    } catch (e) {
      throw new JobError("refused", `the job's program cannot be rebuilt: ${errorMessage(e)}`);
    }
    // Refuse up front when some peer could not run the job's tasks, naming the peer.
    const question = questionOf(spec);
    const problems: string[] = [];
    let workers = 0;
    const local = this.worker.info(question);
    if (local.missing.length) problems.push(`peer ${this.peer.id} lacks ${local.missing.join(" and ")} (it is the coordinator)`);
    if (local.lm) workers++;
    await Promise.all(
      (await this.peer.dspexPeers()).map(async (p) => {
        const info = await askInfo(this.peer, p.toString(), question).catch(() => undefined);
        if (!info) return;
        if (info.missing.length) problems.push(`peer ${info.peer} lacks ${info.missing.join(" and ")}`);
        if (info.lm) workers++;
      }),
    );
    if (problems.length) {
      throw new JobError("refused", `job refused: ${problems.join("; ")}. Register them on every peer (dspex peer --plugin <file>) or use a built-in name`);
    }
    if (workers === 0) throw new JobError("no_workers", "no peer has an LM to run tasks: start peers with --lm (e.g. --lm sim, or --lm openai/<model>)");
    const r = await raft.proposeAndWait({ type: "createJob", jobId: req.jobId, spec: spec as never, requestId: `create:${req.jobId}` }, 15_000);
    if (!r.ok) throw new JobError("refused", r.message);
    this.log.info("job accepted", { job: req.jobId, kind: spec.kind });
    this.reconcile();
    return { accepted: true, jobId: req.jobId };
  }

  private status(jobId: string): JobStatusReply {
    const job = this.raft!.state.jobs.get(jobId);
    if (!job) throw new JobError("unknown_job", `no job ${jobId} on this cluster`);
    const runner = this.runners.get(jobId);
    return {
      jobId,
      status: job.status,
      ...(job.error ? { error: job.error } : {}),
      leader: this.peer.id,
      ...(runner ? { progress: runner.progress } : {}),
      checkpointed: job.completed,
      ...(job.status === "done" && job.result !== undefined ? { value: job.result } : {}),
    };
  }

  private async results(req: z.infer<typeof resultPageSchema>): Promise<{ total: number; items: ExampleResult[] }> {
    const job = this.raft!.state.jobs.get(req.jobId);
    if (!job) throw new JobError("unknown_job", `no job ${req.jobId} on this cluster`);
    if (job.status !== "done") throw new JobError("refused", `job ${req.jobId} is ${job.status}; results are served once it is done`);
    let all = this.finished.get(req.jobId);
    if (!all && job.trimmed) {
      throw new JobError("refused", `per-example results of job ${req.jobId} are no longer kept (the cluster keeps them for its ${FINISHED_JOBS_WITH_RESULTS} newest finished jobs); its summary is still in its status`);
    }
    if (!all) {
      // Finished under another coordinator: rebuild from the replicated checkpoints (no LM calls).
      let p = this.rebuilding.get(req.jobId);
      if (!p) {
        p = this.execute(job, new AbortController().signal, newProgress(), false).then((x) => x.examples ?? []);
        this.rebuilding.set(req.jobId, p);
        p.finally(() => this.rebuilding.delete(req.jobId)).catch(() => undefined);
      }
      all = await p;
      this.finished.set(req.jobId, all);
    }
    return { total: all.length, items: all.slice(req.offset, req.offset + req.limit) };
  }

  /** Start runners for unfinished jobs when leading; stop them when not. */
  private reconcile(): void {
    if (this.stopped || !this.raft) return;
    const leading = this.raft.isLeader();
    for (const [id, r] of this.runners) {
      const job = this.raft.state.jobs.get(id);
      if (!leading || !job || job.status === "cancelled" || job.status === "failed") r.abort.abort();
    }
    if (!leading) return;
    this.budgets.configure(this.raft.state.lmLimits);
    for (const job of this.raft.state.jobs.values()) {
      if ((job.status === "pending" || job.status === "running") && !this.runners.has(job.jobId)) this.start(job);
    }
    for (const [id, r] of this.runners) this.peer.load.progress[id.slice(0, 128)] = { done: r.progress.done, ...(r.progress.total !== undefined ? { total: r.progress.total } : {}) };
  }

  private start(job: JobRecord): void {
    const raft = this.raft!;
    const abort = new AbortController();
    const progress = newProgress();
    const runner: Runner = { abort, progress, done: Promise.resolve() };
    this.runners.set(job.jobId, runner);
    runner.done = (async () => {
      try {
        if (job.status === "pending") {
          const r = await raft.proposeAndWait({ type: "setJobStatus", jobId: job.jobId, status: "running", requestId: `running:${job.jobId}` });
          if (!r.ok) throw new JobError("refused", r.message);
        }
        const { value, examples } = await this.execute(job, abort.signal, progress, true);
        if (examples) this.finished.set(job.jobId, examples);
        const r = await raft.proposeAndWait({ type: "setJobStatus", jobId: job.jobId, status: "done", result: value as never, requestId: `done:${job.jobId}` }, 30_000);
        if (!r.ok) throw new JobError("refused", r.message);
        this.log.info("job done", { job: job.jobId, replayed: progress.replayed, released: progress.released, speculative: progress.speculative });
      } catch (e) {
        if (abort.signal.aborted) {
          this.log.info("job runner stopped", { job: job.jobId, reason: raft.isLeader() ? "cancelled" : "not the leader any more" });
          return;
        }
        this.log.warn("job failed", { job: job.jobId, error: errorMessage(e) });
        await raft
          .proposeAndWait({ type: "setJobStatus", jobId: job.jobId, status: "failed", error: errorMessage(e).slice(0, 4000), requestId: `failed:${job.jobId}` })
          .catch(() => undefined);
      } finally {
        this.runners.delete(job.jobId);
        delete this.peer.load.progress[job.jobId.slice(0, 128)];
      }
    })();
  }

  /**
   * Results of `jobId` that workers (this peer's included) computed recently, by task content
   * key, except those already in `known`; added to `known`. Workers that do not answer within
   * a few seconds are skipped: their tasks just run again.
   */
  private async collectStashes(jobId: string, known: Map<string, TaskResult>): Promise<Map<string, TaskResult>> {
    const found = new Map<string, TaskResult>();
    const take = (reply: StashReply) => {
      for (const { key, result } of reply.results) {
        if (known.has(key) || !result.ok) continue;
        known.set(key, result as TaskResult);
        found.set(key, result as TaskResult);
      }
    };
    take(this.worker.stashed(jobId));
    const peers = await this.peer.dspexPeers().catch(() => []);
    await Promise.all(
      peers.map(async (p) => {
        try {
          take(stashReplySchema.parse(await this.peer.channels.inference.request(p, "task.stash", { job: jobId }, { timeoutMs: STASH_COLLECT_TIMEOUT_MS })));
        } catch {
          // Gone, slow, or an older peer without a stash.
        }
      }),
    );
    return found;
  }

  /**
   * Run a job's spec over the cluster, replaying checkpointed results. With `checkpoint`
   * off it only rebuilds a finished job's outputs from its checkpoints.
   */
  private async execute(job: JobRecord, signal: AbortSignal, progress: JobProgress, checkpoint: boolean): Promise<{ value: JobValue; examples?: ExampleResult[] }> {
    const spec = jobSpecSchema.parse(job.spec);
    const replay = new Map<string, TaskResult>();
    for (const b of job.checkpoints) for (const t of b.tasks) if (t.result !== undefined) replay.set(t.taskId, t.result as unknown as TaskResult);
    const checkpointer = checkpoint ? new Checkpointer(this.raft!, job.jobId, this.options.checkpointBatch ?? 25, this.options.checkpointMs ?? 100) : undefined;
    // A job that ran before under another coordinator: the replies its workers sent to that
    // coordinator after the last checkpoint were lost with it, but the workers kept them.
    if (checkpointer && job.checkpoints.length > 0) {
      const found = await this.collectStashes(job.jobId, replay);
      for (const [key, r] of found) checkpointer.add(key, r);
      if (found.size > 0) this.log.info("job results collected from workers", { job: job.jobId, results: found.size });
    }
    const pool = new WorkerPool(this.peer, this.worker, questionOf(spec), this.options.lm !== undefined);
    const executor = new ClusterExecutor(pool, {
      ...spec.options,
      budgets: this.budgets,
      jobId: job.jobId,
      replay,
      progress,
      ...(checkpointer ? { onResult: (key: string, r: TaskResult) => checkpointer.add(key, r) } : {}),
    });
    try {
      const run = async (): Promise<{ value: JobValue; examples?: ExampleResult[] }> => {
        if (spec.kind === "evaluate") {
          progress.total = spec.devset.length;
          const examples: ExampleResult[] = [];
          const r = await new Evaluate({
            devset: spec.devset,
            metric: spec.metric,
            executor,
            progress: false,
            signal,
            onResult: (x) => void examples.push(x),
            ...(spec.inputKeys ? { inputKeys: spec.inputKeys } : {}),
            ...(spec.maxErrors !== undefined ? { maxErrors: spec.maxErrors } : {}),
            ...(spec.failureScore !== undefined ? { failureScore: spec.failureScore } : {}),
          }).run(spec.program as ProgramJSON);
          examples.sort((a, b) => a.index - b.index);
          return { value: { kind: "evaluate", ...r, stats: statsOf(progress) }, examples };
        }
        const student = programFromJSON(spec.program as ProgramJSON);
        const optimizer = createOptimizer(spec.optimizer.name, spec.metric, spec.optimizer.options);
        const compiled = await optimizer.compile(student, {
          trainset: spec.trainset,
          ...(spec.valset ? { valset: spec.valset } : {}),
          ...(spec.inputKeys ? { inputKeys: spec.inputKeys } : {}),
          executor,
          signal,
          progress: false,
        });
        return { value: { kind: "compile", program: programToJSON(compiled), stats: statsOf(progress) } };
      };
      // Optimizers that call the LM themselves (MIPROv2's proposals) use this peer's LM.
      const out = this.options.lm ? await withSettings({ lm: this.options.lm }, run) : await run();
      await checkpointer?.flush();
      return out;
    } finally {
      checkpointer?.close();
      pool.close();
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const r of this.runners.values()) r.abort.abort();
  }
}

function statsOf(p: JobProgress): JobStats {
  return { perPeer: { ...p.perPeer }, replayed: p.replayed, released: p.released, speculative: p.speculative };
}

function questionOf(spec: JobSpec): Question {
  const modules = new Set<string>();
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if (typeof o.kind === "string" && o.config && typeof o.config === "object") modules.add(o.kind);
    for (const x of Object.values(o)) walk(x);
  };
  walk((spec.program as { dspex?: { program?: unknown } }).dspex?.program);
  return { metric: spec.metric, modules: [...modules] };
}

/** Batches accepted results into checkpoint commands (≤ ~48 KB each), one proposal at a time. */
class Checkpointer {
  private buf: Array<{ taskId: string; digest: string; result: unknown }> = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(
    private readonly raft: RaftDriver,
    private readonly jobId: string,
    private readonly maxBatch: number,
    private readonly maxDelayMs: number,
  ) {}

  add(key: string, r: TaskResult): void {
    // Failures are not kept: a resumed job tries them again (as a local checkpoint file does).
    if (!r.ok) return;
    const { id: _id, ...rest } = r;
    // One serialisation gives both the digest and a plain-data copy for the Raft entry.
    const json = stableJson(rest);
    const result = JSON.parse(json) as unknown;
    this.buf.push({ taskId: key, digest: fnv64(json), result });
    this.bytes += json.length + 100;
    if (this.buf.length >= this.maxBatch || this.bytes >= 48 * 1024) this.cut();
    else this.timer ??= setTimeout(() => this.cut(), this.maxDelayMs);
  }

  private cut(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buf.length === 0) return;
    const tasks = this.buf;
    this.buf = [];
    this.bytes = 0;
    this.chain = this.chain.then(async () => {
      try {
        await this.raft.proposeAndWait({ type: "checkpoint", jobId: this.jobId, tasks: tasks as never, requestId: `ckpt:${randomUUID()}` }, 15_000);
      } catch {
        // Not committed (leader change): the next coordinator reruns these tasks.
        this.failures++;
      }
    });
  }

  async flush(): Promise<void> {
    this.cut();
    await this.chain;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
