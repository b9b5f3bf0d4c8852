// The three wire formats sim-lm speaks: request schemas (zod), conversion to a SimPrompt,
// and each provider's documented reply and error shapes.
import { z } from "zod";
import type { SimPrompt, SimResponseFormat, SimTurn } from "./answer.js";

export type Api = "openai" | "anthropic" | "gemini";

/** A request normalised across APIs. */
export interface SimRequest {
  api: Api;
  model: string;
  prompt: SimPrompt;
  maxTokens?: number;
  stop?: string[];
}

// Content may be a string or a list of text parts (both are valid in every API).
const TextPart = z.looseObject({ type: z.string().optional(), text: z.string().optional() });
const Content = z.union([z.string(), z.array(TextPart), z.null()]);

function textOf(c: z.infer<typeof Content>): string {
  if (c === null) return "";
  if (typeof c === "string") return c;
  return c.map((p) => p.text ?? "").join("");
}

const OpenAIRequest = z.looseObject({
  model: z.string().min(1),
  messages: z
    .array(z.looseObject({ role: z.enum(["system", "developer", "user", "assistant", "tool"]), content: Content.optional() }))
    .min(1),
  n: z.number().int().min(1).max(128).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  stream: z.boolean().nullish(),
  response_format: z
    .union([
      z.looseObject({ type: z.literal("text") }),
      z.looseObject({ type: z.literal("json_object") }),
      z.looseObject({
        type: z.literal("json_schema"),
        json_schema: z.looseObject({ name: z.string(), schema: z.unknown().optional(), strict: z.boolean().nullish() }),
      }),
    ])
    .nullish(),
});

const AnthropicRequest = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().min(1),
  system: z.union([z.string(), z.array(TextPart)]).optional(),
  messages: z.array(z.looseObject({ role: z.enum(["user", "assistant"]), content: Content })).min(1),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().optional(),
  stop_sequences: z.array(z.string()).optional(),
  stream: z.boolean().optional(),
});

const GeminiContent = z.looseObject({
  role: z.enum(["user", "model"]).optional(),
  parts: z.array(z.looseObject({ text: z.string().optional() })),
});

const GeminiRequest = z.looseObject({
  contents: z.array(GeminiContent).min(1),
  systemInstruction: GeminiContent.optional(),
  system_instruction: GeminiContent.optional(),
  generationConfig: z
    .looseObject({
      temperature: z.number().min(0).max(2).optional(),
      topP: z.number().optional(),
      maxOutputTokens: z.number().int().min(1).optional(),
      candidateCount: z.number().int().min(1).max(8).optional(),
      stopSequences: z.array(z.string()).optional(),
      responseMimeType: z.string().optional(),
      responseSchema: z.unknown().optional(),
      responseJsonSchema: z.unknown().optional(),
    })
    .optional(),
});

export type ParseResult = { ok: true; request: SimRequest } | { ok: false; message: string };

