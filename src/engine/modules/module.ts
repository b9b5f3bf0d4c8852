// Module: DSPy's composable program unit. Sub-modules and predictors are discovered from
// the object's own properties, giving DSPy-style paths such as "qa.predict" or "hops[0]".
import { DspexError } from "../errors.js";
import { Example, Prediction, toRecord, type Record_ } from "../example.js";
import type { LM, LMSettings } from "../lm/types.js";
import { settings, UsageScope, withSettings } from "../settings.js";
import type { Adapter } from "../adapters/adapter.js";

export interface CallOptions {
  lm?: LM;
  adapter?: Adapter;
  /** Extra LM settings for every predictor in this call (e.g. { temperature: 1 }). */
  config?: LMSettings;
  signal?: AbortSignal;
}

/** How a module is rebuilt from data: a registered kind plus JSON config. */
export interface ModuleSpec {
  kind: string;
  config: Record<string, unknown>;
}

/** Marker interface implemented by Predict (kept structural to avoid an import cycle). */
export interface PredictorLike {
  readonly isPredictor: true;
  dumpState(): Record<string, unknown>;
  loadState(state: Record<string, unknown>, path?: string): void;
  reset(): void;
  demos: Record_[];
}

export function isPredictor(x: unknown): x is PredictorLike & Module {
  return !!x && typeof x === "object" && (x as { isPredictor?: unknown }).isPredictor === true;
}

export abstract class Module {
  /** Property names never walked for sub-modules (back references, caches). */
  protected static readonly skipProps: ReadonlySet<string> = new Set();

  abstract forward(inputs: Record_): Promise<Prediction>;

  /** Run the module; usage of every LM call inside is summed into the prediction. */
  async call(inputs: Record_ | Example, options: CallOptions = {}): Promise<Prediction> {
    const record = this.inputRecord(inputs);
    const current = settings();
    const usage = new UsageScope(current.usage);
    const overrides = {
      usage,
      ...(options.lm ? { lm: options.lm } : {}),
      ...(options.adapter ? { adapter: options.adapter } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.config ? { lmOverrides: { ...current.lmOverrides, ...options.config } } : {}),
    };
    const pred = await withSettings(overrides, () => this.forward(record));
    if (!(pred instanceof Prediction)) {
      throw new DspexError("input", `${this.constructor.name}.forward() must return a Prediction, got ${pred === null ? "null" : typeof pred}`);
    }
    pred.usage = usage.total;
    return pred;
  }

  protected inputRecord(inputs: Record_ | Example): Record_ {
    const record = inputs instanceof Example ? (inputs.inputKeys ? inputs.inputs().toDict() : inputs.toDict()) : inputs;
    if (!record || typeof record !== "object" || Array.isArray(record)) {
      throw new DspexError("input", `${this.constructor.name}.call() takes an object of input fields, got ${Array.isArray(record) ? "an array" : typeof record}`);
    }
    return record;
  }

