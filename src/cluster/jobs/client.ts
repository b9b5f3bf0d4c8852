// The programmatic API for distributed jobs: `cluster.evaluate(program, devset, ...)` and
// `cluster.compile(program, ...)`, from a peer (ClusterJobs.local) or from any process that
// can dial one (ClusterJobs.connect). Results have the local runs' types. The job runs on
// the coordinator; this side submits it, follows its progress, survives coordinator
// changes (requests are retried on the new leader; the job itself resumes there), and
// fetches the outcome.
import { randomUUID } from "node:crypto";
import type { EvaluationResult, ExampleResult } from "../../engine/evaluate/evaluate.js";
import { Example, type Record_ } from "../../engine/example.js";
import { Module } from "../../engine/modules/module.js";
import { programFromJSON, programToJSON, type ProgramJSON } from "../../engine/state.js";
import type { OptimizerOptions, OptimizerName } from "../../engine/teleprompt/by_name.js";
import { ChannelError } from "../../../channels/channel.js";
import { openClusterClient, type ClusterClient } from "../client.js";
import { MembersReply } from "../peer.js";
import { JobError } from "./errors.js";
import { METHODS, type JobMethod, type JobService, type JobStats } from "./service.js";
import type { JobOptions, JobProgress, JobSpecInput, JobStatusReply } from "./wire.js";

export type JobTransport = (method: JobMethod, body: unknown, timeoutMs: number) => Promise<unknown>;

/** Errors worth retrying: the coordinator moved or is being elected. */
const TRANSIENT = new Set(["no_leader", "timeout", "connection", "aborted", "not_committed", "not_accepted", "unknown_job", "closed", "stream_closed", "unreachable"]);

export interface FollowOptions {
  onProgress?: (p: { status: JobStatusReply["status"]; progress?: JobProgress; checkpointed: number }) => void;
  signal?: AbortSignal;
  jobId?: string;
  /** Keep retrying an unreachable coordinator this long before giving up. Default 60 s. */
  retryForMs?: number;
  pollMs?: number;
}

export interface ClusterEvaluateOptions extends FollowOptions, JobOptions {
  metric: string;
  inputKeys?: string[];
  maxErrors?: number;
  failureScore?: number;
}

export interface ClusterEvaluation extends EvaluationResult {
  jobId: string;
  /** Per-example results, in devset order. */
  results: ExampleResult[];
  stats: JobStats;
}

export interface ClusterCompileOptions extends FollowOptions, JobOptions {
  optimizer: OptimizerName;
  optimizerOptions?: OptimizerOptions;
  trainset: (Example | Record_)[];
  valset?: (Example | Record_)[];
  metric: string;
  inputKeys?: string[];
}

export interface ClusterCompilation {
  jobId: string;
  program: Module;
  json: ProgramJSON;
  stats: JobStats;
}

export class ClusterJobs {
  constructor(private readonly transport: JobTransport) {}

  /** Jobs submitted through this peer (forwarded to the coordinator when it is not). */
  static local(service: JobService): ClusterJobs {
    return new ClusterJobs((m, b) => service.request(m, b));
  }

  /**
   * Jobs submitted through a peer this process dials (like `dspex eval --join`). Give one
   * or more peers' full addresses; when the peer in use dies, the client moves to another
   * one it was given or learnt from the cluster's member list, and the job carries on.
   */
  static async connect(join: string | string[], clusterKey: Uint8Array | undefined): Promise<ClusterJobs & { close(): Promise<void>; entry(): string }> {
    const entry = new EntryPeer(Array.isArray(join) ? join : [join], clusterKey);
    await entry.open();
    const jobs = new ClusterJobs((m, b, t) => entry.ask(m, b, t, METHODS[m].channel));
    return Object.assign(jobs, { close: () => entry.close(), entry: () => entry.current });
  }

