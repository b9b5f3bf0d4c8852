// sim-lm public surface: the server, its options, and the answer rules (for tests and tools).
export { startSimLm, SimLmOptionsSchema, FAULT_KINDS, DEFAULT_FAULT_MIX } from "./server.js";
export type { SimLm, SimLmOptions, SimLmStats, FaultKind } from "./server.js";
export { answer, analyze, parseArithmetic, parseSections, applyLimits, DEFAULT_ACCURACY } from "./answer.js";
export type { AccuracyOptions, Analysis, SimAnswer, SimPrompt, SimTurn, Arithmetic } from "./answer.js";
