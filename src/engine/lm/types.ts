// The LM seam: everything in the engine talks to a model through this interface only.
// Providers (OpenAI, Anthropic, Gemini, sim-lm) implement it in this folder; tests may
// implement it with a few lines.

export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

/** Structured-output request, mapped by each provider to its own wire form. */
export type ResponseFormat =
  | { type: "json_object" }
  | { type: "json_schema"; name: string; schema: Record<string, unknown>; strict?: boolean };

/** Generation settings, named like DSPy's lm kwargs but camelCased. */
export interface LMSettings {
  temperature?: number;
  maxTokens?: number;
  /** Number of completions to sample (DSPy's `n`). */
  n?: number;
  stop?: string[];
  topP?: number;
  responseFormat?: ResponseFormat;
  /**
   * Like DSPy's `rollout_id`: part of the cache key, so the same request with a different
   * rollout id is sampled again instead of served from cache.
   */
  rolloutId?: number;
  /** false = bypass the cache for this call (neither read nor write). */
  cache?: boolean;
}

export interface LMRequest extends LMSettings {
  messages: ChatMessage[];
  signal?: AbortSignal;
}

export interface LMUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Cost in US dollars when the price of the model is known, else 0. */
  costUsd: number;
}

export interface LMResponse {
  /** One text per sampled completion (length n). */
  outputs: string[];
  usage: LMUsage;
  /** Model name reported by the provider (or the requested one). */
  model: string;
  /** True when served from cache (usage then counts zero new tokens). */
  cached?: boolean;
  finishReasons?: (string | null)[];
}

export interface LM {
  /** Model string, e.g. "openai/gpt-4o-mini". */
  readonly model: string;
  /** Default settings applied under every request's own settings. */
  readonly settings?: LMSettings;
  call(request: LMRequest): Promise<LMResponse>;
  /** DSPy-format `lm` entry written into saved programs (no secrets). */
  dumpState?(): Record<string, unknown>;
}

export function zeroUsage(): LMUsage {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 };
}

export function addUsage(a: LMUsage, b: LMUsage): LMUsage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    costUsd: a.costUsd + b.costUsd,
  };
}