  async evaluate(program: Module | ProgramJSON, devset: Iterable<Example | Record_>, o: ClusterEvaluateOptions): Promise<ClusterEvaluation> {
    const rows = [...devset];
    const spec: JobSpecInput = {
      kind: "evaluate",
      program: toJSON(program),
      devset: rows.map(toRecord),
      metric: o.metric,
      ...inputKeysOf(rows, o.inputKeys),
      ...(o.maxErrors !== undefined ? { maxErrors: o.maxErrors } : {}),
      ...(o.failureScore !== undefined ? { failureScore: o.failureScore } : {}),
      options: jobOptions(o),
    };
    const jobId = await this.submit(spec, o);
    const final = await this.wait(jobId, o);
    const value = final.value as EvaluationResult & { stats: JobStats };
    const results: ExampleResult[] = [];
    while (true) {
      const page = (await this.call("job.results", { jobId, offset: results.length, limit: 1000 }, o)) as { total: number; items: ExampleResult[] };
      results.push(...page.items);
      if (page.items.length === 0 || results.length >= page.total) break;
    }
    const { kind: _k, ...summary } = value as EvaluationResult & { kind?: string; stats: JobStats };
    return { ...summary, jobId, results };
  }

  async compile(program: Module | ProgramJSON, o: ClusterCompileOptions): Promise<ClusterCompilation> {
    const spec: JobSpecInput = {
      kind: "compile",
      program: toJSON(program),
      trainset: o.trainset.map(toRecord),
      ...(o.valset ? { valset: o.valset.map(toRecord) } : {}),
      metric: o.metric,
      ...inputKeysOf(o.trainset, o.inputKeys),
      optimizer: { name: o.optimizer, options: o.optimizerOptions ?? {} },
      options: jobOptions(o),
    };
    const jobId = await this.submit(spec, o);
    const final = await this.wait(jobId, o);
    const value = final.value as { program: ProgramJSON; stats: JobStats };
    return { jobId, program: programFromJSON(value.program), json: value.program, stats: value.stats };
  }

  /** Submit a job; returns its id (retried submits of one id create one job). */
  async submit(spec: JobSpecInput, o: FollowOptions = {}): Promise<string> {
    const jobId = o.jobId ?? randomUUID();
    await this.call("job.submit", { jobId, spec }, o, 30_000);
    return jobId;
  }

  /** Follow a job until it ends; throws a JobError when it failed or was cancelled. */
  async wait(jobId: string, o: FollowOptions = {}): Promise<JobStatusReply> {
    const onAbort = () => void this.cancel(jobId).catch(() => undefined);
    o.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (true) {
        const s = (await this.call("job.status", { jobId }, o)) as JobStatusReply;
        o.onProgress?.({ status: s.status, ...(s.progress ? { progress: s.progress } : {}), checkpointed: s.checkpointed });
        if (s.status === "done") return s;
        if (s.status === "failed") throw new JobError("failed", `job ${jobId} failed: ${s.error ?? "unknown error"}`);
        if (s.status === "cancelled") throw new JobError("cancelled", `job ${jobId} was cancelled`);
        await sleep(o.pollMs ?? 300);
      }
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  async cancel(jobId: string): Promise<void> {
    await this.call("job.cancel", { jobId }, {});
  }

  /** One request, retried across coordinator changes for up to retryForMs. */
  private async call(method: JobMethod, body: unknown, o: FollowOptions, timeoutMs = 15_000): Promise<unknown> {
    const end = performance.now() + (o.retryForMs ?? 60_000);
    let delay = 200;
    while (true) {
      try {
        return await this.transport(method, body, timeoutMs);
      } catch (e) {
        const code = String((e as { code?: unknown }).code ?? "");
        if (!TRANSIENT.has(code) || performance.now() > end) {
          if (e instanceof JobError) throw e;
          throw new JobError(code === "refused" || code === "no_workers" || code === "budget" ? (code as "refused") : "unreachable", (e as Error).message);
        }
        if (o.signal?.aborted) throw new JobError("cancelled", `${method} cancelled`);
        await sleep(delay);
        delay = Math.min(2000, delay * 2);
      }
    }
  }
}

/**
 * The cluster peer a remote client talks through. Its link failing (not an error the peer
 * answered with) means the peer is gone: the next request goes through another member.
 */
class EntryPeer {
  private client: ClusterClient | undefined;
  private reopening: Promise<void> | undefined;
  /** Full addresses (with /p2p/<id>) to try, the given ones first. */
  private readonly known: string[];
  current = "";
  private learntAt = 0;

