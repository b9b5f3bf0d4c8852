// OpenAI chat completions (and OpenAI-compatible servers: vLLM, Ollama, sim-lm).
// POST {base}/chat/completions with Bearer auth; reply choices[].message.content + usage.
import { z } from "zod";
import type { HttpResponse } from "./http.js";
import { LMError } from "./errors.js";
import { messagesJson } from "./texts.js";
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

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";

const Choice = z.object({
  index: z.number().optional(),
  message: z.object({
    content: z.string().nullish(),
    refusal: z.string().nullish(),
  }),
  finish_reason: z.string().nullish(),
});

export const ChatCompletion = z.object({
  model: z.string().optional(),
  choices: z.array(Choice).min(1),
  usage: z
    .looseObject({
      prompt_tokens: z.number(),
      completion_tokens: z.number(),
    })
    .nullish(),
});

type ChatCompletionData = z.infer<typeof ChatCompletion>;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isNullishString = (x: unknown) => x === undefined || x === null || typeof x === "string";

/**
 * The reply as is when it plainly matches ChatCompletion (the usual case), else undefined
 * and the zod schema decides (and explains). Checks exactly what the schema checks, for the
 * fields we read; zod's parse costs ~1 µs per reply on top of JSON.parse.
 */
export function plainCompletion(x: unknown): ChatCompletionData | undefined {
  if (!isObject(x) || (x.model !== undefined && typeof x.model !== "string")) return undefined;
  const choices = x.choices;
  if (!Array.isArray(choices) || choices.length === 0) return undefined;
  for (const c of choices) {
    if (!isObject(c) || (c.index !== undefined && !Number.isFinite(c.index)) || !isNullishString(c.finish_reason)) return undefined;
    const m = c.message;
    if (!isObject(m) || !isNullishString(m.content) || !isNullishString(m.refusal)) return undefined;
  }
  const u = x.usage;
  if (u !== undefined && u !== null && (!isObject(u) || !Number.isFinite(u.prompt_tokens) || !Number.isFinite(u.completion_tokens))) return undefined;
  return x as ChatCompletionData;
}

// Reasoning models reject max_tokens and want max_completion_tokens.
const REASONING_MODEL = /^(o\d|gpt-5)/;

export interface OpenAIOptions {
  model: string;
  baseUrl?: string;
  apiKey?: string;
  organization?: string;
  extraHeaders?: Record<string, string>;
}

export class OpenAIProvider implements Provider {
  readonly name = "openai" as const;
  readonly otelName = "openai";
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly supportsN = true;
  private readonly maxTokensKey: "max_tokens" | "max_completion_tokens";

  constructor(opts: OpenAIOptions) {
    const { origin, basePath } = splitBaseUrl(opts.baseUrl ?? OPENAI_DEFAULT_BASE_URL);
    this.origin = origin;
    this.path = `${basePath}/chat/completions`;
    this.headers = { "content-type": "application/json", ...opts.extraHeaders };
    if (opts.apiKey) this.headers.authorization = `Bearer ${opts.apiKey}`;
    if (opts.organization) this.headers["openai-organization"] = opts.organization;
    this.maxTokensKey = REASONING_MODEL.test(opts.model) ? "max_completion_tokens" : "max_tokens";
  }

  encode(req: WireRequest): string {
    // JSON.stringify({ model, messages, ...rest }) byte for byte, with the messages written by
    // messagesJson (a recurring system prompt or demo is escaped once, not on every call).
    const body: Record<string, unknown> = {};
    if (req.temperature !== undefined) body.temperature = req.temperature;
    if (req.maxTokens !== undefined) body[this.maxTokensKey] = req.maxTokens;
    if (req.n !== undefined && req.n !== 1) body.n = req.n;
    if (req.stop !== undefined && req.stop.length > 0) body.stop = req.stop;
    if (req.topP !== undefined) body.top_p = req.topP;
    const rf = req.responseFormat;
    if (rf !== undefined) {
      body.response_format =
        rf.type === "json_object"
          ? { type: "json_object" }
          : { type: "json_schema", json_schema: { name: rf.name, schema: rf.schema, strict: rf.strict ?? false } };
    }
    const rest = JSON.stringify(body);
    return `{"model":${JSON.stringify(req.model)},"messages":${messagesJson(req.messages)}${rest === "{}" ? "}" : `,${rest.slice(1)}`}`;
  }

  decode(res: HttpResponse, req: WireRequest): ProviderReply {
    if (res.status < 200 || res.status >= 300) throw httpError("openai", req.model, res);
    const json = parseJsonBody("openai", req.model, res);
    let data = plainCompletion(json);
    if (data === undefined) {
      const parsed = ChatCompletion.safeParse(json);
      if (!parsed.success) throw badResponse("openai", req.model, res, `not a chat completion (${zodSummary(parsed.error)})`);
      data = parsed.data;
    }
    const choices = data.choices.length > 1 ? [...data.choices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)) : data.choices;
    const outputs: string[] = new Array(choices.length);
    const finishReasons: (string | null)[] = new Array(choices.length);
    for (let i = 0; i < choices.length; i++) {
      const c = choices[i];
      if ((c.message.content === null || c.message.content === undefined) && c.message.refusal) {
        throw new LMError("content_filter", `openai ${req.model} refused: ${c.message.refusal}`, {
          provider: "openai",
          model: req.model,
          status: res.status,
          providerMessage: c.message.refusal,
        });
      }
      outputs[i] = c.message.content ?? "";
      finishReasons[i] = c.finish_reason ?? null;
    }
    return {
      outputs,
      finishReasons,
      model: data.model ?? req.model,
      promptTokens: data.usage?.prompt_tokens ?? 0,
      completionTokens: data.usage?.completion_tokens ?? 0,
    };
  }
}
