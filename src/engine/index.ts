// DSPEx engine: DSPy's programming model with no cluster dependencies.
import "./modules/builtins.js";

export * from "./errors.js";
export { Example, Prediction, type Record_ } from "./example.js";
export { configure, settings, withSettings, withTrace, UsageScope, type Settings, type TraceEntry } from "./settings.js";
export {
  Signature,
  InputField,
  OutputField,
  inferPrefix,
  defaultInstructions,
  type FieldDef,
  type FieldIO,
  type FieldOptions,
  type SignatureJSON,
  type SignatureState,
} from "./signature/signature.js";
export { T, parseTypeExpr, annotationName, jsonSchema, coerce, type TypeExpr } from "./signature/types.js";
export type { Adapter, AdapterResult } from "./adapters/adapter.js";
export { ChatAdapter, type ChatAdapterOptions } from "./adapters/chat.js";
export { JSONAdapter, structuredOutputFormat } from "./adapters/json.js";
export { parseValue, formatFieldValue } from "./adapters/values.js";
export { Module, isPredictor, type CallOptions, type ModuleSpec } from "./modules/module.js";
export { Predict, type PredictOptions, type PredictorState } from "./modules/predict.js";
export { ChainOfThought, type ChainOfThoughtOptions } from "./modules/chain_of_thought.js";
export { BestOfN, Refine, type BestOfNOptions } from "./modules/best_of_n.js";
export { MultiChainComparison, type MultiChainComparisonOptions } from "./modules/multi_chain_comparison.js";
export { Parallel, type ParallelOptions } from "./modules/parallel.js";
export { ReAct, describeTool, type ReActOptions } from "./modules/react.js";
export {
  getRegistry,
  Registry,
  registerModule,
  registerMetric,
  registerTool,
  registerReward,
  registerType,
  type Metric,
  type RewardFn,
  type ToolDef,
  type ModuleFactory,
} from "./registry.js";
export { saveProgram, loadProgram, programToJSON, programFromJSON, parseProgramJSON, type ProgramJSON } from "./state.js";
export * from "./lm/types.js";

// LM layer: provider clients, resilience, cache, usage.
export {
  createLM,
  lmFromState,
  parseModelString,
  LMClient,
  LMError,
  isLMError,
  LMCache,
  configureCache,
  UsageTracker,
  trackUsage,
  setModelPrice,
  inspectHistory,
  closeAllPools,
  type LMOptions,
  type LMErrorCode,
} from "./lm/index.js";

// Evaluation and optimizers, all running their work through an Executor.
export { Evaluate, type EvaluateOptions, type EvaluationResult, type ExampleResult } from "./evaluate/evaluate.js";
export { LocalExecutor, PreparedProgram, type Executor, type Task, type TaskBatch, type TaskResult, type TraceRecord, type RunOptions } from "./evaluate/executor.js";
export { CheckpointExecutor, TaskKeys } from "./evaluate/checkpoint.js";
export { resolveMetric, normalizeText, emScore, f1Score } from "./evaluate/metrics.js";
export { readRecords, readAll } from "./evaluate/data.js";
export { LabeledFewShot } from "./teleprompt/labeled.js";
export { BootstrapFewShot, type BootstrapFewShotOptions } from "./teleprompt/bootstrap.js";
export { BootstrapFewShotWithRandomSearch, type RandomSearchOptions } from "./teleprompt/random_search.js";
export { MIPROv2, type MIPROOptions } from "./teleprompt/mipro.js";
export type { Teleprompter, CompileOptions } from "./teleprompt/teleprompter.js";
export { PyRandom } from "./teleprompt/pyrandom.js";
export { createOptimizer, OPTIMIZERS, type OptimizerName, type OptimizerOptions } from "./teleprompt/by_name.js";

import { getRegistry as registryForLM } from "./registry.js";
import { lmFromState as lmFactory } from "./lm/index.js";
// Saved programs' `lm` entries rebuild real clients (keys come from the environment).
registryForLM().setLMFactory((state) => lmFactory(state));
