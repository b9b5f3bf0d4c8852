// What every provider client implements, plus the error-body and Retry-After parsing they share.
import { z } from "zod";
import type { ChatMessage, ResponseFormat } from "./types.js";
import type { HttpResponse } from "./http.js";
import { LMError, codeForStatus, hintFor } from "./errors.js";

export type ProviderName = "openai" | "anthropic" | "gemini";

/** A request after defaults are merged, without cache-only fields (rolloutId, cache). */
export interface WireRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  maxTokens?: number;
  n?: number;
  stop?: string[];
  topP?: number;
  responseFormat?: ResponseFormat;
}

export interface ProviderReply {
  outputs: string[];
  finishReasons: (string | null)[];
  /** Model named by the provider in the reply. */
  model: string;
  promptTokens: number;
  completionTokens: number;
}

export interface Provider {
  readonly name: ProviderName;
  /** gen_ai.provider.name / gen_ai.system value. */
  readonly otelName: string;
  readonly origin: string;
  /** Request path (with any base path prefix). */
  readonly path: string;
  /** Headers sent on every request (auth, content type, version). */
  readonly headers: Record<string, string>;
  /** False when the API has no `n` (Anthropic): the client fans out n requests. */
  readonly supportsN: boolean;
  encode(req: WireRequest): string;
  /** Parse a 2xx reply or throw the typed error for a non-2xx one. */
  decode(res: HttpResponse, req: WireRequest): ProviderReply;
}

// ---------------------------------------------------------------------------
// Error bodies. OpenAI: {error:{message,type,code}}; Anthropic: {type:"error",error:{type,message}};
// Gemini: {error:{code,message,status,details}}; vLLM/others: {message,type} or {detail}.

const ErrorObject = z.looseObject({
  message: z.string().optional(),
  type: z.string().nullish(),
  code: z.union([z.string(), z.number()]).nullish(),
  status: z.string().optional(),
  details: z.array(z.unknown()).optional(),
});

const ErrorBody = z.looseObject({
  error: z.union([ErrorObject, z.string()]).optional(),
  message: z.string().optional(),
  type: z.string().optional(),
  detail: z.unknown().optional(),
});

const RetryInfo = z.looseObject({ "@type": z.string(), retryDelay: z.string() });

export interface ParsedErrorBody {
  message?: string;
  type?: string;
  retryDelayMs?: number;
}

export function parseErrorBody(text: string): ParsedErrorBody {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const trimmed = text.trim();
    return trimmed ? { message: trimmed.slice(0, 500) } : {};
  }
  const parsed = ErrorBody.safeParse(json);
  if (!parsed.success) return {};
  const b = parsed.data;
  if (typeof b.error === "string") return { message: b.error };
  if (b.error) {
    const e = b.error;
    let retryDelayMs: number | undefined;
    for (const d of e.details ?? []) {
      const r = RetryInfo.safeParse(d);
      if (r.success && r.data["@type"].endsWith("RetryInfo")) retryDelayMs = parseDurationMs(r.data.retryDelay);
    }
    const type = e.type ?? e.status ?? (typeof e.code === "string" ? e.code : undefined);
    const code = typeof e.code === "string" && e.code !== type ? e.code : undefined;
    return { message: e.message, type: code ? `${type}/${code}` : (type ?? undefined), retryDelayMs };
  }
  const detail = typeof b.detail === "string" ? b.detail : b.detail !== undefined ? JSON.stringify(b.detail) : undefined;
  return { message: b.message ?? detail, type: b.type };
}

/** Google duration strings: "12s", "0.5s". */
function parseDurationMs(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)s$/.exec(s.trim());
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** retry-after-ms (OpenAI), else retry-after as seconds (fractions accepted) or an HTTP date. */
export function retryAfterMs(res: HttpResponse, nowMs = Date.now()): number | undefined {
  const ms = header(res, "retry-after-ms");
  if (ms !== undefined) {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const ra = header(res, "retry-after");
  if (ra === undefined) return undefined;
  const secs = Number(ra);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export function requestIdOf(res: HttpResponse): string | undefined {
  return header(res, "x-request-id") ?? header(res, "request-id") ?? header(res, "x-goog-request-id");
}

/** The typed error for a non-2xx reply, carrying the provider's message verbatim. */
export function httpError(provider: ProviderName, model: string, res: HttpResponse): LMError {
  const body = parseErrorBody(res.text);
  const code = codeForStatus(res.status, body.message ?? "", body.type ?? "");
  const retryAfter = retryAfterMs(res) ?? body.retryDelayMs;
  const what = body.message ? `: ${body.message}` : "";
  const type = body.type ? ` ${body.type}` : "";
  return new LMError(code, `${provider} ${model} returned HTTP ${res.status}${type}${what} (${code}; ${hintFor(code)})`, {
    provider,
    model,
    status: res.status,
    providerMessage: body.message,
    providerType: body.type,
    retryAfterMs: retryAfter,
    requestId: requestIdOf(res),
  });
}

/** JSON.parse a 2xx body, or the typed bad_response error. */
export function parseJsonBody(provider: ProviderName, model: string, res: HttpResponse): unknown {
  try {
    return JSON.parse(res.text);
  } catch (err) {
    throw badResponse(provider, model, res, `body is not valid JSON (${(err as Error).message})`);
  }
}

export function badResponse(provider: ProviderName, model: string, res: HttpResponse, why: string): LMError {
  const snippet = res.text.length > 200 ? `${res.text.slice(0, 200)}…` : res.text;
  return new LMError(
    "bad_response",
    `${provider} ${model} sent a malformed reply (HTTP ${res.status}): ${why}; body starts ${JSON.stringify(snippet)} (${hintFor("bad_response")})`,
    { provider, model, status: res.status, requestId: requestIdOf(res) },
  );
}

/** Zod issues as one short line, for bad_response messages. */
export function zodSummary(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

/** Strip a trailing slash so base + path joins cleanly. */
export function splitBaseUrl(baseUrl: string): { origin: string; basePath: string } {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new LMError("config", `invalid base URL ${JSON.stringify(baseUrl)}; use e.g. http://127.0.0.1:8787/v1`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new LMError("config", `base URL ${baseUrl} must be http(s)`);
  }
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, "") };
}
