// sim-lm: a local LM server speaking OpenAI chat completions, Anthropic messages and Gemini
// generateContent, with set latency, a capacity limit (requests beyond it queue FIFO, like a
// GPU server), seeded fault injection, usage tokens and deterministic task-aware answers
// (see answer.ts). Binds 127.0.0.1 by default; port 0 picks a free port.
//
// Routes: POST /v1/chat/completions, GET /v1/models[/{id}], POST /v1/messages (needs the
// anthropic-version header, like the real API), POST /v1beta/models/{model}:generateContent,
// GET /stats, POST /stats/reset, POST /faults {"kind", "count"} (force the next faults),
// GET /health.
//
// Faults: the i-th completion request (arrival order, counted since start or the last
// reset) gets a fault iff unit(seed, "fault", i) < errorRate; its kind is drawn from the
// weighted mix. rate_limit replies 429 at once (Retry-After / retry-after-ms / RetryInfo);
// server_error 500 and overloaded (529 Anthropic, 503 others) reply after the latency;
// slow adds slowMs; drop destroys the socket after reading the request; malformed sends a
// 200 with half a JSON body. Forced faults (inject / POST /faults) go first.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { answer, applyLimits, type AccuracyOptions } from "./answer.js";
import { countTokens, pick, unit } from "./hash.js";
import {
  FAULT_MESSAGES,
  anthropicReply,
  errorReply,
  geminiReply,
  openaiReply,
  parseAnthropic,
  parseGemini,
  parseOpenAI,
  type Api,
  type Completion,
  type ErrorKind,
  type ParseResult,
  type SimRequest,
} from "./wire.js";

