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