function issues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "body"}: ${i.message}`)
    .join("; ");
}

export function parseOpenAI(body: unknown): ParseResult {
  const r = OpenAIRequest.safeParse(body);
  if (!r.success) return { ok: false, message: `Invalid request: ${issues(r.error)}` };
  const b = r.data;
  if (b.stream) return { ok: false, message: "stream=true is not supported by sim-lm; send stream=false" };
  let system = "";
  const turns: SimTurn[] = [];
  for (const m of b.messages) {
    const text = textOf(m.content ?? null);
    if (m.role === "system" || m.role === "developer") system = system ? `${system}\n\n${text}` : text;
    else turns.push({ role: m.role === "assistant" ? "assistant" : "user", content: text });
  }
  let responseFormat: SimResponseFormat | undefined;
  const rf = b.response_format;
  if (rf?.type === "json_object") responseFormat = { type: "json_object" };
  else if (rf?.type === "json_schema") responseFormat = { type: "json_schema", schema: (rf as { json_schema: { schema?: unknown } }).json_schema.schema };
  return {
    ok: true,
    request: {
      api: "openai",
      model: b.model,
      prompt: { system, turns, responseFormat, temperature: b.temperature ?? undefined, n: b.n ?? 1 },
      maxTokens: b.max_completion_tokens ?? b.max_tokens ?? undefined,
      stop: typeof b.stop === "string" ? [b.stop] : (b.stop ?? undefined),
    },
  };
}

export function parseAnthropic(body: unknown): ParseResult {
  const r = AnthropicRequest.safeParse(body);
  if (!r.success) return { ok: false, message: issues(r.error) };
  const b = r.data;
  if (b.stream) return { ok: false, message: "stream: sim-lm does not support streaming; send stream=false" };
  const system = b.system === undefined ? "" : typeof b.system === "string" ? b.system : textOf(b.system);
  const turns = b.messages.map((m) => ({ role: m.role, content: textOf(m.content) }));
  return {
    ok: true,
    request: {
      api: "anthropic",
      model: b.model,
      prompt: { system, turns, temperature: b.temperature, n: 1 },
      maxTokens: b.max_tokens,
      stop: b.stop_sequences,
    },
  };
}

export function parseGemini(model: string, body: unknown): ParseResult {
  const r = GeminiRequest.safeParse(body);
  if (!r.success) return { ok: false, message: `Invalid JSON payload received. ${issues(r.error)}` };
  const b = r.data;
  const si = b.systemInstruction ?? b.system_instruction;
  const system = si ? si.parts.map((p) => p.text ?? "").join("") : "";
  const turns: SimTurn[] = b.contents.map((c) => ({
    role: c.role === "model" ? "assistant" : "user",
    content: c.parts.map((p) => p.text ?? "").join(""),
  }));
  const gc = b.generationConfig ?? {};
  let responseFormat: SimResponseFormat | undefined;
  if (gc.responseMimeType === "application/json") {
    const schema = gc.responseJsonSchema ?? gc.responseSchema;
    responseFormat = schema !== undefined ? { type: "json_schema", schema: lowerCaseTypes(schema) } : { type: "json_object" };
  }
  return {
    ok: true,
    request: {
      api: "gemini",
      model,
      prompt: { system, turns, responseFormat, temperature: gc.temperature, n: gc.candidateCount ?? 1 },
      maxTokens: gc.maxOutputTokens,
      stop: gc.stopSequences,
    },
  };
}

/** Gemini's OpenAPI-style responseSchema spells types "STRING", "INTEGER", ... */
function lowerCaseTypes(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(lowerCaseTypes);
  if (!schema || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === "type" && typeof v === "string" ? v.toLowerCase() : lowerCaseTypes(v);
  return out;
}

// ---------------------------------------------------------------------------
// Replies

export interface Completion {
  texts: string[];
  finishes: ("stop" | "length")[];
  promptTokens: number;
  completionTokens: number;
  id: string;
}

export function openaiReply(model: string, c: Completion): unknown {
  return {
    id: `chatcmpl-${c.id}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: c.texts.map((text, index) => ({
      index,
      message: { role: "assistant", content: text, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: c.finishes[index],
    })),
    usage: {
      prompt_tokens: c.promptTokens,
      completion_tokens: c.completionTokens,
      total_tokens: c.promptTokens + c.completionTokens,
    },
    system_fingerprint: "fp_simlm",
  };
}

export function anthropicReply(model: string, c: Completion): unknown {
  return {
    id: `msg_${c.id}`,
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text: c.texts[0] }],
    stop_reason: c.finishes[0] === "length" ? "max_tokens" : "end_turn",
    stop_sequence: null,
    usage: { input_tokens: c.promptTokens, output_tokens: c.completionTokens },
  };
}

export function geminiReply(model: string, c: Completion): unknown {
  return {
    candidates: c.texts.map((text, index) => ({
      content: { parts: [{ text }], role: "model" },
      finishReason: c.finishes[index] === "length" ? "MAX_TOKENS" : "STOP",
      index,
    })),
    usageMetadata: {
      promptTokenCount: c.promptTokens,
      candidatesTokenCount: c.completionTokens,
      totalTokenCount: c.promptTokens + c.completionTokens,
    },
    modelVersion: model,
    responseId: c.id,
  };
}

