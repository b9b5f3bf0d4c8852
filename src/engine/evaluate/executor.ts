// The Executor seam: evaluation and every optimizer express their work as batches of
// small serialisable tasks (run program P on example i, optionally score it). The
// LocalExecutor runs them in this process; a cluster executor ships the same tasks to
// peers. Results stream back as they finish, in completion order.
import { setMaxListeners } from "node:events";
import { DspexError, errorMessage } from "../errors.js";
import { Example, type Record_ } from "../example.js";
import type { LMSettings, LMUsage } from "../lm/types.js";
import { zeroUsage } from "../lm/types.js";
import { Module } from "../modules/module.js";
import { withSettings, type TraceEntry } from "../settings.js";
import { programFromJSON, type ProgramJSON } from "../state.js";
import { resolveMetric, toScore } from "./metrics.js";
import type { Metric } from "../registry.js";

/** One predictor call inside a task, named by its DSPy path so it can travel as data. */
export interface TraceRecord {
  predictor: string;
  inputs: Record_;
  outputs: Record_;
}

export interface Task {
  /** Unique within the batch; results carry it back. */
  id: string;
  /** Key into TaskBatch.programs. */
  program: string;
  /** The whole example (inputs and labels). */
  example: Record_;
  /** Which example keys are inputs. */
  inputKeys: string[];
  /** Registered metric name; when set, the result carries a score. */
  metric?: string;
  /** LM settings layered over the program's (e.g. rolloutId and temperature). */
  config?: LMSettings;
  /** Record every predictor call (bootstrapping needs the trace). */
  trace?: boolean;
  /** Hide demos equal to this task's example from every predictor (bootstrapping). */
  excludeExampleFromDemos?: boolean;
}

export interface TaskError {
  code: string;
  message: string;
}

export interface TaskResult {
  id: string;
  ok: boolean;
  prediction?: Record_;
  score?: number;
  trace?: TraceRecord[];
  usage: LMUsage;
  error?: TaskError;
}

export interface TaskBatch {
  /** Programs by id: live modules (local only) or program JSON (anywhere). */
  programs: Record<string, Module | ProgramJSON>;
  /** May be lazy: an async iterable lets millions of tasks stream with bounded memory. */
  tasks: Iterable<Task> | AsyncIterable<Task>;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Lower the executor's concurrency for this batch. */
  concurrency?: number;
}

export interface Executor {
  /** How many tasks this executor runs at once at most. */
  readonly concurrency: number;
  run(batch: TaskBatch, options?: RunOptions): AsyncIterable<TaskResult>;
}

/** A program ready to run tasks: rebuilt once per batch, predictor paths resolved once. */
export class PreparedProgram {
  private readonly paths: Map<object, string>;
  private readonly metrics = new Map<string, Metric>();
  constructor(readonly module: Module) {
    this.paths = new Map(module.namedPredictors().map(([path, p]) => [p as object, path]));
  }

  static from(p: Module | ProgramJSON, id: string): PreparedProgram {
    if (p instanceof Module) return new PreparedProgram(p);
    try {
      return new PreparedProgram(programFromJSON(p));
    } catch (e) {
      throw new DspexError("program_state", `program '${id}' cannot be rebuilt: ${errorMessage(e)}`, { cause: e });
    }
  }

  private metric(name: string): Metric {
    let m = this.metrics.get(name);
    if (!m) {
      m = resolveMetric(name);
      this.metrics.set(name, m);
    }
    return m;
  }

