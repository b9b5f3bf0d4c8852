// createLM("openai/gpt-4o-mini" | "anthropic/claude-..." | "gemini/gemini-2.5-flash", options)
// picks the provider by prefix. "openai/<model>" with a baseUrl (or OPENAI_BASE_URL) talks to
// any OpenAI-compatible server: vLLM, Ollama, `dspex sim-lm`.
// Keys and URLs: options first, then OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_API_KEY /
// ANTHROPIC_BASE_URL, GEMINI_API_KEY (or GOOGLE_API_KEY) / GEMINI_BASE_URL.
import { z } from "zod";
import type { LMSettings, ResponseFormat } from "./types.js";
import { LMError } from "./errors.js";
import { LMClient, type LMTransportOptions } from "./client.js";
import { OPENAI_DEFAULT_BASE_URL, OpenAIProvider } from "./openai.js";
import { ANTHROPIC_DEFAULT_BASE_URL, AnthropicProvider } from "./anthropic.js";
import { GEMINI_DEFAULT_BASE_URL, GeminiProvider } from "./gemini.js";
import type { Provider, ProviderName } from "./provider.js";

export interface LMOptions extends LMTransportOptions {
  apiKey?: string;
  /** Provider base URL, e.g. http://127.0.0.1:8787/v1 for an OpenAI-compatible server. */
  baseUrl?: string;
  /** Extra headers on every request (e.g. a gateway's routing header). */
  headers?: Record<string, string>;
  /** Default settings, under each request's own. */
  settings?: LMSettings;
  // Shorthands for the common defaults (override `settings`).
  temperature?: number;
  maxTokens?: number;
  n?: number;
  topP?: number;
  stop?: string[];
  responseFormat?: ResponseFormat;
  /** Environment to read keys/URLs from. Default process.env. */
  env?: Record<string, string | undefined>;
}

const PREFIXES: readonly ProviderName[] = ["openai", "anthropic", "gemini"];

/** "openai/gpt-4o" -> ["openai", "gpt-4o"]; a bare well-known name gets its provider inferred. */
export function parseModelString(model: string): { provider: ProviderName; name: string } {
  const slash = model.indexOf("/");
  if (slash > 0) {
    const prefix = model.slice(0, slash);
    const name = model.slice(slash + 1);
    if ((PREFIXES as readonly string[]).includes(prefix) && name.length > 0) return { provider: prefix as ProviderName, name };
  } else if (/^(gpt-|o\d|chatgpt-)/.test(model)) return { provider: "openai", name: model };
  else if (model.startsWith("claude")) return { provider: "anthropic", name: model };
  else if (model.startsWith("gemini")) return { provider: "gemini", name: model };
  throw new LMError(
    "config",
    `unknown model string ${JSON.stringify(model)}: use "openai/<model>" (also for OpenAI-compatible servers with baseUrl), "anthropic/<model>" or "gemini/<model>"`,
  );
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.length > 0 ? v : undefined;
}