export const FAULT_KINDS = ["rate_limit", "server_error", "overloaded", "slow", "drop", "malformed"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Default mix of injected faults (relative weights). */
export const DEFAULT_FAULT_MIX: Record<FaultKind, number> = {
  rate_limit: 0.35,
  server_error: 0.35,
  overloaded: 0.1,
  slow: 0.1,
  drop: 0.1,
  malformed: 0,
};

export interface SimLmOptions extends AccuracyOptions {
  /** 0 (default) = any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Per-request processing time in ms (while holding a capacity slot). Default 0. */
  latencyMs?: number;
  /** Extra deterministic per-request latency in [0, jitterMs). Default 0. */
  jitterMs?: number;
  /** Requests processed at once; more queue FIFO. 0 (default) = unlimited. */
  capacity?: number;
  /** Probability that a completion request gets an injected fault. Default 0. */
  errorRate?: number;
  /** Relative weights of fault kinds (unnamed kinds get 0). Default DEFAULT_FAULT_MIX. */
  faultMix?: Partial<Record<FaultKind, number>>;
  /** Wait the 429 replies ask for (Retry-After). Default 1000 ms. */
  retryAfterMs?: number;
  /** Extra delay of a "slow" fault. Default max(1000, 10 × latencyMs). */
  slowMs?: number;
  /** Seed of answers and faults. Default 0. */
  seed?: number;
  /** Model ids listed by /v1/models. */
  models?: string[];
  /** When set, requests must carry this key (Bearer / x-api-key / x-goog-api-key / ?key=). */
  apiKey?: string;
  /** Prompt + max tokens above this get a context-window error. Default 128,000. */
  contextWindow?: number;
}

/** Validates options from code, flags or JSON (the CLI uses the same schema). */
export const SimLmOptionsSchema = z.object({
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().min(1).optional(),
  latencyMs: z.number().min(0).max(600_000).optional(),
  jitterMs: z.number().min(0).max(600_000).optional(),
  capacity: z.number().int().min(0).optional(),
  errorRate: z.number().min(0).max(1).optional(),
  faultMix: z.partialRecord(z.enum(FAULT_KINDS), z.number().min(0)).optional(),
  retryAfterMs: z.number().min(0).optional(),
  slowMs: z.number().min(0).optional(),
  seed: z.number().int().optional(),
  models: z.array(z.string().min(1)).optional(),
  apiKey: z.string().optional(),
  contextWindow: z.number().int().positive().optional(),
  baseAccuracy: z.number().min(0).max(1).optional(),
  demoBoost: z.number().min(0).max(1).optional(),
  maxBoostedDemos: z.number().int().min(0).optional(),
  instructionBoost: z.number().min(0).max(1).optional(),
  instructionKeywords: z.array(z.string()).optional(),
  reasoningBoost: z.number().min(0).max(1).optional(),
});

export interface SimLmStats {
  calls: { total: number; byEndpoint: Record<string, number> };
  /** Completions answered successfully (injected faults and bad requests excluded). */
  completions: number;
  /** Requests received and not yet finished (queued ones included). */
  inFlight: number;
  inFlightPeak: number;
  /** Requests holding a capacity slot. */
  processing: number;
  processingPeak: number;
  queued: number;
  queuedPeak: number;
  errorsInjected: Record<FaultKind, number> & { total: number };
  badRequests: number;
  tokens: { prompt: number; completion: number };
  /** TCP connections accepted (keep-alive clients reuse them). */
  connections: number;
  uptimeMs: number;
}

export interface SimLm {
  /** http://127.0.0.1:PORT (OpenAI base URL: `${url}/v1`). */
  url: string;
  port: number;
  host: string;
  stats(): SimLmStats;
  resetStats(): void;
  /** Force the next `count` completion requests to get `kind` (before random faults). */
  inject(kind: FaultKind, count?: number): void;
  close(): Promise<void>;
}

const MAX_BODY = 32 * 1024 * 1024;

function emptyStats(): Omit<SimLmStats, "uptimeMs" | "inFlight" | "processing" | "queued"> {
  return {
    calls: { total: 0, byEndpoint: {} },
    completions: 0,
    inFlightPeak: 0,
    processingPeak: 0,
    queuedPeak: 0,
    errorsInjected: { rate_limit: 0, server_error: 0, overloaded: 0, slow: 0, drop: 0, malformed: 0, total: 0 },
    badRequests: 0,
    tokens: { prompt: 0, completion: 0 },
    connections: 0,
  };
}

export async function startSimLm(options: SimLmOptions = {}): Promise<SimLm> {
  const checked = SimLmOptionsSchema.safeParse(options);
  if (!checked.success) {
    const i = checked.error.issues[0];
    throw new Error(`invalid sim-lm option ${i.path.join(".")}: ${i.message}`);
  }
  const host = options.host ?? "127.0.0.1";
  const latencyMs = options.latencyMs ?? 0;
  const jitterMs = options.jitterMs ?? 0;
  const capacity = options.capacity && options.capacity > 0 ? options.capacity : Infinity;
  const errorRate = options.errorRate ?? 0;
  // A given mix replaces the default: kinds it does not name get weight 0.
  const mix: Record<FaultKind, number> = options.faultMix
    ? { rate_limit: 0, server_error: 0, overloaded: 0, slow: 0, drop: 0, malformed: 0, ...options.faultMix }
    : DEFAULT_FAULT_MIX;
  const mixTotal = FAULT_KINDS.reduce((s, k) => s + mix[k], 0);
  const retryAfterMs = options.retryAfterMs ?? 1000;
  const slowMs = options.slowMs ?? Math.max(1000, latencyMs * 10);
  const seed = options.seed ?? 0;
  const models = options.models ?? ["sim-lm", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"];
  const contextWindow = options.contextWindow ?? 128_000;
  const knobs: AccuracyOptions = options;
  const started = Date.now();

  let stats = emptyStats();
  let inFlight = 0;
  let processing = 0;
  let faultIndex = 0;
  let idCounter = 0;
  const forced: FaultKind[] = [];
  const waiters: (() => void)[] = [];
  let waitHead = 0;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0) return resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const acquire = (): Promise<void> => {
    if (processing < capacity) {
      processing++;
      if (processing > stats.processingPeak) stats.processingPeak = processing;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      waiters.push(resolve);
      const q = waiters.length - waitHead;
      if (q > stats.queuedPeak) stats.queuedPeak = q;
    });
  };
  const release = () => {
    if (waitHead < waiters.length) {
      const next = waiters[waitHead++];
      if (waitHead === waiters.length) {
        waiters.length = 0;
        waitHead = 0;
      }
      next(); // the slot passes straight to the next waiter
    } else processing--;
  };

  // Fault of the idx-th completion request: forced ones first, else seeded by arrival order.
  const chooseFault = (idx: number): FaultKind | undefined => {
    if (forced.length > 0) return forced.shift();
    if (errorRate <= 0 || mixTotal <= 0 || unit(seed, "fault", idx) >= errorRate) return undefined;
    let r = unit(seed, "fault-kind", idx) * mixTotal;
    for (const k of FAULT_KINDS) {
      r -= mix[k];
      if (r < 0 && mix[k] > 0) return k;
    }
    return FAULT_KINDS.filter((k) => mix[k] > 0).at(-1);
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.destroyed || res.writableEnded) return;
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      "x-request-id": `req_simlm_${++idCounter}`,
      ...headers,
    });
    res.end(text);
  };

  const sendError = (res: ServerResponse, api: Api | "other", kind: ErrorKind, message: string, retryAfter?: number) => {
    const e = errorReply(api, kind, message, retryAfter);
    send(res, e.status, e.body, e.headers);
  };

  const count = (endpoint: string) => {
    stats.calls.total++;
    stats.calls.byEndpoint[endpoint] = (stats.calls.byEndpoint[endpoint] ?? 0) + 1;
  };

  const readBody = (req: IncomingMessage): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          resolve(undefined);
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });

  const authorized = (api: Api, req: IncomingMessage, query: URLSearchParams): boolean => {
    if (options.apiKey === undefined) return true;
    const h = req.headers;
    if (api === "openai") return h.authorization === `Bearer ${options.apiKey}`;
    if (api === "anthropic") return h["x-api-key"] === options.apiKey;
    return h["x-goog-api-key"] === options.apiKey || query.get("key") === options.apiKey;
  };

  const complete = async (api: Api, parsed: ParseResult, res: ServerResponse, req: IncomingMessage) => {
    if (!parsed.ok) {
      stats.badRequests++;
      return sendError(res, api, "bad_request", parsed.message);
    }
    const r: SimRequest = parsed.request;
    // ~4 chars per token plus 4 per message of chat framing, deterministic.
    let promptTokens = r.prompt.system.length > 0 ? countTokens(r.prompt.system) + 4 : 0;
    for (const t of r.prompt.turns) promptTokens += countTokens(t.content) + 4;
    if (promptTokens + (r.maxTokens ?? 0) > contextWindow) {
      stats.badRequests++;
      const msg =
        api === "anthropic"
          ? `prompt is too long: ${promptTokens} tokens + max_tokens ${r.maxTokens ?? 0} > ${contextWindow} maximum`
          : api === "gemini"
            ? `The input token count (${promptTokens}) exceeds the maximum number of tokens allowed (${contextWindow}).`
            : `This model's maximum context length is ${contextWindow} tokens. However, you requested ${promptTokens + (r.maxTokens ?? 0)} tokens. Please reduce the length of the messages or completion.`;
      return sendError(res, api, "context_window", msg);
    }

    const arrival = faultIndex++;
    const fault = chooseFault(arrival);
    if (fault) {
      stats.errorsInjected[fault]++;
      stats.errorsInjected.total++;
    }
    if (fault === "rate_limit") return sendError(res, api, "rate_limit", FAULT_MESSAGES.rate_limit[api], retryAfterMs);
    if (fault === "drop") {
      req.socket.destroy();
      return;
    }

    await acquire();
    try {
      let wait = latencyMs;
      if (jitterMs > 0) wait += pick(jitterMs, seed, "jitter", arrival);
      if (fault === "slow") wait += slowMs;
      await sleep(wait);
    } finally {
      release();
    }
    if (closed) return;
    if (fault === "server_error") return sendError(res, api, "server_error", FAULT_MESSAGES.server_error[api]);
    if (fault === "overloaded") return sendError(res, api, "overloaded", FAULT_MESSAGES.overloaded[api]);

    const a = answer(r.prompt, seed, knobs);
    const texts: string[] = [];
    const finishes: ("stop" | "length")[] = [];
    let completionTokens = 0;
    for (const t of a.texts) {
      const limited = applyLimits(t, r.maxTokens, r.stop);
      texts.push(limited.text);
      finishes.push(limited.finish);
      completionTokens += countTokens(limited.text);
    }
    const c: Completion = { texts, finishes, promptTokens, completionTokens, id: `${seed.toString(16)}${(++idCounter).toString(16).padStart(8, "0")}` };
    const body = api === "openai" ? openaiReply(r.model, c) : api === "anthropic" ? anthropicReply(r.model, c) : geminiReply(r.model, c);
    if (fault === "malformed") {
      const text = JSON.stringify(body);
      return send(res, 200, text.slice(0, Math.max(1, Math.floor(text.length / 2))));
    }
    stats.completions++;
    stats.tokens.prompt += promptTokens;
    stats.tokens.completion += completionTokens;
    send(res, 200, body);
  };

  const jsonBody = async (req: IncomingMessage, res: ServerResponse, api: Api): Promise<unknown> => {
    const text = await readBody(req);
    if (text === undefined) {
      stats.badRequests++;
      sendError(res, api, "bad_request", `request body exceeds ${MAX_BODY} bytes`);
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch {
      stats.badRequests++;
      sendError(res, api, "bad_request", "We could not parse the JSON body of your request. Expected a JSON object.");
      return undefined;
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const query = new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : "");
    const method = req.method ?? "GET";

    if (path === "/stats") {
      if (method === "GET") return send(res, 200, snapshot());
      return send(res, 405, { error: { message: "use GET /stats or POST /stats/reset" } });
    }
    if (path === "/stats/reset" && method === "POST") {
      resetStats();
      return send(res, 200, { ok: true });
    }
    if (path === "/faults" && method === "POST") {
      const body = await jsonBody(req, res, "openai");
      const r = z.object({ kind: z.enum(FAULT_KINDS), count: z.number().int().min(1).max(1_000_000).optional() }).safeParse(body);
      if (!r.success) return send(res, 400, { error: { message: `expected {"kind": one of ${FAULT_KINDS.join("|")}, "count"?: n}` } });
      inject(r.data.kind, r.data.count ?? 1);
      return send(res, 200, { ok: true, pending: forced.length });
    }
    if (path === "/health") return send(res, 200, { ok: true });

    if (method === "GET" && (path === "/v1/models" || path === "/models")) {
      count("models");
      return send(res, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created: 1_700_000_000, owned_by: "sim-lm" })),
      });
    }
    const modelGet = /^\/(?:v1\/)?models\/([^/]+)$/.exec(path);
    if (method === "GET" && modelGet) {
      count("models");
      return send(res, 200, { id: decodeURIComponent(modelGet[1]), object: "model", created: 1_700_000_000, owned_by: "sim-lm" });
    }
    if (method === "POST" && (path === "/v1/chat/completions" || path === "/chat/completions")) {
      count("chat.completions");
      const body = await jsonBody(req, res, "openai");
      if (body === undefined) return;
      if (!authorized("openai", req, query)) {
        return sendError(res, "openai", "auth", "Incorrect API key provided. You can find your API key in your sim-lm options.");
      }
      return complete("openai", parseOpenAI(body), res, req);
    }
    if (method === "POST" && path === "/v1/messages") {
      count("messages");
      const body = await jsonBody(req, res, "anthropic");
      if (body === undefined) return;
      if (!authorized("anthropic", req, query)) return sendError(res, "anthropic", "auth", "invalid x-api-key");
      if (req.headers["anthropic-version"] === undefined) {
        stats.badRequests++;
        return sendError(res, "anthropic", "bad_request", "anthropic-version: header is required");
      }
      return complete("anthropic", parseAnthropic(body), res, req);
    }
    const gem = /^\/v1(?:beta|alpha)?\/models\/([^/:]+):generateContent$/.exec(path);
    if (method === "POST" && gem) {
      count("generateContent");
      const body = await jsonBody(req, res, "gemini");
      if (body === undefined) return;
      if (!authorized("gemini", req, query)) {
        return sendError(res, "gemini", "auth", "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer identity to call this API.");
      }
      return complete("gemini", parseGemini(decodeURIComponent(gem[1]), body), res, req);
    }
    count("other");
    return sendError(res, "other", "not_found", `sim-lm has no route ${method} ${path}`);
  };

  const snapshot = (): SimLmStats => ({
    ...structuredClone(stats),
    inFlight,
    processing,
    queued: waiters.length - waitHead,
    uptimeMs: Date.now() - started,
  });
  const resetStats = () => {
    stats = emptyStats();
    stats.inFlightPeak = inFlight;
    stats.processingPeak = processing;
    faultIndex = 0;
  };
  const inject = (kind: FaultKind, n = 1) => {
    for (let i = 0; i < n; i++) forced.push(kind);
  };

  const server: Server = createServer((req, res) => {
    inFlight++;
    if (inFlight > stats.inFlightPeak) stats.inFlightPeak = inFlight;
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        inFlight--;
      }
    };
    res.on("close", finish);
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { message: `sim-lm internal error: ${(err as Error)?.message ?? err}`, type: "server_error" } });
      else res.destroy();
    });
  });
  server.on("connection", () => {
    stats.connections++;
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}`,
    port,
    host,
    stats: snapshot,
    resetStats,
    inject,
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