  /** Run one task; never throws: failures come back as { ok: false, error }. */
  async runTask(task: Task, signal?: AbortSignal): Promise<TaskResult> {
    const trace: TraceEntry[] | undefined = task.trace || task.metric ? [] : undefined;
    const overrides = {
      ...(trace ? { trace } : {}),
      ...(task.config ? { lmOverrides: task.config } : {}),
      ...(signal ? { signal } : {}),
      ...(task.excludeExampleFromDemos ? { excludeDemo: task.example } : {}),
    };
    let prediction;
    try {
      const example = new Example(task.example, task.inputKeys);
      prediction = await withSettings(overrides, () => this.module.call(example.inputs()));
      const records = trace?.map((t) => ({
        predictor: this.paths.get(t.predictor) ?? "unknown",
        inputs: t.inputs,
        outputs: t.prediction.toDict(),
      }));
      let score: number | undefined;
      if (task.metric) score = toScore(await this.metric(task.metric)(example, prediction, records));
      return {
        id: task.id,
        ok: true,
        prediction: prediction.toDict(),
        ...(score !== undefined ? { score } : {}),
        ...(task.trace ? { trace: records } : {}),
        usage: prediction.usage,
      };
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      return {
        id: task.id,
        ok: false,
        usage: prediction?.usage ?? zeroUsage(),
        error: { code: typeof code === "string" ? code : "error", message: errorMessage(e) },
      };
    }
  }
}

/** Runs tasks concurrently in this process. */
export class LocalExecutor implements Executor {
  readonly concurrency: number;
  constructor(options: { concurrency?: number } = {}) {
    const c = options.concurrency ?? 16;
    if (!Number.isInteger(c) || c < 1) throw new DspexError("config", `concurrency must be a positive integer, got ${c}`);
    this.concurrency = c;
  }

  async *run(batch: TaskBatch, options: RunOptions = {}): AsyncIterable<TaskResult> {
    const limit = Math.max(1, Math.min(this.concurrency, options.concurrency ?? this.concurrency));
    const prepared = new Map<string, PreparedProgram>();
    const programOf = (id: string): PreparedProgram => {
      let p = prepared.get(id);
      if (!p) {
        const src = batch.programs[id];
        if (!src) throw new DspexError("input", `task refers to unknown program '${id}'; known: ${Object.keys(batch.programs).join(", ")}`);
        p = PreparedProgram.from(src, id);
        prepared.set(id, p);
      }
      return p;
    };
    const iterator = toAsyncIterator(batch.tasks);
    const done: TaskResult[] = [];
    let wake: (() => void) | undefined;
    let inFlight = 0;
    let pulling = false;
    let exhausted = false;
    let failure: unknown;
    const signal = options.signal;
    // Every in-flight LM call listens on the signal; that is expected, not a leak.
    if (signal) setMaxListeners(0, signal);
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };

    // Pulls tasks while there is room. It runs beside the consumer loop (never awaited by
    // it): a lazy task source may wait for results before producing more tasks.
    const pump = async (): Promise<void> => {
      if (pulling) return;
      pulling = true;
      try {
        while (!exhausted && inFlight < limit && !signal?.aborted && failure === undefined) {
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
          let program: PreparedProgram;
          try {
            program = programOf(task.program);
          } catch (e) {
            failure = e;
            break;
          }
          inFlight++;
          void program.runTask(task, signal).then((r) => {
            inFlight--;
            done.push(r);
            notify();
          });
        }
      } finally {
        pulling = false;
        notify();
      }
    };

    void pump();
    while (true) {
      if (done.length > 0) {
        yield done.shift()!;
        void pump();
        continue;
      }
      if (failure !== undefined) throw failure;
      if (inFlight === 0 && !pulling && (exhausted || signal?.aborted)) break;
      await new Promise<void>((res) => (wake = res));
      // Deliver finished results before pulling more: a lazy task source decides what
      // to run next from the results it has seen.
      if (!pulling && done.length === 0) void pump();
    }
    if (signal?.aborted) throw new DspexError("input", "the run was cancelled");
  }
}

/** Pull from a sync or async task source through one interface. */
export function toAsyncIterator<T>(src: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> {
  if (Symbol.asyncIterator in (src as object)) return (src as AsyncIterable<T>)[Symbol.asyncIterator]();
  const it = (src as Iterable<T>)[Symbol.iterator]();
  return { next: async () => it.next() };
}
