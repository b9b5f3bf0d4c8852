// ClusterExecutor: the Executor seam over the cluster. The coordinator leases tasks to
// workers by credit (a worker never holds more than its advertised capacity; any free
// credit gets the next task, so no peer idles while work remains), re-leases a task when
// its lease times out, its peer is lost or the reply is malformed, starts a backup copy of
// a straggler on an idle peer once the queue is empty, and accepts exactly one result per
// task. Results a previous coordinator checkpointed are served without running anything.
import { setMaxListeners } from "node:events";
import { TaskKeys } from "../../engine/evaluate/checkpoint.js";
import { toAsyncIterator, type Executor, type RunOptions, type Task, type TaskBatch, type TaskResult } from "../../engine/evaluate/executor.js";
import { Module } from "../../engine/modules/module.js";
import { programToJSON, type ProgramJSON } from "../../engine/state.js";
import { addUsage, zeroUsage } from "../../engine/lm/types.js";
import { JobError } from "./errors.js";
import { RateBudget, type ProviderBudgets } from "./limits.js";
import type { WorkerPool, WorkerState } from "./pool.js";
import type { JobOptions, JobProgress, RunTaskRequest } from "./wire.js";

/** LM failures that say more about the peer than the task: another peer may succeed. */
const PEER_LOCAL_ERRORS = new Set(["circuit_open", "auth", "config", "rate_limited", "overloaded", "server_error", "timeout", "connection", "no_lm"]);

export interface ClusterExecutorOptions extends JobOptions {
  jobId: string;
  /** Results by task content key, from checkpoints. */
  replay?: ReadonlyMap<string, TaskResult>;
  /** Every accepted result (not replayed ones), for checkpointing. */
  onResult?: (key: string, result: TaskResult, peer: string) => void;
  /** Tries per task before its failure is accepted. Default 5. */
  maxAttempts?: number;
  /** Progress counters, updated in place. */
  progress?: JobProgress;
  /** Give up when no worker has been available for this long. Default 30 s. */
  noWorkerTimeoutMs?: number;
  /** Cluster-wide per-provider LM budgets, shared with the coordinator's other jobs. */
  budgets?: ProviderBudgets;
}

interface Entry {
  task: Task;
  key: string;
  attempts: number;
  tried: Set<string>;
  live: Map<string, { started: number; abort: AbortController }>;
}

export function newProgress(): JobProgress {
  return { done: 0, perPeer: {}, replayed: 0, released: 0, speculative: 0, usage: zeroUsage() };
}

