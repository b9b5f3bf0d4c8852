// Predict: one LM call shaped by a signature, with demos and per-predictor LM settings.
import { ChatAdapter } from "../adapters/chat.js";
import { DspexError } from "../errors.js";
import { Example, Prediction, toRecord, type Record_ } from "../example.js";
import type { LM, LMSettings } from "../lm/types.js";
import { settings } from "../settings.js";
import { InputField, Signature, type SignatureState } from "../signature/signature.js";
import { Module, type CallOptions, type ModuleSpec } from "./module.js";
import { getRegistry } from "../registry.js";

export interface PredictOptions extends LMSettings {
  lm?: LM;
  demos?: (Record_ | Example)[];
}

/** Per-call overrides, DSPy's `signature=`, `demos=`, `config=`, `lm=` keyword arguments. */
export interface PredictOverrides {
  signature?: Signature;
  demos?: (Record_ | Example)[];
  config?: LMSettings;
  lm?: LM;
}

/** DSPy's saved predictor state. */
export interface PredictorState {
  traces: unknown[];
  train: unknown[];
  demos: Record_[];
  signature: SignatureState;
  lm: Record<string, unknown> | null;
  [extra: string]: unknown;
}

const defaultAdapter = new ChatAdapter();
let warnedMissingInputs = false;

export class Predict extends Module {
  readonly isPredictor = true as const;
  signature: Signature;
  demos: Record_[];
  lm: LM | undefined;
  config: LMSettings;
  traces: unknown[] = [];
  train: unknown[] = [];
  /** A saved `lm` entry we could not turn into an LM; kept so saving again preserves it. */
  lmState: Record<string, unknown> | null = null;

  constructor(signature: string | Signature, options: PredictOptions = {}) {
    super();
    const { lm, demos, ...config } = options;
    this.signature = Signature.from(signature);
    this.demos = (demos ?? []).map(toRecord);
    this.lm = lm;
    this.config = config;
  }

  reset(): void {
    this.lm = undefined;
    this.traces = [];
    this.train = [];
    this.demos = [];
  }

