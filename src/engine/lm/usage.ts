// Token and cost accounting. Every LM call reports its usage to the process totals and to
// every UsageTracker active in the caller's async context, so the usage of one program run
// is collected with:
//
//   const { result, usage } = await trackUsage(() => program.call({ question }));
//
// Trackers nest: an inner run's usage also counts in the outer one.
import { AsyncLocalStorage } from "node:async_hooks";
import type { LMUsage } from "./types.js";

/** US dollars per million tokens. */
export interface ModelPrice {
  input: number;
  output: number;
}

// List prices (USD / 1M tokens, standard tier) of well-known models; matched by the longest
// prefix of the bare model name, so dated snapshots ("gpt-4o-2024-08-06") match too.
// Extend or override with setModelPrice().
const PRICES = new Map<string, ModelPrice>([
  ["gpt-4o-mini", { input: 0.15, output: 0.6 }],
  ["gpt-4o", { input: 2.5, output: 10 }],
  ["gpt-4.1-nano", { input: 0.1, output: 0.4 }],
  ["gpt-4.1-mini", { input: 0.4, output: 1.6 }],
  ["gpt-4.1", { input: 2, output: 8 }],
  ["gpt-5-nano", { input: 0.05, output: 0.4 }],
  ["gpt-5-mini", { input: 0.25, output: 2 }],
  ["gpt-5", { input: 1.25, output: 10 }],
  ["o3-mini", { input: 1.1, output: 4.4 }],
  ["o4-mini", { input: 1.1, output: 4.4 }],
  ["o3", { input: 2, output: 8 }],
  ["gpt-3.5-turbo", { input: 0.5, output: 1.5 }],
  ["claude-3-5-haiku", { input: 0.8, output: 4 }],
  ["claude-3-haiku", { input: 0.25, output: 1.25 }],
  ["claude-haiku-4-5", { input: 1, output: 5 }],
  ["claude-3-5-sonnet", { input: 3, output: 15 }],
  ["claude-3-7-sonnet", { input: 3, output: 15 }],
  ["claude-sonnet-4", { input: 3, output: 15 }],
  ["claude-opus-4-5", { input: 5, output: 25 }],
  ["claude-opus-4", { input: 15, output: 75 }],
  ["gemini-1.5-flash", { input: 0.075, output: 0.3 }],
  ["gemini-1.5-pro", { input: 1.25, output: 5 }],
  ["gemini-2.0-flash-lite", { input: 0.075, output: 0.3 }],
  ["gemini-2.0-flash", { input: 0.1, output: 0.4 }],
  ["gemini-2.5-flash-lite", { input: 0.1, output: 0.4 }],
  ["gemini-2.5-flash", { input: 0.3, output: 2.5 }],
  ["gemini-2.5-pro", { input: 1.25, output: 10 }],
]);

/** Set (or override) a model's price; `model` may carry a provider prefix. */
export function setModelPrice(model: string, price: ModelPrice): void {
  PRICES.set(bareModel(model), price);
}

function bareModel(model: string): string {
  const slash = model.indexOf("/");
  return slash >= 0 ? model.slice(slash + 1) : model;
}

/** Price of a model by longest matching prefix, or undefined when unknown. */
export function priceOf(model: string): ModelPrice | undefined {
  const name = bareModel(model).toLowerCase();
  let best: ModelPrice | undefined;
  let bestLen = -1;
  for (const [prefix, price] of PRICES) {
    if (prefix.length > bestLen && name.startsWith(prefix)) {
      best = price;
      bestLen = prefix.length;
    }
  }
  return best;
}

export function costUsd(price: ModelPrice | undefined, promptTokens: number, completionTokens: number): number {
  if (!price) return 0;
  return (promptTokens * price.input + completionTokens * price.output) / 1e6;
}

export interface UsageTotals extends LMUsage {
  /** LM calls (cache hits included). */
  calls: number;
  cacheHits: number;
  /** Extra HTTP attempts spent on retries. */
  retries: number;
  /** Calls that ended in an error. */
  errors: number;
}

function zeroTotals(): UsageTotals {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0, calls: 0, cacheHits: 0, retries: 0, errors: 0 };
}

export interface CallRecord {
  model: string;
  usage: LMUsage;
  cached: boolean;
  retries: number;
  error: boolean;
}

/** Accumulates usage: overall and per model. */
export class UsageTracker {
  readonly total: UsageTotals = zeroTotals();
  readonly byModel = new Map<string, UsageTotals>();

  constructor(readonly parent?: UsageTracker) {}

  record(rec: CallRecord): void {
    add(this.total, rec);
    let m = this.byModel.get(rec.model);
    if (!m) {
      m = zeroTotals();
      this.byModel.set(rec.model, m);
    }
    add(m, rec);
  }

  toJSON(): { total: UsageTotals; byModel: Record<string, UsageTotals> } {
    return { total: { ...this.total }, byModel: Object.fromEntries([...this.byModel].map(([k, v]) => [k, { ...v }])) };
  }
}

function add(t: UsageTotals, rec: CallRecord): void {
  t.calls++;
  if (rec.cached) t.cacheHits++;
  if (rec.error) t.errors++;
  t.retries += rec.retries;
  t.promptTokens += rec.usage.promptTokens;
  t.completionTokens += rec.usage.completionTokens;
  t.totalTokens += rec.usage.totalTokens;
  t.costUsd += rec.usage.costUsd;
}

const processTracker = new UsageTracker();
const scope = new AsyncLocalStorage<UsageTracker>();

/** Usage of every LM call in this process since start (or resetProcessUsage). */
export function processUsage(): UsageTracker {
  return processTracker;
}

export function resetProcessUsage(): void {
  Object.assign(processTracker.total, zeroTotals());
  processTracker.byModel.clear();
}

/** Report one call to the process totals and every tracker in the current async scope. */
export function recordCall(rec: CallRecord): void {
  processTracker.record(rec);
  for (let t = scope.getStore(); t; t = t.parent) t.record(rec);
}

/** Run fn, collecting the usage of every LM call it makes (awaited or not) into a tracker. */
export async function trackUsage<R>(fn: () => Promise<R> | R, tracker?: UsageTracker): Promise<{ result: R; usage: UsageTracker }> {
  const t = tracker ?? new UsageTracker(scope.getStore());
  const result = await scope.run(t, fn);
  return { result, usage: t };
}

/** The innermost active tracker, if any. */
export function currentUsageTracker(): UsageTracker | undefined {
  return scope.getStore();
}