  /** Run the module over many inputs concurrently; results keep input order. */
  async batch(
    inputs: (Record_ | Example)[],
    options: CallOptions & { concurrency?: number; returnErrors?: boolean } = {},
  ): Promise<(Prediction | Error)[]> {
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 16));
    const results: (Prediction | Error)[] = new Array(inputs.length);
    let next = 0;
    const worker = async () => {
      while (next < inputs.length) {
        const i = next++;
        try {
          results[i] = await this.call(inputs[i], options);
        } catch (e) {
          if (!options.returnErrors) throw e;
          results[i] = e instanceof Error ? e : new Error(String(e));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
    return results;
  }

  /** Direct children: [name, value] where value is a Module, or arrays/records of Modules. */
  protected *children(): Generator<[string, Module]> {
    const skip = (this.constructor as typeof Module).skipProps;
    for (const [key, value] of Object.entries(this)) {
      if (skip.has(key) || key.startsWith("_")) continue;
      if (value instanceof Module) yield [key, value];
      else if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (value[i] instanceof Module) yield [`${key}[${i}]`, value[i]];
      } else if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
        for (const [k, v] of Object.entries(value)) if (v instanceof Module) yield [`${key}['${k}']`, v];
      }
    }
  }

  /** Every predictor with its DSPy path; a Predict itself is "self". */
  namedPredictors(): [string, PredictorLike & Module][] {
    if (isPredictor(this)) return [["self", this]];
    const out: [string, PredictorLike & Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, prefix: string) => {
      for (const [name, child] of m.children()) {
        if (seen.has(child)) continue;
        seen.add(child);
        const path = prefix ? `${prefix}.${name}` : name;
        if (isPredictor(child)) out.push([path, child]);
        else walk(child, path);
      }
    };
    walk(this, "");
    return out;
  }

  predictors(): (PredictorLike & Module)[] {
    return this.namedPredictors().map(([, p]) => p);
  }

  /** DSPy's dump_state: per predictor path (a lone Predict dumps flat). */
  dumpState(): Record<string, unknown> {
    if (isPredictor(this)) return this.dumpState();
    const out: Record<string, unknown> = {};
    for (const [path, p] of this.namedPredictors()) out[path] = p.dumpState();
    return out;
  }

  /** DSPy's load_state: every predictor path must be present in the state. */
  loadState(state: Record<string, unknown>): this {
    for (const [path, p] of this.namedPredictors()) {
      const s = path === "self" && !("self" in state) ? state : state[path];
      if (!s || typeof s !== "object") {
        const have = Object.keys(state).filter((k) => k !== "metadata" && k !== "dspex");
        throw new DspexError(
          "program_state",
          `the saved state has no entry for predictor '${path}' (it has: ${have.join(", ") || "nothing"}); the file was saved from a program with a different structure`,
        );
      }
      p.loadState(s as Record<string, unknown>, path);
    }
    return this;
  }

  /** Deep copy of the module tree; LMs, adapters and functions stay shared. */
  clone(): this {
    return deepCopyModule(this, new Map()) as this;
  }

  /** A clone with every predictor's demos and traces cleared (DSPy's reset_copy). */
  resetCopy(): this {
    const c = this.clone();
    for (const p of c.predictors()) p.reset();
    return c;
  }

  /** Save in DSPy's JSON format plus the dspex rebuild section. */
  async save(path: string): Promise<void> {
    const { saveProgram } = await import("../state.js");
    await saveProgram(this, path);
  }

  /** Load a saved state (DSPy's module.load) into this program. */
  async load(path: string): Promise<this> {
    const { loadProgram } = await import("../state.js");
    await loadProgram(path, { into: this });
    return this;
  }

  /** Rebuildable description; built-in modules and registered plugin modules override this. */
  toSpec(): ModuleSpec {
    throw new DspexError(
      "registry_unknown",
      `${this.constructor.name} cannot be described as data: override toSpec() and register the kind with registerModule() so peers can rebuild it`,
    );
  }
}

function deepCopyValue(v: unknown, memo: Map<unknown, unknown>): unknown {
  if (v instanceof Module) return deepCopyModule(v, memo);
  if (Array.isArray(v)) {
    if (memo.has(v)) return memo.get(v);
    const out: unknown[] = [];
    memo.set(v, out);
    for (const x of v) out.push(deepCopyValue(x, memo));
    return out;
  }
  if (v instanceof Example) return v instanceof Prediction ? v : new Example(v.toDict(), v.inputKeys);
  if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    if (memo.has(v)) return memo.get(v);
    const out: Record<string, unknown> = {};
    memo.set(v, out);
    for (const [k, x] of Object.entries(v)) out[k] = deepCopyValue(x, memo);
    return out;
  }
  // Signatures are immutable; LMs, adapters, functions, Maps and class instances are shared.
  return v;
}

function deepCopyModule(m: Module, memo: Map<unknown, unknown>): Module {
  if (memo.has(m)) return memo.get(m) as Module;
  const copy = Object.create(Object.getPrototypeOf(m)) as Module;
  memo.set(m, copy);
  for (const [k, v] of Object.entries(m)) (copy as unknown as Record<string, unknown>)[k] = deepCopyValue(v, memo);
  return copy;
}

export { toRecord };
