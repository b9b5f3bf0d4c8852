// Evaluate: score a program over a devset through an Executor, streaming per-example
// results to a callback or JSONL file instead of keeping them, with an error budget.
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import { DspexError } from "../errors.js";
import { Example, type Record_ } from "../example.js";
import { addUsage, zeroUsage, type LMUsage } from "../lm/types.js";
import { Module } from "../modules/module.js";
import { programFromJSON, type ProgramJSON } from "../state.js";
import { LocalExecutor, type Executor, type Task, type TaskResult } from "./executor.js";
import { chooseProgress, type Progress } from "./progress.js";

export interface EvaluateOptions {
  devset: Iterable<Example | Record_> | AsyncIterable<Example | Record_>;
  /** Registered metric name (built-ins: exact_match, answer_exact_match, f1, contains, passage_match, numeric). */
  metric: string;
  /** Input keys for examples that do not carry withInputs(); default: the program's first predictor's inputs. */
  inputKeys?: string[];
  executor?: Executor;
  concurrency?: number;
  /** Stop after more than this many failed examples (DSPy's max_errors). Default 10. */
  maxErrors?: number;
  /** Score given to examples that failed (DSPy's failure_score). Default 0. */
  failureScore?: number;
  progress?: boolean | "auto" | Progress;
  /** Called for every example result as it arrives (in completion order). */
  onResult?: (r: ExampleResult) => void | Promise<void>;
  /** Append every example result as a JSON line to this file. */
  resultsFile?: string;
  signal?: AbortSignal;
}

export interface ExampleResult {
  index: number;
  example: Record_;
  prediction?: Record_;
  score: number;
  error?: { code: string; message: string };
}

export interface EvaluationResult {
  /** Percentage, rounded to 2 decimals, like DSPy's EvaluationResult.score. */
  score: number;
  /** Sum of scores / total, in [0, 1] for 0/1 metrics. */
  mean: number;
  total: number;
  sum: number;
  errors: number;
  usage: LMUsage;
  durationMs: number;
}

export class Evaluate {
  constructor(private readonly options: EvaluateOptions) {
    if (!options || typeof options.metric !== "string") throw new DspexError("config", "Evaluate needs { devset, metric } (metric is a registered name)");
  }

  async run(program: Module | ProgramJSON, overrides: Partial<EvaluateOptions> = {}): Promise<EvaluationResult> {
    const o = { ...this.options, ...overrides };
    const executor = o.executor ?? new LocalExecutor({ concurrency: o.concurrency ?? 16 });
    const maxErrors = o.maxErrors ?? 10;
    const failureScore = o.failureScore ?? 0;
    const progress = chooseProgress(o.progress ?? "auto");
    const started = performance.now();
    const defaultInputs = o.inputKeys ?? defaultInputKeys(program);
    const total = Array.isArray(o.devset) ? o.devset.length : undefined;
    const examples: Record_[] = []; // only examples in flight are kept (released on result)
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    o.signal?.addEventListener("abort", onOuterAbort);

    async function* tasks(): AsyncIterable<Task> {
      let index = 0;
      for await (const raw of o.devset as AsyncIterable<Example | Record_>) {
        const ex = raw instanceof Example ? raw : new Example(raw);
        const data = ex.toDict();
        examples[index] = data;
        yield { id: String(index), program: "p", example: data, inputKeys: ex.inputKeys ? [...ex.inputKeys] : defaultInputs, metric: o.metric };
        index++;
      }
    }

    let out: WriteStream | undefined;
    if (o.resultsFile) out = createWriteStream(o.resultsFile, { flags: "w" });
    let done = 0;
    let sum = 0;
    let errors = 0;
    let usage = zeroUsage();
    let firstError: TaskResult["error"];
    progress.start(total, "Evaluating");
    try {
      for await (const r of executor.run({ programs: { p: program }, tasks: tasks() }, { signal: abort.signal })) {
        const index = Number(r.id);
        const score = r.ok ? (r.score ?? 0) : failureScore;
        done++;
        sum += score;
        usage = addUsage(usage, r.usage);
        if (!r.ok) {
          errors++;
          firstError ??= r.error;
        }
        const result: ExampleResult = { index, example: examples[index], score, ...(r.prediction ? { prediction: r.prediction } : {}), ...(r.error ? { error: r.error } : {}) };
        delete examples[index];
        if (o.onResult) await o.onResult(result);
        if (out && !out.write(JSON.stringify(result) + "\n")) await once(out, "drain");
        progress.update(done, { score: sum / done, errors });
        if (errors > maxErrors) {
          abort.abort();
          throw new DspexError(
            "input",
            `evaluation stopped: ${errors} examples failed (maxErrors ${maxErrors}); first error: [${firstError?.code}] ${firstError?.message}`,
          );
        }
      }
    } finally {
      progress.stop();
      o.signal?.removeEventListener("abort", onOuterAbort);
      if (out) {
        out.end();
        await once(out, "finish").catch(() => undefined);
      }
    }
    const mean = done === 0 ? 0 : sum / done;
    return { score: Math.round(mean * 10000) / 100, mean, total: done, sum, errors, usage, durationMs: performance.now() - started };
  }
}

function defaultInputKeys(program: Module | ProgramJSON): string[] {
  const module = program instanceof Module ? program : programFromJSON(program);
  const first = module.namedPredictors()[0]?.[1];
  const sig = (first as { signature?: { inputNames: string[] } } | undefined)?.signature;
  if (sig) return sig.inputNames;
  throw new DspexError("config", "cannot infer the input keys: give examples withInputs(...) or pass { inputKeys }");
}
