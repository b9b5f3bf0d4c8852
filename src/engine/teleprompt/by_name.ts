// Optimizers by name with plain-data options, so a compile job can travel as data (CLI
// flags, a cluster job spec) and be rebuilt identically anywhere.
import { z } from "zod";
import { DspexError } from "../errors.js";
import { BootstrapFewShot } from "./bootstrap.js";
import { LabeledFewShot } from "./labeled.js";
import { MIPROv2 } from "./mipro.js";
import { BootstrapFewShotWithRandomSearch } from "./random_search.js";
import type { Teleprompter } from "./teleprompter.js";

export const OPTIMIZERS = ["labeled", "bootstrap", "random-search", "mipro"] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

const count = z.number().int().min(0).max(10_000);
export const optimizerOptionsSchema = z.strictObject({
  maxBootstrappedDemos: count.optional(),
  maxLabeledDemos: count.optional(),
  maxRounds: count.min(1).optional(),
  numCandidates: count.optional(),
  numTrials: count.min(1).optional(),
  minibatchSize: count.min(1).optional(),
  seed: z.number().int().optional(),
  metricThreshold: z.number().optional(),
  maxErrors: count.optional(),
});
export type OptimizerOptions = z.infer<typeof optimizerOptionsSchema>;

export const optimizerSpecSchema = z.strictObject({ name: z.enum(OPTIMIZERS), options: optimizerOptionsSchema.default({}) });
export type OptimizerSpec = z.input<typeof optimizerSpecSchema>;

/** Build an optimizer from its name, the metric name and plain options (CLI defaults). */
export function createOptimizer(name: string, metric: string, options: OptimizerOptions = {}): Teleprompter {
  if (!(OPTIMIZERS as readonly string[]).includes(name)) throw new DspexError("config", `unknown optimizer '${name}'; valid: ${OPTIMIZERS.join(", ")}`);
  const parsed = optimizerOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DspexError("config", `optimizer options${i?.path.length ? ` at ${i.path.join(".")}` : ""}: ${i?.message ?? "invalid"}`);
  }
  const o = parsed.data;
  const mipro = name === "mipro";
  const common = {
    metric,
    maxBootstrappedDemos: o.maxBootstrappedDemos ?? 4,
    maxLabeledDemos: o.maxLabeledDemos ?? (mipro ? 4 : 16),
    ...(o.metricThreshold !== undefined ? { metricThreshold: o.metricThreshold } : {}),
    ...(o.maxErrors !== undefined ? { maxErrors: o.maxErrors } : {}),
  };
  switch (name as OptimizerName) {
    case "labeled":
      return new LabeledFewShot({ k: common.maxLabeledDemos });
    case "bootstrap":
      return new BootstrapFewShot({ ...common, maxRounds: o.maxRounds ?? 1 });
    case "random-search":
      return new BootstrapFewShotWithRandomSearch({ ...common, maxRounds: o.maxRounds ?? 1, numCandidatePrograms: o.numCandidates ?? 16 });
    case "mipro":
      return new MIPROv2({
        ...common,
        numCandidates: Math.max(1, o.numCandidates ?? 6),
        ...(o.numTrials !== undefined ? { numTrials: o.numTrials } : {}),
        ...(o.minibatchSize !== undefined ? { minibatchSize: o.minibatchSize } : {}),
        seed: o.seed ?? 9,
      });
  }
}
