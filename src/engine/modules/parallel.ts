// Parallel: run (module, inputs) pairs concurrently with bounded concurrency and an
// error budget, returning results in input order (DSPy's dspy.Parallel).
import { DspexError } from "../errors.js";
import type { Example, Prediction, Record_ } from "../example.js";
import type { Module } from "./module.js";

export interface ParallelOptions {
  concurrency?: number;
  /** Stop after this many failures (default: unlimited when returnErrors, else 0). */
  maxErrors?: number;
  /** Put the Error in the result slot instead of throwing. */
  returnErrors?: boolean;
  signal?: AbortSignal;
}

export class Parallel {
  constructor(private readonly options: ParallelOptions = {}) {}

  async run(pairs: [Module, Record_ | Example][]): Promise<(Prediction | Error)[]> {
    const concurrency = Math.max(1, Math.floor(this.options.concurrency ?? 16));
    const maxErrors = this.options.maxErrors ?? (this.options.returnErrors ? Infinity : 0);
    const results: (Prediction | Error)[] = new Array(pairs.length);
    let next = 0;
    let errors = 0;
    let stop: Error | undefined;
    const worker = async () => {
      while (!stop && next < pairs.length) {
        if (this.options.signal?.aborted) {
          stop = new DspexError("input", "Parallel run cancelled");
          break;
        }
        const i = next++;
        const [module, inputs] = pairs[i];
        try {
          results[i] = await module.call(inputs, { signal: this.options.signal });
        } catch (e) {
          const err = e instanceof Error ? e : new Error(String(e));
          results[i] = err;
          errors++;
          if (errors > maxErrors) stop = err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, pairs.length) }, worker));
    if (stop) {
      if (!this.options.returnErrors || errors > maxErrors) {
        throw new DspexError("input", `Parallel stopped after ${errors} error(s) (maxErrors ${maxErrors}): ${stop.message}`, { cause: stop });
      }
    }
    return results;
  }
}
