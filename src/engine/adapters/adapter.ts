// Adapters turn (signature, demos, inputs) into chat messages and LM text back into fields.
import type { ChatMessage, LM, LMSettings, LMUsage } from "../lm/types.js";
import type { Signature } from "../signature/signature.js";
import type { Record_ } from "../example.js";

export interface AdapterResult {
  /** Parsed output fields, one record per sampled completion. */
  completions: Record_[];
  usage: LMUsage;
  model: string;
}

export interface Adapter {
  readonly name: string;
  format(signature: Signature, demos: Record_[], inputs: Record_): ChatMessage[];
  parse(signature: Signature, completion: string): Record_;
  /** Format, call the LM, parse every completion. */
  call(lm: LM, settings: LMSettings & { signal?: AbortSignal }, signature: Signature, demos: Record_[], inputs: Record_): Promise<AdapterResult>;
  /** The user-message body for a set of input values (used by ReAct to render trajectories). */
  formatUserMessageContent(signature: Signature, inputs: Record_, options?: { prefix?: string; suffix?: string; mainRequest?: boolean }): string;
}
