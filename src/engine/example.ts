// Example and Prediction: DSPy's dict-like records with input/label split and usage.
import { DspexError } from "./errors.js";
import type { LMUsage } from "./lm/types.js";
import { zeroUsage } from "./lm/types.js";

export type Record_ = Record<string, unknown>;

export class Example<T extends Record_ = Record_> {
  readonly data: Readonly<T>;
  /** Keys marked as inputs by withInputs(); undefined when never set. */
  readonly inputKeys: readonly string[] | undefined;

  constructor(data: T | Example<T>, inputKeys?: Iterable<string>) {
    if (data instanceof Example) {
      this.data = { ...data.data };
      this.inputKeys = inputKeys ? [...inputKeys] : data.inputKeys;
    } else {
      if (!data || typeof data !== "object" || Array.isArray(data)) {
        throw new DspexError("input", `an Example is built from a plain object of fields, got ${Array.isArray(data) ? "an array" : typeof data}`);
      }
      this.data = { ...data };
      this.inputKeys = inputKeys ? [...inputKeys] : undefined;
    }
  }

  get<K extends keyof T & string>(key: K): T[K] {
    return this.data[key];
  }

  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.data, key);
  }

  /** Keys, excluding DSPy's internal "dspy_" keys unless asked. */
  keys(includeDspy = false): string[] {
    return Object.keys(this.data).filter((k) => includeDspy || !k.startsWith("dspy_"));
  }

  withInputs(...keys: string[]): Example<T> {
    return new Example<T>(this.data as T, keys);
  }

  /** Only the input fields (requires withInputs). */
  inputs(): Example {
    if (!this.inputKeys) {
      throw new DspexError("input", "Inputs have not been set for this example. Use `example.withInputs(...)` to set them.");
    }
    const out: Record_ = {};
    for (const k of this.inputKeys) if (this.has(k)) out[k] = this.data[k];
    return new Example(out, this.inputKeys);
  }

  /** Everything that is not an input (requires withInputs). */
  labels(): Example {
    const inputs = new Set(this.inputs().keys());
    const out: Record_ = {};
    for (const k of this.keys()) if (!inputs.has(k)) out[k] = this.data[k];
    return new Example(out);
  }

  copy(overrides: Partial<T> & Record_ = {}): Example<T> {
    return new Example<T>({ ...this.data, ...overrides } as T, this.inputKeys);
  }

  without(...keys: string[]): Example {
    const out: Record_ = { ...this.data };
    for (const k of keys) delete out[k];
    return new Example(out, this.inputKeys);
  }

  toDict(): T {
    return { ...this.data } as T;
  }

  toJSON(): T {
    return this.toDict();
  }
}

/** The output of a module call: output fields, all sampled completions, and LM usage. */
export class Prediction<T extends Record_ = Record_> extends Example<T> {
  /** Every sampled completion (n > 1) as field records; the Prediction holds the first. */
  completions: T[];
  usage: LMUsage;

  constructor(data: T, options: { completions?: T[]; usage?: LMUsage } = {}) {
    super(data);
    this.completions = options.completions ?? [{ ...data }];
    this.usage = options.usage ?? zeroUsage();
  }

  static fromCompletions<T extends Record_>(completions: T[], usage?: LMUsage): Prediction<T> {
    if (completions.length === 0) throw new DspexError("input", "a prediction needs at least one completion");
    return new Prediction<T>({ ...completions[0] }, { completions, usage });
  }

  /** Values of one field across all completions. */
  completionValues<K extends keyof T & string>(field: K): T[K][] {
    return this.completions.map((c) => c[field]);
  }
}

/** Plain record of a demo, whatever form it was given in. */
export function toRecord(x: Example | Record_): Record_ {
  return x instanceof Example ? x.toDict() : x;
}