// ---------------------------------------------------------------------------
// Errors, in each provider's documented shape

export type ErrorKind =
  | "rate_limit"
  | "server_error"
  | "overloaded"
  | "bad_request"
  | "auth"
  | "not_found"
  | "context_window";

export interface ErrorReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export function errorReply(api: Api | "other", kind: ErrorKind, message: string, retryAfterMs?: number): ErrorReply {
  const retryHeaders: Record<string, string> = {};
  if (retryAfterMs !== undefined) {
    // Standard header in seconds; fractions (non-standard) keep tests fast. OpenAI also
    // sends retry-after-ms. Gemini sends neither, only RetryInfo in the body.
    const secs = retryAfterMs / 1000;
    if (api !== "gemini") retryHeaders["retry-after"] = Number.isInteger(secs) ? String(secs) : secs.toFixed(3);
    if (api === "openai" || api === "other") retryHeaders["retry-after-ms"] = String(Math.round(retryAfterMs));
  }
  if (api === "anthropic") {
    const [status, type] = (
      {
        rate_limit: [429, "rate_limit_error"],
        server_error: [500, "api_error"],
        overloaded: [529, "overloaded_error"],
        bad_request: [400, "invalid_request_error"],
        auth: [401, "authentication_error"],
        not_found: [404, "not_found_error"],
        context_window: [400, "invalid_request_error"],
      } as const
    )[kind];
    return { status, headers: retryHeaders, body: { type: "error", error: { type, message } } };
  }
  if (api === "gemini") {
    const [status, st] = (
      {
        rate_limit: [429, "RESOURCE_EXHAUSTED"],
        server_error: [500, "INTERNAL"],
        overloaded: [503, "UNAVAILABLE"],
        bad_request: [400, "INVALID_ARGUMENT"],
        auth: [403, "PERMISSION_DENIED"],
        not_found: [404, "NOT_FOUND"],
        context_window: [400, "INVALID_ARGUMENT"],
      } as const
    )[kind];
    const details =
      retryAfterMs !== undefined
        ? [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: `${(retryAfterMs / 1000).toFixed(3)}s` }]
        : undefined;
    return { status, headers: retryHeaders, body: { error: { code: status, message, status: st, ...(details ? { details } : {}) } } };
  }
  const [status, type, code] = (
    {
      rate_limit: [429, "requests", "rate_limit_exceeded"],
      server_error: [500, "server_error", null],
      overloaded: [503, "server_error", "overloaded"],
      bad_request: [400, "invalid_request_error", null],
      auth: [401, "invalid_request_error", "invalid_api_key"],
      not_found: [404, "invalid_request_error", "model_not_found"],
      context_window: [400, "invalid_request_error", "context_length_exceeded"],
    } as const
  )[kind];
  return { status, headers: retryHeaders, body: { error: { message, type, param: null, code } } };
}

export const FAULT_MESSAGES: Record<"rate_limit" | "server_error" | "overloaded", Record<Api, string>> = {
  rate_limit: {
    openai: "Rate limit reached for requests (sim-lm injected fault). Please try again shortly.",
    anthropic: "This request would exceed the rate limit for your organization (sim-lm injected fault).",
    gemini: "Resource has been exhausted (e.g. check quota). (sim-lm injected fault)",
  },
  server_error: {
    openai: "The server had an error while processing your request. Sorry about that! (sim-lm injected fault)",
    anthropic: "Internal server error (sim-lm injected fault)",
    gemini: "An internal error has occurred. (sim-lm injected fault)",
  },
  overloaded: {
    openai: "The engine is currently overloaded, please try again later. (sim-lm injected fault)",
    anthropic: "Overloaded (sim-lm injected fault)",
    gemini: "The model is overloaded. Please try again later. (sim-lm injected fault)",
  },
};
