// Public API of the deterministic simulator. See README.md in this folder.
export * from "./protocol.js";
export { createRng, deriveSeed, Sfc32 } from "./rng.js";
export { MemoryStorage } from "./storage.js";
export { EventQueue } from "./heap.js";
export { randomFaultPlan, type Fault, type LinkConfig, type RandomFaultOptions, type TimedFault } from "./faults.js";
export {
  DEFAULT_LINK,
  SimLimitError,
  SimProtocolError,
  Simulator,
  type DropCause,
  type RunOptions,
  type RunResult,
  type SimMetrics,
  type SimOptions,
  type StopReason,
  type TraceRecord,
} from "./simulator.js";
