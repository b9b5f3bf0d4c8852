// Shared pieces of the optimizers ("teleprompters").
import { DspexError } from "../errors.js";
import { Example, type Record_ } from "../example.js";
import type { Executor } from "../evaluate/executor.js";
import { LocalExecutor } from "../evaluate/executor.js";
import type { Progress } from "../evaluate/progress.js";
import type { Module } from "../modules/module.js";

export interface CompileOptions {
  trainset: (Example | Record_)[];
  valset?: (Example | Record_)[];
  teacher?: Module;
  executor?: Executor;
  /** Input keys for examples that were not given withInputs(); default: the student's first predictor's inputs. */
  inputKeys?: string[];
  signal?: AbortSignal;
  progress?: boolean | "auto" | Progress;
}

export interface Teleprompter {
  compile(student: Module, options: CompileOptions): Promise<Module>;
}

/** Normalise a dataset to Examples that know their inputs. */
export function toExamples(data: (Example | Record_)[], student: Module, inputKeys?: string[]): Example[] {
  if (!Array.isArray(data)) throw new DspexError("input", "a trainset must be an array of examples");
  const defaults = inputKeys ?? (student.namedPredictors()[0]?.[1] as unknown as { signature?: { inputNames: string[] } })?.signature?.inputNames;
  return data.map((d, i) => {
    const ex = d instanceof Example ? d : new Example(d);
    if (ex.inputKeys) return ex;
    if (!defaults) throw new DspexError("input", `example #${i + 1} has no input keys: use withInputs(...) or pass { inputKeys }`);
    return ex.withInputs(...defaults);
  });
}

export function executorOf(options: { executor?: Executor }): Executor {
  return options.executor ?? new LocalExecutor({ concurrency: 16 });
}

/** Mark a compiled program (DSPy's _compiled) so it is not compiled twice as a student. */
export function markCompiled(m: Module): Module {
  (m as unknown as { _compiled: boolean })._compiled = true;
  return m;
}

export function isCompiled(m: Module): boolean {
  return (m as unknown as { _compiled?: boolean })._compiled === true;
}