export class ClusterExecutor implements Executor {
  readonly progress: JobProgress;

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: ClusterExecutorOptions,
  ) {
    this.progress = options.progress ?? newProgress();
  }

  get concurrency(): number {
    let c = 0;
    for (const w of this.pool.workers.values()) c += w.capacity;
    return Math.max(1, c);
  }

  async *run(batch: TaskBatch, runOptions: RunOptions = {}): AsyncIterable<TaskResult> {
    const o = this.options;
    const pool = this.pool;
    const progress = this.progress;
    const leaseMs = o.leaseMs ?? 120_000;
    const maxAttempts = o.maxAttempts ?? 5;
    const signal = runOptions.signal;
    if (signal) setMaxListeners(0, signal);
    // Programs travel as JSON; live modules are serialised once per batch.
    const programs: Record<string, ProgramJSON> = {};
    for (const [id, p] of Object.entries(batch.programs)) programs[id] = p instanceof Module ? programToJSON(p) : p;
    const keys = new TaskKeys(programs);
    const iterator = toAsyncIterator(batch.tasks);
    const queue: Entry[] = [];
    /** Tasks pulled but not settled: queued or running. */
    const unfinished = new Set<Entry>();
    const accepted = new Set<string>();
    const out: TaskResult[] = [];
    const durations: number[] = [];
    // The job's own rpm/tpm; the coordinator is the only dispatcher, so pacing here paces the cluster.
    const jobBudget = o.rpm !== undefined || o.tpm !== undefined ? new RateBudget({ rpm: o.rpm, tpm: o.tpm }) : undefined;
    let exhausted = false;
    let pulling = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    let pacingTimer: NodeJS.Timeout | undefined;
    let noWorkerSince: number | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };

    // A remote worker gets `prefetch` x its capacity more tasks than it runs at once: they
    // wait in its own queue (it never runs more than its capacity), so a finished task is
    // followed at once instead of after a round trip to this coordinator.
    const prefetch = o.prefetch ?? 0.25;
    const credits = (w: WorkerState) => (w.local ? w.capacity : w.capacity + Math.ceil(w.capacity * prefetch));
    const free = (w: WorkerState) => credits(w) - w.inflight;
    const freeCredits = () => {
      let n = 0;
      for (const w of pool.workers.values()) n += Math.max(0, free(w));
      return n;
    };
    const avgTokens = () => (progress.done - progress.replayed > 0 ? progress.usage.totalTokens / (progress.done - progress.replayed) : 0);
    const pace = () => {
      if (pacingTimer) return;
      pacingTimer = setTimeout(() => {
        pacingTimer = undefined;
        dispatch();
      }, 50);
    };

    const pick = (e: Entry, blocked?: ReadonlySet<string>): WorkerState | undefined => {
      // A peer that already failed this task gets it again only when every peer has.
      let untried = false;
      for (const w of pool.workers.values()) if (!e.tried.has(w.id)) untried = true;
      let best: WorkerState | undefined;
      let bestScore = -Infinity;
      for (const w of pool.workers.values()) {
        if (free(w) <= 0 || e.live.has(w.id) || (untried && e.tried.has(w.id)) || blocked?.has(w.provider)) continue;
        const score = free(w) / credits(w);
        if (score > bestScore || (score === bestScore && best && w.id < best.id)) {
          best = w;
          bestScore = score;
        }
      }
      return best;
    };

    const settle = (e: Entry, result: TaskResult, peer: string) => {
      accepted.add(e.task.id);
      unfinished.delete(e);
      for (const a of e.live.values()) a.abort.abort();
      e.live.clear();
      progress.done++;
      progress.perPeer[peer] = (progress.perPeer[peer] ?? 0) + 1;
      progress.usage = addUsage(progress.usage, result.usage);
      out.push({ ...result, id: e.task.id });
      o.onResult?.(e.key, { ...result, id: e.task.id }, peer);
      if (o.costBudgetUsd !== undefined && progress.usage.costUsd > o.costBudgetUsd && failure === undefined) {
        failure = new JobError("budget", `job ${o.jobId} stopped: LM cost $${progress.usage.costUsd.toFixed(4)} exceeds its budget of $${o.costBudgetUsd}`);
      }
    };

    const retry = (e: Entry, w: WorkerState, code: string, message: string) => {
      e.attempts++;
      e.tried.add(w.id);
      if (e.live.size > 0) return; // another copy is still running
      if (e.attempts >= maxAttempts) {
        settle(e, { id: e.task.id, ok: false, usage: zeroUsage(), error: { code: "lease_failed", message: `task failed on ${e.attempts} attempts; last: [${code}] ${message}` } }, w.id);
        return;
      }
      progress.released++;
      queue.unshift(e);
    };

    const launch = (e: Entry, w: WorkerState) => {
      const abort = new AbortController();
      const attemptSignal = signal ? AbortSignal.any([abort.signal, signal]) : abort.signal;
      const started = performance.now();
      e.live.set(w.id, { started, abort });
      w.inflight++;
      w.attempts.add(abort);
      const programKey = keys.program(e.task.program);
      const withProgram = !w.sent.has(programKey);
      w.sent.add(programKey);
      const req = { job: o.jobId, programKey, ...(withProgram ? { program: programs[e.task.program] as Record<string, unknown> } : {}), task: e.task as RunTaskRequest["task"] };
      void pool
        .call(w, req, leaseMs, attemptSignal)
        .then(
          (reply) => {
            e.live.delete(w.id);
            if (accepted.has(e.task.id) || abort.signal.aborted) return;
            if ("missingProgram" in reply) {
              // The worker restarted or dropped it from its cache: send the program again.
              w.sent.delete(programKey);
              queue.unshift(e);
              return;
            }
            const r = reply.result as TaskResult;
            if (!r.ok && r.error && PEER_LOCAL_ERRORS.has(r.error.code) && e.attempts + 1 < maxAttempts && pool.workers.size > 1) {
              retry(e, w, r.error.code, r.error.message);
              return;
            }
            durations.push(performance.now() - started);
            if (durations.length > 256) durations.shift();
            settle(e, r, w.id);
          },
          (err: unknown) => {
            e.live.delete(w.id);
            if (accepted.has(e.task.id) || signal?.aborted) return;
            const code = String((err as { code?: unknown }).code ?? "error");
            if (code === "no_lm") pool.drop(w.id);
            if (code === "bad_result") pool.strike(w.id);
            retry(e, w, code, (err as Error).message ?? String(err));
          },
        )
        .finally(() => {
          w.inflight--;
          w.attempts.delete(abort);
          e.live.delete(w.id);
          dispatch();
          notify();
        });
    };

    /** Backup copies for stragglers, only when nothing is queued and a peer has room. */
    const speculate = () => {
      if (queue.length > 0 || unfinished.size === 0) return;
      const sorted = [...durations].sort((a, b) => a - b);
      const median = sorted.length ? sorted[sorted.length >> 1] : 0;
      const threshold = Math.max(2000, 3 * median);
      const now = performance.now();
      for (const e of unfinished) {
        if (e.live.size !== 1) continue;
        const [[, a]] = [...e.live];
        if (now - a.started < threshold) continue;
        const w = pick(e);
        if (!w) return;
        progress.speculative++;
        launch(e, w);
      }
    };

    const dispatch = () => {
      if (signal?.aborted || failure !== undefined) return;
      // Providers whose cluster-wide budget is spent for now: their peers wait, others go on.
      let blocked: Set<string> | undefined;
      while (queue.length > 0) {
        const w = pick(queue[0], blocked);
        if (!w) break;
        const tokens = avgTokens();
        if (o.budgets && !o.budgets.take(w.provider, tokens)) {
          (blocked ??= new Set()).add(w.provider);
          continue;
        }
        if (jobBudget && !jobBudget.take(tokens)) {
          o.budgets?.refund(w.provider, tokens);
          pace();
          break;
        }
        const e = queue.shift()!;
        launch(e, w);
      }
      if (blocked) pace();
      // Backups are the ticker's job: sorting durations on every dispatch cost ~3% of the
      // coordinator's CPU, and the 2 s threshold does not need finer than 500 ms.
      if (queue.length < freeCredits()) void pump();
    };

    const pump = async (): Promise<void> => {
      if (pulling || exhausted) return;
      pulling = true;
      try {
        while (!exhausted && queue.length < Math.max(1, freeCredits()) && !signal?.aborted && failure === undefined) {
          let next: IteratorResult<Task>;
          try {
            next = await iterator.next();
          } catch (e) {
            failure = e;
            break;
          }
          if (next.done) {
            exhausted = true;
            break;
          }
          const task = next.value;
          let key: string;
          try {
            key = keys.key(task);
          } catch (e) {
            failure = e;
            break;
          }
          const hit = o.replay?.get(key);
          if (hit) {
            accepted.add(task.id);
            progress.done++;
            progress.replayed++;
            out.push({ ...hit, id: task.id });
            notify();
            continue;
          }
          const e: Entry = { task, key, attempts: 0, tried: new Set(), live: new Map() };
          unfinished.add(e);
          queue.push(e);
          dispatch();
        }
      } finally {
        pulling = false;
        notify();
      }
    };

    pool.onChange(() => {
      dispatch();
      notify();
    });
    const refresher = setInterval(() => void pool.refresh().then(() => dispatch()), 1000);
    refresher.unref();
    const ticker = setInterval(() => {
      speculate();
      notify();
    }, 500);
    ticker.unref();
    const onAbort = () => notify();
    signal?.addEventListener("abort", onAbort);

    try {
      await pool.refresh();
      void pump();
      while (true) {
        if (out.length > 0) {
          yield out.shift()!;
          if (!pulling) void pump();
          continue;
        }
        if (failure !== undefined) throw failure;
        if (signal?.aborted) throw new JobError("cancelled", "the run was cancelled");
        if (exhausted && !pulling && unfinished.size === 0) break;
        if (pool.workers.size === 0 && unfinished.size > 0) {
          noWorkerSince ??= performance.now();
          if (performance.now() - noWorkerSince > (o.noWorkerTimeoutMs ?? 30_000)) {
            throw new JobError("no_workers", `job ${o.jobId}: no peer can take tasks (none has an LM and the job's metric and modules); start peers with --lm`);
          }
        } else noWorkerSince = undefined;
        await new Promise<void>((res) => (wake = res));
        if (!pulling && out.length === 0) void pump();
      }
    } finally {
      clearInterval(refresher);
      clearInterval(ticker);
      if (pacingTimer) clearTimeout(pacingTimer);
      signal?.removeEventListener("abort", onAbort);
      for (const e of unfinished) for (const a of e.live.values()) a.abort.abort();
    }
  }
}