/** Create an LM client for a provider-prefixed model string. Throws LMError("config") on a bad string or URL. */
export function createLM(model: string, options: LMOptions = {}): LMClient {
  const env = options.env ?? process.env;
  const { provider: which, name } = parseModelString(model);
  const settings: LMSettings = { ...options.settings };
  if (options.temperature !== undefined) settings.temperature = options.temperature;
  if (options.maxTokens !== undefined) settings.maxTokens = options.maxTokens;
  if (options.n !== undefined) settings.n = options.n;
  if (options.topP !== undefined) settings.topP = options.topP;
  if (options.stop !== undefined) settings.stop = options.stop;
  if (options.responseFormat !== undefined) settings.responseFormat = options.responseFormat;

  let provider: Provider;
  let missingKey: LMError | undefined;
  const keyError = (envName: string) =>
    new LMError("auth", `no API key for ${model}: set ${envName} or pass { apiKey } to createLM (not needed with a custom baseUrl)`, {
      provider: which,
      model,
    });
  if (which === "openai") {
    const baseUrl = nonEmpty(options.baseUrl) ?? nonEmpty(env.OPENAI_BASE_URL) ?? OPENAI_DEFAULT_BASE_URL;
    const apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env.OPENAI_API_KEY);
    provider = new OpenAIProvider({ model: name, baseUrl, apiKey, extraHeaders: options.headers });
    if (!apiKey && baseUrl === OPENAI_DEFAULT_BASE_URL) missingKey = keyError("OPENAI_API_KEY");
  } else if (which === "anthropic") {
    const baseUrl = nonEmpty(options.baseUrl) ?? nonEmpty(env.ANTHROPIC_BASE_URL) ?? ANTHROPIC_DEFAULT_BASE_URL;
    const apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env.ANTHROPIC_API_KEY);
    provider = new AnthropicProvider({ baseUrl, apiKey, extraHeaders: options.headers });
    if (!apiKey && baseUrl === ANTHROPIC_DEFAULT_BASE_URL) missingKey = keyError("ANTHROPIC_API_KEY");
  } else {
    const baseUrl = nonEmpty(options.baseUrl) ?? nonEmpty(env.GEMINI_BASE_URL) ?? GEMINI_DEFAULT_BASE_URL;
    const apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env.GEMINI_API_KEY) ?? nonEmpty(env.GOOGLE_API_KEY);
    provider = new GeminiProvider({ model: name, baseUrl, apiKey, extraHeaders: options.headers });
    if (!apiKey && baseUrl === GEMINI_DEFAULT_BASE_URL) missingKey = keyError("GEMINI_API_KEY");
  }
  // A missing key fails the first call, not construction, so saved programs still load.
  return new LMClient(model, name, provider, settings, options, missingKey);
}

const SavedLM = z.looseObject({
  model: z.string(),
  cache: z.boolean().optional(),
  num_retries: z.number().int().min(0).optional(),
  temperature: z.number().nullish(),
  max_tokens: z.number().int().positive().nullish(),
  top_p: z.number().nullish(),
  n: z.number().int().positive().nullish(),
  stop: z.array(z.string()).nullish(),
});

/**
 * Rebuild an LM from a saved program's DSPy-format `lm` entry (keys and URLs come from
 * `options`/environment, never from the file). Returns undefined when the entry is not usable.
 */
export function lmFromState(state: Record<string, unknown>, options: LMOptions = {}): LMClient | undefined {
  const parsed = SavedLM.safeParse(state);
  if (!parsed.success) return undefined;
  const s = parsed.data;
  const settings: LMSettings = { ...options.settings };
  if (s.temperature != null) settings.temperature = s.temperature;
  if (s.max_tokens != null) settings.maxTokens = s.max_tokens;
  if (s.top_p != null) settings.topP = s.top_p;
  if (s.n != null) settings.n = s.n;
  if (s.stop != null) settings.stop = s.stop;
  try {
    return createLM(s.model, {
      ...options,
      settings,
      cache: s.cache === false ? false : options.cache,
      retry: options.retry ?? (s.num_retries !== undefined ? { maxRetries: s.num_retries } : undefined),
    });
  } catch {
    return undefined;
  }
}

export { LMClient } from "./client.js";
export type { LMTransportOptions, LMClientStats } from "./client.js";
export { LMError, isLMError } from "./errors.js";
export type { LMErrorCode } from "./errors.js";
export { LMCache, cacheKey, configureCache, defaultCache } from "./cache.js";
export type { CacheOptions, CacheStats } from "./cache.js";
export { Limiter } from "./limits.js";
export type { LimitOptions } from "./limits.js";
export { resetBreakers } from "./resilience.js";
export type { BreakerOptions, RetryOptions, BreakerState } from "./resilience.js";
export { UsageTracker, trackUsage, processUsage, resetProcessUsage, currentUsageTracker, setModelPrice, priceOf } from "./usage.js";
export type { ModelPrice, UsageTotals } from "./usage.js";
export { CallHistory, globalHistory, inspectHistory, formatHistory } from "./history.js";
export type { HistoryEntry } from "./history.js";
export { closeAllPools } from "./http.js";
export * from "./types.js";
