// Anthropic Messages API: POST {base}/v1/messages with x-api-key and anthropic-version;
// system prompt is a top-level field, max_tokens is required, there is no `n`
// (the client fans out n requests), errors are {type:"error", error:{type, message}}.
import { z } from "zod";
import type { HttpResponse } from "./http.js";
import { LMError } from "./errors.js";
import {
  badResponse,
  httpError,
  parseJsonBody,
  splitBaseUrl,
  zodSummary,
  type Provider,
  type ProviderReply,
  type WireRequest,
} from "./provider.js";

export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com";
export const ANTHROPIC_VERSION = "2023-06-01";
/** Anthropic requires max_tokens; used when the caller sets none. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

const Message = z.object({
  type: z.literal("message").optional(),
  model: z.string().optional(),
  content: z.array(z.object({ type: z.string(), text: z.string().optional() })),
  stop_reason: z.string().nullish(),
  usage: z
    .looseObject({
      input_tokens: z.number(),
      output_tokens: z.number(),
      cache_creation_input_tokens: z.number().nullish(),
      cache_read_input_tokens: z.number().nullish(),
    })
    .optional(),
});

export interface AnthropicOptions {
  baseUrl?: string;
  apiKey?: string;
  extraHeaders?: Record<string, string>;
}

export class AnthropicProvider implements Provider {
  readonly name = "anthropic" as const;
  readonly otelName = "anthropic";
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly supportsN = false;

  constructor(opts: AnthropicOptions) {
    const { origin, basePath } = splitBaseUrl(opts.baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL);
    this.origin = origin;
    // ANTHROPIC_BASE_URL conventionally has no /v1 (as in the official SDK); accept either.
    this.path = basePath.endsWith("/v1") ? `${basePath}/messages` : `${basePath}/v1/messages`;
    this.headers = { "content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION, ...opts.extraHeaders };
    if (opts.apiKey) this.headers["x-api-key"] = opts.apiKey;
  }

  encode(req: WireRequest): string {
    let system: string | undefined;
    const messages: { role: string; content: string }[] = [];
    for (const m of req.messages) {
      if (m.role === "system") system = system === undefined ? m.content : `${system}\n\n${m.content}`;
      else messages.push(m);
    }
    const body: Record<string, unknown> = {
      model: req.model,
      max_tokens: req.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
    };
    if (system !== undefined) body.system = system;
    body.messages = messages;
    if (req.temperature !== undefined) body.temperature = req.temperature;
    if (req.topP !== undefined) body.top_p = req.topP;
    if (req.stop !== undefined && req.stop.length > 0) body.stop_sequences = req.stop;
    // No response_format in the Messages API: JSON mode relies on the prompt's instructions.
    return JSON.stringify(body);
  }

  decode(res: HttpResponse, req: WireRequest): ProviderReply {
    if (res.status < 200 || res.status >= 300) throw httpError("anthropic", req.model, res);
    const parsed = Message.safeParse(parseJsonBody("anthropic", req.model, res));
    if (!parsed.success) throw badResponse("anthropic", req.model, res, `not a message (${zodSummary(parsed.error)})`);
    const data = parsed.data;
    if (data.stop_reason === "refusal") {
      throw new LMError("content_filter", `anthropic ${req.model} refused to answer (stop_reason "refusal")`, {
        provider: "anthropic",
        model: req.model,
        status: res.status,
      });
    }
    let text = "";
    for (const block of data.content) if (block.type === "text" && block.text !== undefined) text += block.text;
    const u = data.usage;
    return {
      outputs: [text],
      finishReasons: [data.stop_reason ?? null],
      model: data.model ?? req.model,
      promptTokens: u ? u.input_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) : 0,
      completionTokens: u?.output_tokens ?? 0,
    };
  }
}
