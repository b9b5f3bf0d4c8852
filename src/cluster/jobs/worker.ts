// The worker side of distributed jobs, on every peer: runs leased tasks with this peer's own
// LM configuration (its keys, its local model server), at most `capacity` at once, and
// answers the coordinator's questions about what it can run. It keeps the results it
// computed for a couple of minutes (the stash): when a coordinator dies, the replies to it
// are lost, and the next coordinator collects them from the stash instead of running the
// tasks (and their LM calls) again.
import { LRUCache } from "lru-cache";
import { z } from "zod";
import { zeroUsage, type LM } from "../../engine/lm/types.js";
import { PreparedProgram, type TaskResult } from "../../engine/evaluate/executor.js";
import { taskContentKey } from "../../engine/evaluate/checkpoint.js";
import { resolveMetric } from "../../engine/evaluate/metrics.js";
import { getRegistry } from "../../engine/registry.js";
import { withSettings } from "../../engine/settings.js";
import type { ProgramJSON } from "../../engine/state.js";
import { errorMessage } from "../../engine/errors.js";
import type { Peer } from "../peer.js";
import { runTaskSchema, stashRequestSchema, workerInfoSchema, type RunTaskReply, type RunTaskRequest, type StashReply, type WorkerInfo } from "./wire.js";

/** How long, and how many, finished results a worker keeps for a new coordinator to collect. */
const STASH_TTL_MS = 120_000;
const STASH_MAX_RESULTS = 5_000;
const STASH_MAX_BYTES = 32 * 1024 * 1024;

export interface WorkerOptions {
  /** The LM this peer's tasks use; without one the peer takes no tasks. */
  lm?: LM;
  capacity: number;
}

export class TaskWorker {
  private readonly programs = new LRUCache<string, PreparedProgram>({ max: 64 });
  /** Successful results by job, then task content key. */
  private readonly stash = new LRUCache<string, { job: string; key: string; result: TaskResult }>({
    max: STASH_MAX_RESULTS,
    maxSize: STASH_MAX_BYTES,
    sizeCalculation: (v) => 256 + JSON.stringify(v.result).length,
    ttl: STASH_TTL_MS,
  });
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  tasksRun = 0;

  constructor(
    private readonly peer: Peer,
    private readonly options: WorkerOptions,
  ) {
    peer.channels.inference.handle("task.run", runTaskSchema, (req) => this.run(req));
    peer.channels.coordination.handle("worker.info", workerInfoSchema, (q) => this.info(q));
    peer.channels.inference.handle("task.stash", stashRequestSchema, (q) => this.stashed(q.job));
  }

  /** The results this peer computed for `job` in the last couple of minutes. */
  stashed(job: string): StashReply {
    const results: StashReply["results"] = [];
    for (const v of this.stash.values()) if (v.job === job) results.push({ key: v.key, result: v.result });
    return { results };
  }

  get capacity(): number {
    return this.options.capacity;
  }

  info(q: z.infer<typeof workerInfoSchema>): WorkerInfo {
    const missing: string[] = [];
    if (q.metric) {
      try {
        resolveMetric(q.metric);
      } catch {
        missing.push(`metric '${q.metric}'`);
      }
    }
    for (const kind of q.modules ?? []) if (!getRegistry().modules.has(kind)) missing.push(`module kind '${kind}'`);
    return { peer: this.peer.id, capacity: this.options.capacity, lm: this.options.lm?.model ?? null, missing, tasksRun: this.tasksRun };
  }

  /** Run one leased task. Never throws for task failures: they come back as results. */
  async run(req: RunTaskRequest): Promise<RunTaskReply> {
    if (!this.options.lm) throw Object.assign(new Error(`peer ${this.peer.id} has no LM configured (start it with --lm)`), { code: "no_lm" });
    let program = this.programs.get(req.programKey);
    if (!program) {
      if (!req.program) return { missingProgram: true };
      // A program that cannot be rebuilt here is a task failure, reported like any other.
      try {
        program = PreparedProgram.from(req.program as ProgramJSON, req.programKey);
      } catch (e) {
        return { result: failed(req.task.id, "program_state", errorMessage(e)) };
      }
      this.programs.set(req.programKey, program);
    }
    await this.acquire();
    this.peer.load.inflight++;
    try {
      const result = await withSettings({ lm: this.options.lm }, () => program.runTask(req.task));
      this.tasksRun++;
      if (result.ok) {
        const key = taskContentKey(req.programKey, req.task);
        this.stash.set(`${req.job}\n${key}`, { job: req.job, key, result });
      }
      const u = this.peer.load.usage;
      this.peer.load.usage = { promptTokens: u.promptTokens + result.usage.promptTokens, completionTokens: u.completionTokens + result.usage.completionTokens, costUsd: u.costUsd + result.usage.costUsd };
      return { result };
    } finally {
      this.peer.load.inflight--;
      this.release();
    }
  }

  private async acquire(): Promise<void> {
    if (this.running < this.options.capacity) {
      this.running++;
      return;
    }
    await new Promise<void>((res) => this.waiting.push(res));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

function failed(id: string, code: string, message: string): TaskResult {
  return { id, ok: false, usage: zeroUsage(), error: { code, message } };
}
