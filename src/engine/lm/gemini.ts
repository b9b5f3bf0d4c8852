// Gemini generateContent: POST {base}/v1beta/models/{model}:generateContent with x-goog-api-key;
// system prompt in systemInstruction, turns in contents with roles user/model, sampling in
// generationConfig (candidateCount = n), usage in usageMetadata.
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

export const GEMINI_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com";

const Part = z.object({ text: z.string().optional(), thought: z.boolean().optional() });

const GenerateContentResponse = z.object({
  candidates: z
    .array(
      z.object({
        content: z.object({ parts: z.array(Part).optional() }).optional(),
        finishReason: z.string().optional(),
        index: z.number().optional(),
      }),
    )
    .optional(),
  promptFeedback: z.object({ blockReason: z.string().optional() }).optional(),
  usageMetadata: z
    .looseObject({
      promptTokenCount: z.number().optional(),
      candidatesTokenCount: z.number().optional(),
      thoughtsTokenCount: z.number().optional(),
    })
    .optional(),
  modelVersion: z.string().optional(),
});

const BLOCKED = new Set(["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"]);

export interface GeminiOptions {
  model: string;
  baseUrl?: string;
  apiKey?: string;
  extraHeaders?: Record<string, string>;
}

export class GeminiProvider implements Provider {
  readonly name = "gemini" as const;
  readonly otelName = "gcp.gemini";
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly supportsN = true;

  constructor(opts: GeminiOptions) {
    const { origin, basePath } = splitBaseUrl(opts.baseUrl ?? GEMINI_DEFAULT_BASE_URL);
    this.origin = origin;
    const versioned = /\/v1(beta|alpha)?$/.test(basePath) ? basePath : `${basePath}/v1beta`;
    this.path = `${versioned}/models/${encodeURIComponent(opts.model)}:generateContent`;
    this.headers = { "content-type": "application/json", ...opts.extraHeaders };
    if (opts.apiKey) this.headers["x-goog-api-key"] = opts.apiKey;
  }

  encode(req: WireRequest): string {
    let system: string | undefined;
    const contents: { role: string; parts: { text: string }[] }[] = [];
    for (const m of req.messages) {
      if (m.role === "system") system = system === undefined ? m.content : `${system}\n\n${m.content}`;
      else contents.push({ role: m.role === "assistant" ? "model" : "user", parts: [{ text: m.content }] });
    }
    const gc: Record<string, unknown> = {};
    if (req.temperature !== undefined) gc.temperature = req.temperature;
    if (req.topP !== undefined) gc.topP = req.topP;
    if (req.maxTokens !== undefined) gc.maxOutputTokens = req.maxTokens;
    if (req.n !== undefined && req.n !== 1) gc.candidateCount = req.n;
    if (req.stop !== undefined && req.stop.length > 0) gc.stopSequences = req.stop;
    const rf = req.responseFormat;
    if (rf !== undefined) {
      gc.responseMimeType = "application/json";
      // responseJsonSchema takes JSON Schema as is; responseSchema (OpenAPI subset) would
      // reject the additionalProperties/required the JSON adapter emits.
      if (rf.type === "json_schema") gc.responseJsonSchema = rf.schema;
    }
    const body: Record<string, unknown> = {};
    if (system !== undefined) body.systemInstruction = { parts: [{ text: system }] };
    body.contents = contents;
    body.generationConfig = gc;
    return JSON.stringify(body);
  }

  decode(res: HttpResponse, req: WireRequest): ProviderReply {
    if (res.status < 200 || res.status >= 300) throw httpError("gemini", req.model, res);
    const parsed = GenerateContentResponse.safeParse(parseJsonBody("gemini", req.model, res));
    if (!parsed.success) throw badResponse("gemini", req.model, res, `not a GenerateContentResponse (${zodSummary(parsed.error)})`);
    const data = parsed.data;
    const candidates = data.candidates ?? [];
    if (candidates.length === 0) {
      const reason = data.promptFeedback?.blockReason;
      if (reason) {
        throw new LMError("content_filter", `gemini ${req.model} blocked the prompt (blockReason ${reason})`, {
          provider: "gemini",
          model: req.model,
          status: res.status,
          providerType: reason,
        });
      }
      throw badResponse("gemini", req.model, res, "no candidates");
    }
    const sorted = candidates.length > 1 ? [...candidates].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)) : candidates;
    const outputs: string[] = [];
    const finishReasons: (string | null)[] = [];
    for (const c of sorted) {
      let text = "";
      for (const p of c.content?.parts ?? []) if (p.text !== undefined && p.thought !== true) text += p.text;
      if (text === "" && c.finishReason !== undefined && BLOCKED.has(c.finishReason)) {
        throw new LMError("content_filter", `gemini ${req.model} blocked the reply (finishReason ${c.finishReason})`, {
          provider: "gemini",
          model: req.model,
          status: res.status,
          providerType: c.finishReason,
        });
      }
      outputs.push(text);
      finishReasons.push(c.finishReason ?? null);
    }
    const u = data.usageMetadata;
    return {
      outputs,
      finishReasons,
      model: data.modelVersion ?? req.model,
      promptTokens: u?.promptTokenCount ?? 0,
      // Thinking tokens are billed as output.
      completionTokens: (u?.candidatesTokenCount ?? 0) + (u?.thoughtsTokenCount ?? 0),
    };
  }
}
