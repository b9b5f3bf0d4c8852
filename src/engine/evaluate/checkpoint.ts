// Checkpoints: wrap any Executor so finished task results are appended to a JSONL file,
// and a rerun (after a crash) serves them from the file instead of calling the LM again.
// Results are keyed by a hash of what determines them (program state, example, metric,
// LM settings), not by task id, so a resumed optimizer may number its tasks differently.
import { createHash } from "node:crypto";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { once } from "node:events";
import { DspexError } from "../errors.js";
import { Module } from "../modules/module.js";
import type { ProgramJSON } from "../state.js";
import type { Executor, RunOptions, Task, TaskBatch, TaskResult } from "./executor.js";

export class CheckpointExecutor implements Executor {
  private readonly cache = new Map<string, TaskResult>();
  /** Results served from the file during this object's lifetime. */
  hits = 0;
  /** Lines of the file that could not be read (e.g. torn by a crash) and were skipped. */
  readonly skippedLines: number = 0;

  constructor(
    private readonly inner: Executor,
    readonly path: string,
  ) {
    if (existsSync(path)) {
      const lines = readFileSync(path, "utf8").split("\n");
      let skipped = 0;
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          const rec = JSON.parse(line) as { key: string; result: TaskResult };
          if (typeof rec.key === "string" && rec.result && typeof rec.result.ok === "boolean") this.cache.set(rec.key, rec.result);
          else skipped++;
        } catch {
          skipped++;
        }
      }
      this.skippedLines = skipped;
    }
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  get size(): number {
    return this.cache.size;
  }

  async *run(batch: TaskBatch, options: RunOptions = {}): AsyncIterable<TaskResult> {
    const taskKeys = new TaskKeys(batch.programs);
    const keyOf = (t: Task) => taskKeys.key(t);

    const instant: TaskResult[] = [];
    let signalInstant: (() => void) | undefined;
    const keys = new Map<string, string>();
    const cache = this.cache;
    const self = this;
    async function* misses(): AsyncIterable<Task> {
      for await (const t of batch.tasks as AsyncIterable<Task>) {
        const key = keyOf(t);
        const hit = cache.get(key);
        if (hit && hit.ok) {
          self.hits++;
          instant.push({ ...hit, id: t.id });
          signalInstant?.();
          continue;
        }
        keys.set(t.id, key);
        yield t;
      }
    }

    const out = createWriteStream(this.path, { flags: "a" });
    const it = this.inner.run({ programs: batch.programs, tasks: misses() }, options)[Symbol.asyncIterator]();
    let pending = it.next();
    try {
      while (true) {
        while (instant.length) yield instant.shift()!;
        const waitInstant = new Promise<"instant">((res) => (signalInstant = () => res("instant")));
        const r = await Promise.race([pending, waitInstant]);
        signalInstant = undefined;
        if (r === "instant") continue;
        if (r.done) break;
        pending = it.next();
        const result = r.value;
        const key = keys.get(result.id);
        keys.delete(result.id);
        // Only successes are kept: failures (rate limits, outages) are worth retrying on resume.
        if (key && result.ok) {
          cache.set(key, result);
          if (!out.write(JSON.stringify({ key, result }) + "\n")) await once(out, "drain");
        }
        yield result;
      }
      while (instant.length) yield instant.shift()!;
    } finally {
      out.end();
      await once(out, "finish").catch(() => undefined);
    }
  }
}

/**
 * Content keys of tasks: a hash of what determines a task's result (program state,
 * example, metric, LM settings), so a rerun of an optimizer finds the results of the tasks
 * it asks for again, whatever ids it gives them.
 */
export class TaskKeys {
  private readonly programKeys = new Map<string, string>();
  constructor(private readonly programs: TaskBatch["programs"]) {}

  program(id: string): string {
    let k = this.programKeys.get(id);
    if (k === undefined) {
      const p = this.programs[id];
      if (!p) throw new DspexError("input", `task refers to unknown program '${id}'`);
      k = sha256(stableJson(p instanceof Module ? { kind: p.constructor.name, state: p.dumpState() } : stripMeta(p)));
      this.programKeys.set(id, k);
    }
    return k;
  }

  key(t: Task): string {
    return taskContentKey(this.program(t.program), t);
  }
}

/** A task's content key given its program's key: what a result is checkpointed and replayed under. */
export function taskContentKey(programKey: string, t: Omit<Task, "id" | "program">): string {
  return sha256(
    stableJson({
      program: programKey,
      example: t.example,
      inputKeys: t.inputKeys,
      metric: t.metric ?? null,
      config: t.config ?? null,
      trace: !!t.trace,
      exclude: !!t.excludeExampleFromDemos,
    }),
  );
}

function stripMeta(p: ProgramJSON): unknown {
  const { metadata: _m, ...rest } = p;
  return rest;
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** JSON with sorted object keys, so equal values hash equally. */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(",")}}`;
}
