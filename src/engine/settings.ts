// Global configuration plus per-call overrides that are safe under concurrency:
// overrides live in an AsyncLocalStorage scope, like DSPy's settings.context().
import { AsyncLocalStorage } from "node:async_hooks";
import type { Adapter } from "./adapters/adapter.js";
import type { LM, LMSettings, LMUsage } from "./lm/types.js";
import { addUsage, zeroUsage } from "./lm/types.js";
import type { Prediction, Record_ } from "./example.js";

/** One predictor call recorded while tracing (used by bootstrapping optimizers). */
export interface TraceEntry {
  /** The predictor object that made the call. */
  predictor: object;
  inputs: Record_;
  prediction: Prediction;
}

export interface Settings {
  lm?: LM;
  adapter?: Adapter;
  /** When an array, every predictor call appends a TraceEntry to it. */
  trace?: TraceEntry[];
  /** Usage accumulator of the innermost module call. */
  usage?: UsageScope;
  /** LM settings layered over every predictor's own (BestOfN/Refine use it for rollout ids). */
  lmOverrides?: LMSettings;
  /** Per-predictor hints injected as a `hint_` input (Refine's feedback), keyed by predictor. */
  hints?: Map<object, string>;
  /** Demos equal to this example are left out (bootstrapping must not show a teacher its own answer). */
  excludeDemo?: Record_;
  /** Cancels LM calls made in this scope. */
  signal?: AbortSignal;
}

let globalSettings: Settings = {};
const scope = new AsyncLocalStorage<Settings>();

/** Set process-wide defaults (like dspy.configure). */
export function configure(options: Omit<Settings, "usage" | "trace">): void {
  globalSettings = { ...globalSettings, ...options };
}

/** Current effective settings: scoped overrides over global ones. */
export function settings(): Settings {
  const local = scope.getStore();
  return local ? { ...globalSettings, ...local } : globalSettings;
}

/** Run fn with overrides visible only to it and what it awaits (like dspy.context). */
export function withSettings<R>(overrides: Settings, fn: () => R): R {
  const current = scope.getStore();
  return scope.run(current ? { ...current, ...overrides } : overrides, fn);
}

/** Run fn while recording every predictor call; returns fn's result and the trace. */
export async function withTrace<R>(fn: () => Promise<R>): Promise<{ result: R; trace: TraceEntry[] }> {
  const trace: TraceEntry[] = [];
  const result = await withSettings({ trace }, fn);
  return { result, trace };
}

/** Sums LM usage for one module call and forwards it to the enclosing call's scope. */
export class UsageScope {
  total: LMUsage = zeroUsage();
  readonly byModel = new Map<string, LMUsage>();
  constructor(readonly parent?: UsageScope) {}
  add(model: string, usage: LMUsage): void {
    for (let s: UsageScope | undefined = this; s; s = s.parent) {
      s.total = addUsage(s.total, usage);
      s.byModel.set(model, addUsage(s.byModel.get(model) ?? zeroUsage(), usage));
    }
  }
}

export function resetSettingsForTests(): void {
  globalSettings = {};
}
