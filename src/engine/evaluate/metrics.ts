// Built-in metrics, normalised like DSPy's dspy.evaluate.metrics (SQuAD-style EM/F1).
// A metric name may name the field to compare: "exact_match:label" (default "answer").
import { DspexError } from "../errors.js";
import type { Example, Prediction } from "../example.js";
import { getRegistry, onRegistryInit, type Metric } from "../registry.js";

const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** DSPy's normalize_text: NFD, lower, strip punctuation, drop articles, squeeze spaces. */
export function normalizeText(s: string): string {
  let t = s.normalize("NFD").toLowerCase();
  t = [...t].filter((ch) => !PUNCTUATION.has(ch)).join("");
  t = t.replace(/\b(a|an|the)\b/g, " ");
  return t.split(/\s+/).filter(Boolean).join(" ");
}

export function emScore(prediction: string, truth: string): boolean {
  return normalizeText(prediction) === normalizeText(truth);
}

export function f1Score(prediction: string, truth: string): number {
  const p = normalizeText(prediction).split(" ").filter(Boolean);
  const g = normalizeText(truth).split(" ").filter(Boolean);
  if (p.length === 0 && g.length === 0) return prediction === truth ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

function text(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
}

function answers(v: unknown): string[] {
  return Array.isArray(v) ? v.map(text) : [text(v)];
}

/** The field a metric compares: explicit, else "answer", else the one label both share. */
export function metricField(example: Example, prediction: Prediction, explicit?: string): string {
  if (explicit) return explicit;
  if (example.has("answer")) return "answer";
  const inputs = new Set(example.inputKeys ?? []);
  const shared = example.keys().filter((k) => !inputs.has(k) && prediction.has(k));
  if (shared.length === 1) return shared[0];
  throw new DspexError(
    "input",
    `cannot tell which field to score: the example has no 'answer' and ${shared.length} label fields shared with the prediction (${shared.join(", ") || "none"}); name it, e.g. "exact_match:label"`,
  );
}

type FieldMetric = (pred: unknown, gold: unknown) => number | boolean;

const builtins: Record<string, FieldMetric> = {
  exact_match: (p, g) => answers(g).some((a) => emScore(text(p), a)),
  answer_exact_match: (p, g) => answers(g).some((a) => emScore(text(p), a)),
  f1: (p, g) => Math.max(...answers(g).map((a) => f1Score(text(p), a))),
  contains: (p, g) => answers(g).some((a) => normalizeText(text(p)).includes(normalizeText(a))),
  /** Any retrieved passage (prediction list) contains a gold answer. */
  passage_match: (p, g) => {
    const passages = Array.isArray(p) ? p.map(text) : [text(p)];
    return passages.some((psg) => answers(g).some((a) => normalizeText(psg).includes(normalizeText(a))));
  },
  /** Numeric equality (relative tolerance 1e-9), reading numbers out of text like "42." or "$1,000". */
  numeric: (p, g) => {
    const a = toNumber(p);
    const b = toNumber(g);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  },
};

function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return undefined;
  const m = /-?\d[\d,]*(\.\d+)?(e[-+]?\d+)?/i.exec(v);
  if (!m) return undefined;
  const n = Number(m[0].replace(/,/g, ""));
  return Number.isFinite(n) ? n : undefined;
}

function fieldMetric(name: string, fn: FieldMetric): Metric {
  const [, field] = name.split(":");
  return (example, prediction) => {
    const f = metricField(example, prediction, field);
    if (!prediction.has(f)) return false;
    return fn(prediction.get(f), example.get(f));
  };
}

onRegistryInit((r) => {
  for (const [name, fn] of Object.entries(builtins)) r.metrics.set(name, fieldMetric(name, fn));
});

/** Look a metric up by name; "name:field" picks the compared field for built-ins. */
export function resolveMetric(name: string): Metric {
  const registry = getRegistry();
  if (registry.metrics.has(name)) return registry.metrics.get(name);
  const [base, field] = name.split(":");
  if (field && base in builtins) return fieldMetric(name, builtins[base]);
  return registry.metrics.get(name); // throws, listing the known names
}

/** Metrics may return booleans; scores are numbers in [0, 1] by convention. */
export function toScore(v: number | boolean): number {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v !== "number" || Number.isNaN(v)) {
    throw new DspexError("input", `a metric returned ${String(v)}; metrics must return a number or a boolean`);
  }
  return v;
}