  constructor(
    given: string[],
    private readonly key: Uint8Array | undefined,
  ) {
    if (given.length === 0) throw new JobError("unreachable", "no peer address to join: pass at least one peer's full address (ending in /p2p/<id>)");
    this.known = [...given];
  }

  /** Dial the first reachable known peer (the given order, then learnt members). */
  async open(): Promise<void> {
    const errors: Error[] = [];
    const start = Math.max(0, this.known.indexOf(this.current) + 1);
    for (let k = 0; k < this.known.length; k++) {
      const addr = this.known[(start + k) % this.known.length]; // the failed peer comes last
      try {
        this.client = await openClusterClient(addr, this.key, 5000);
        this.current = addr;
        void this.learn();
        return;
      } catch (e) {
        errors.push(e as Error);
      }
    }
    // At connect time, one address: its own error (it names the address and the likely fix).
    if (this.current === "") throw errors.length === 1 ? errors[0] : new JobError("unreachable", errors.map((e) => e.message).join("; "));
    throw Object.assign(new Error(`no cluster peer reachable: ${errors.map((e) => e.message).join("; ")}`), { code: "unreachable" });
  }

  async ask(method: string, body: unknown, timeoutMs: number, channel: "coordination" | "inference"): Promise<unknown> {
    if (!this.client) await (this.reopening ??= this.open().finally(() => (this.reopening = undefined)));
    const client = this.client!;
    try {
      const r = await client.ask(method, body, { timeoutMs, channel });
      if (performance.now() - this.learntAt > 10_000) void this.learn();
      return r;
    } catch (e) {
      if (e instanceof ChannelError && !e.remote && e.code === "connection" && this.client === client) {
        this.client = undefined;
        void client.close().catch(() => undefined);
      }
      throw e;
    }
  }

  /** Remember the cluster's members, so the client can move when its peer dies. */
  private async learn(): Promise<void> {
    this.learntAt = performance.now();
    const reply = MembersReply.safeParse(await this.client?.ask("members", null, { timeoutMs: 5000 }).catch(() => undefined));
    if (!reply.success) return;
    for (const m of reply.data.members) {
      for (const a of m.addrs) {
        const full = a.includes("/p2p/") ? a : `${a}/p2p/${m.id}`;
        if (!this.known.includes(full)) this.known.push(full);
      }
    }
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }
}

function toJSON(p: Module | ProgramJSON): Record<string, unknown> {
  return (p instanceof Module ? programToJSON(p) : p) as Record<string, unknown>;
}

function toRecord(e: Example | Record_): Record_ {
  return e instanceof Example ? e.toDict() : e;
}

/** Examples built withInputs() carry their input keys; the job needs them as data. */
function inputKeysOf(rows: (Example | Record_)[], given?: string[]): { inputKeys?: string[] } {
  if (given) return { inputKeys: given };
  const first = rows[0];
  if (first instanceof Example && first.inputKeys) return { inputKeys: [...first.inputKeys] };
  return {};
}

function jobOptions(o: JobOptions): JobOptions {
  const out: JobOptions = {};
  if (o.leaseMs !== undefined) out.leaseMs = o.leaseMs;
  if (o.costBudgetUsd !== undefined) out.costBudgetUsd = o.costBudgetUsd;
  if (o.rpm !== undefined) out.rpm = o.rpm;
  if (o.tpm !== undefined) out.tpm = o.tpm;
  if (o.prefetch !== undefined) out.prefetch = o.prefetch;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