  /**
   * A leaf needs no usage scope of its own: its prediction carries the usage of its one
   * LM call, and forward() adds it to the caller's scope. Skipping the scope keeps the
   * per-call cost low (each AsyncLocalStorage scope costs every promise inside it).
   */
  override call(inputs: Record_ | Example, options: CallOptions = {}): Promise<Prediction> {
    if (options.lm || options.adapter || options.config || options.signal) return super.call(inputs, options);
    // Not async: returning forward()'s promise from an async function costs two more
    // promises (and their async-hook work) per call. Bad input still rejects, never throws.
    let record: Record_;
    try {
      record = this.inputRecord(inputs);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.forward(record);
  }

  override forward(inputs: Record_, overrides: PredictOverrides = {}): Promise<Prediction> {
    // Not async: the set-up is synchronous, and .then() costs one promise where an async
    // function's await costs two. Anything thrown still comes out as a rejection.
    try {
      return this.callLM(inputs, overrides);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private callLM(inputs: Record_, overrides: PredictOverrides): Promise<Prediction> {
    const ctx = settings();
    const lm = overrides.lm ?? this.lm ?? ctx.lm;
    if (!lm) {
      throw new DspexError(
        "config",
        "No LM is loaded. Call configure({ lm: createLM('openai/gpt-4o-mini') }) (or pass { lm } to the predictor or to call()) before running a program.",
      );
    }
    let signature = overrides.signature ?? this.signature;
    const given = overrides.demos ?? this.demos;
    let demos = given.some((d) => d instanceof Example) ? given.map(toRecord) : (given as Record_[]);
    if (ctx.excludeDemo) demos = demos.filter((d) => !sameRecord(d, ctx.excludeDemo!));
    const config: LMSettings & { signal?: AbortSignal } = { ...this.config, ...ctx.lmOverrides, ...overrides.config };
    if (ctx.signal) config.signal = ctx.signal;
    // DSPy samples with temperature 0.7 when asked for several completions at temperature 0.
    if ((config.n ?? 1) > 1 && !config.temperature) config.temperature = 0.7;

    let callInputs = inputs;
    const hint = ctx.hints?.get(this);
    if (hint !== undefined) {
      signature = signature.append("hint_", InputField({ desc: "A hint to the module from an earlier run" }));
      callInputs = { ...inputs, hint_: hint };
    }
    if (!warnedMissingInputs && !hasAll(callInputs, signature.inputNames)) {
      warnedMissingInputs = true;
      const missing = signature.inputNames.filter((n) => !(n in callInputs));
      process.emitWarning(
        `Not all input fields were provided to the predictor. Present: ${signature.inputNames.filter((n) => n in callInputs).join(", ")}. Missing: ${missing.join(", ")}.`,
        { code: "DSPEX_MISSING_INPUTS" },
      );
    }

    const adapter = ctx.adapter ?? defaultAdapter;
    return Promise.resolve(adapter.call(lm, config, signature, demos, callInputs)).then((result) => {
      ctx.usage?.add(result.model || lm.model, result.usage);
      const pred = Prediction.fromCompletions(result.completions, result.usage);
      ctx.trace?.push({ predictor: this, inputs: { ...inputs }, prediction: pred });
      return pred;
    });
  }

  override dumpState(): PredictorState {
    return {
      traces: [...this.traces],
      train: [...this.train],
      demos: this.demos.map((d) => serializeDemo(d)),
      signature: this.signature.dumpState(),
      lm: this.lm?.dumpState?.() ?? this.lmState ?? null,
    };
  }

  override loadState(state: Record<string, unknown>, path = "self"): this {
    const where = `predictor '${path}'`;
    const sig = state.signature as SignatureState | undefined;
    if (!sig || typeof sig.instructions !== "string" || !Array.isArray(sig.fields)) {
      throw new DspexError("program_state", `${where}: 'signature' must be an object with 'instructions' (string) and 'fields' (array)`);
    }
    if (sig.fields.length !== this.signature.fields.length) {
      throw new DspexError(
        "program_state",
        `${where}: the saved signature has ${sig.fields.length} fields but this program's has ${this.signature.fields.length} (${this.signature.toString()}); the file belongs to a different program`,
      );
    }
    sig.fields.forEach((f, i) => {
      if (!f || typeof f.prefix !== "string" || typeof f.description !== "string") {
        throw new DspexError("program_state", `${where}: signature field #${i + 1} needs string 'prefix' and 'description'`);
      }
    });
    if (state.demos !== undefined && !Array.isArray(state.demos)) {
      throw new DspexError("program_state", `${where}: 'demos' must be an array of objects`);
    }
    const demos = (state.demos as unknown[] | undefined) ?? [];
    demos.forEach((d, i) => {
      if (!d || typeof d !== "object" || Array.isArray(d)) throw new DspexError("program_state", `${where}: demo #${i + 1} must be an object of field values`);
    });
    this.signature = this.signature.loadState(sig);
    this.demos = demos.map((d) => ({ ...(d as Record_) }));
    this.traces = Array.isArray(state.traces) ? [...state.traces] : [];
    this.train = Array.isArray(state.train) ? [...state.train] : [];
    const lmState = state.lm;
    if (lmState && typeof lmState === "object") {
      this.lmState = lmState as Record<string, unknown>;
      this.lm = getRegistry().lmFromState(this.lmState) ?? this.lm;
    } else {
      this.lmState = null;
    }
    return this;
  }

  override toSpec(): ModuleSpec {
    return { kind: "Predict", config: { signature: this.signature.toJSON(), ...(Object.keys(this.config).length ? { lmConfig: this.config } : {}) } };
  }
}

function hasAll(inputs: Record_, names: readonly string[]): boolean {
  for (let i = 0; i < names.length; i++) if (!(names[i] in inputs)) return false;
  return true;
}

/** Example equality as DSPy's Example.__eq__: same keys, equal values. */
export function sameRecord(a: Record_, b: Record_): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  return sameRecord(a as Record_, b as Record_);
}

function serializeDemo(d: Record_): Record_ {
  const out: Record_ = {};
  for (const [k, v] of Object.entries(d)) out[k] = v instanceof Example ? v.toDict() : v;
  return out;
}
