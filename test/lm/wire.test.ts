// Request shapes each client sends and reply/error shapes it reads, checked against a
// recording server; plus createLM's model strings, keys, base URLs and saved state.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LMError, closeAllPools, createLM, lmFromState, parseModelString, type LMOptions } from "../../src/engine/lm/index.js";
import { retryAfterMs } from "../../src/engine/lm/provider.js";

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

let server: Server;
let url: string;
let seen: Seen[] = [];
let reply: { status: number; body: unknown; headers?: Record<string, string> } | undefined;

const OPENAI_OK = {
  id: "x",
  object: "chat.completion",
  model: "gpt-4o-mini-2024-07-18",
  choices: [
    { index: 1, message: { role: "assistant", content: "second" }, finish_reason: "length" },
    { index: 0, message: { role: "assistant", content: "first" }, finish_reason: "stop" },
  ],
  usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
};
const ANTHROPIC_OK = {
  id: "msg",
  type: "message",
  role: "assistant",
  model: "claude-sonnet-4-5-20250929",
  content: [{ type: "text", text: "Hello " }, { type: "text", text: "there" }],
  stop_reason: "end_turn",
  usage: { input_tokens: 10, output_tokens: 3, cache_read_input_tokens: 5, cache_creation_input_tokens: 2 },
};
const GEMINI_OK = {
  candidates: [{ content: { role: "model", parts: [{ text: "thinking", thought: true }, { text: "answer" }] }, finishReason: "STOP", index: 0 }],
  usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 2, thoughtsTokenCount: 5, totalTokenCount: 16 },
  modelVersion: "gemini-2.5-flash-001",
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => {
      const path = req.url ?? "";
      seen.push({ method: req.method ?? "", path, headers: req.headers, body: text ? JSON.parse(text) : {} });
      const r = reply ?? {
        status: 200,
        body: path.includes("chat/completions") ? OPENAI_OK : path.includes("/messages") ? ANTHROPIC_OK : GEMINI_OK,
      };
      res.writeHead(r.status, { "content-type": "application/json", ...r.headers });
      res.end(typeof r.body === "string" ? r.body : JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await closeAllPools();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  seen = [];
  reply = undefined;
});

const OPTS: LMOptions = { cache: false, retry: false, breaker: false, env: {} };
const MESSAGES = [
  { role: "system" as const, content: "sys A" },
  { role: "system" as const, content: "sys B" },
  { role: "user" as const, content: "q1" },
  { role: "assistant" as const, content: "a1" },
  { role: "user" as const, content: "q2" },
];
const SCHEMA = { type: "json_schema" as const, name: "Out", schema: { type: "object", properties: { a: { type: "string" } } }, strict: true };

describe("request and reply shapes", () => {
  it("openai: chat completions body, bearer auth, choices sorted by index, usage", async () => {
    const lm = createLM("openai/gpt-4o-mini", { ...OPTS, baseUrl: `${url}/v1`, apiKey: "sk-1" });
    const r = await lm.call({ messages: MESSAGES, temperature: 0.3, maxTokens: 50, n: 2, stop: ["END"], topP: 0.9, responseFormat: SCHEMA, rolloutId: 7 });
    const s = seen[0];
    expect(s.method).toBe("POST");
    expect(s.path).toBe("/v1/chat/completions");
    expect(s.headers.authorization).toBe("Bearer sk-1");
    expect(s.body).toEqual({
      model: "gpt-4o-mini",
      messages: MESSAGES,
      temperature: 0.3,
      max_tokens: 50,
      n: 2,
      stop: ["END"],
      top_p: 0.9,
      response_format: { type: "json_schema", json_schema: { name: "Out", schema: SCHEMA.schema, strict: true } },
    });
    expect(r.outputs).toEqual(["first", "second"]);
    expect(r.finishReasons).toEqual(["stop", "length"]);
    expect(r.model).toBe("gpt-4o-mini-2024-07-18");
    expect(r.usage).toMatchObject({ promptTokens: 10, completionTokens: 4, totalTokens: 14 });
    expect(r.usage.costUsd).toBeCloseTo((10 * 0.15 + 4 * 0.6) / 1e6, 12);
  });

  it("openai reasoning models get max_completion_tokens; json_object maps", async () => {
    await createLM("openai/o3-mini", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES, maxTokens: 99, responseFormat: { type: "json_object" } });
    expect(seen[0].body.max_completion_tokens).toBe(99);
    expect(seen[0].body.max_tokens).toBeUndefined();
    expect(seen[0].body.response_format).toEqual({ type: "json_object" });
  });

  it("anthropic: top-level system, default max_tokens, version header, text blocks joined, cache tokens counted", async () => {
    const lm = createLM("anthropic/claude-sonnet-4-5", { ...OPTS, baseUrl: url, apiKey: "ak" });
    const r = await lm.call({ messages: MESSAGES, temperature: 0.2, stop: ["X"] });
    const s = seen[0];
    expect(s.path).toBe("/v1/messages");
    expect(s.headers["x-api-key"]).toBe("ak");
    expect(s.headers["anthropic-version"]).toBe("2023-06-01");
    expect(s.headers.authorization).toBeUndefined();
    expect(s.body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: 4096,
      system: "sys A\n\nsys B",
      messages: MESSAGES.slice(2),
      temperature: 0.2,
      stop_sequences: ["X"],
    });
    expect(r.outputs).toEqual(["Hello there"]);
    expect(r.finishReasons).toEqual(["end_turn"]);
    expect(r.usage).toMatchObject({ promptTokens: 17, completionTokens: 3 });
  });

  it("anthropic: n > 1 fans out n requests", async () => {
    const r = await createLM("anthropic/claude-x", { ...OPTS, baseUrl: url }).call({ messages: MESSAGES, n: 3 });
    expect(seen).toHaveLength(3);
    expect(r.outputs).toHaveLength(3);
    expect(r.usage.completionTokens).toBe(9);
  });

  it("gemini: systemInstruction, user/model roles, generationConfig, key header; thoughts excluded but billed", async () => {
    const lm = createLM("gemini/gemini-2.5-flash", { ...OPTS, baseUrl: url, apiKey: "gk" });
    const r = await lm.call({ messages: MESSAGES, temperature: 0.1, maxTokens: 64, n: 2, stop: ["Z"], topP: 0.5, responseFormat: SCHEMA });
    const s = seen[0];
    expect(s.path).toBe("/v1beta/models/gemini-2.5-flash:generateContent");
    expect(s.headers["x-goog-api-key"]).toBe("gk");
    expect(s.body).toEqual({
      systemInstruction: { parts: [{ text: "sys A\n\nsys B" }] },
      contents: [
        { role: "user", parts: [{ text: "q1" }] },
        { role: "model", parts: [{ text: "a1" }] },
        { role: "user", parts: [{ text: "q2" }] },
      ],
      generationConfig: {
        temperature: 0.1,
        topP: 0.5,
        maxOutputTokens: 64,
        candidateCount: 2,
        stopSequences: ["Z"],
        responseMimeType: "application/json",
        responseJsonSchema: SCHEMA.schema,
      },
    });
    expect(r.outputs).toEqual(["answer"]);
    expect(r.model).toBe("gemini-2.5-flash-001");
    expect(r.usage).toMatchObject({ promptTokens: 9, completionTokens: 7 });
  });

  it("error bodies: provider message, type and retry hints are kept", async () => {
    reply = { status: 429, body: { error: { code: 429, message: "Quota exceeded", status: "RESOURCE_EXHAUSTED", details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "7s" }] } } };
    const g = (await createLM("gemini/gemini-2.5-flash", { ...OPTS, baseUrl: url }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(g).toBeInstanceOf(LMError);
    expect(g).toMatchObject({ code: "rate_limited", status: 429, providerMessage: "Quota exceeded", providerType: "RESOURCE_EXHAUSTED", retryAfterMs: 7000 });

    reply = { status: 529, body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, headers: { "request-id": "req_1" } };
    const a = (await createLM("anthropic/claude-x", { ...OPTS, baseUrl: url }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(a).toMatchObject({ code: "overloaded", status: 529, providerMessage: "Overloaded", providerType: "overloaded_error", requestId: "req_1" });

    reply = { status: 400, body: { error: { message: "This model's maximum context length is 8 tokens", type: "invalid_request_error", code: "context_length_exceeded" } } };
    const o = (await createLM("openai/gpt-4o", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(o).toMatchObject({ code: "context_window", status: 400 });

    reply = { status: 400, body: { object: "error", message: "vLLM says no", type: "BadRequestError", code: 400 } };
    const v = (await createLM("openai/llama", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(v).toMatchObject({ code: "bad_request", providerMessage: "vLLM says no" });

    reply = { status: 502, body: "<html>Bad gateway</html>" };
    const h = (await createLM("openai/x", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(h).toMatchObject({ code: "server_error", status: 502, providerMessage: "<html>Bad gateway</html>" });
  });

  it("content filters and wrong shapes are typed errors", async () => {
    reply = { status: 200, body: { choices: [{ index: 0, message: { content: null, refusal: "I can't help with that." }, finish_reason: "stop" }] } };
    const r = (await createLM("openai/x", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(r).toMatchObject({ code: "content_filter", providerMessage: "I can't help with that." });
    reply = { status: 200, body: { promptFeedback: { blockReason: "SAFETY" } } };
    const g = (await createLM("gemini/g", { ...OPTS, baseUrl: url }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(g).toMatchObject({ code: "content_filter", providerType: "SAFETY" });
    reply = { status: 200, body: { hello: "world" } };
    const b = (await createLM("openai/x", { ...OPTS, baseUrl: `${url}/v1` }).call({ messages: MESSAGES }).catch((e) => e)) as LMError;
    expect(b.code).toBe("bad_response");
    expect(b.message).toContain("choices");
  });

  it("Retry-After as seconds, fractional seconds, ms and HTTP date", () => {
    const res = (headers: Record<string, string>) => ({ status: 429, headers, text: "" });
    expect(retryAfterMs(res({ "retry-after": "2" }))).toBe(2000);
    expect(retryAfterMs(res({ "retry-after": "0.25" }))).toBe(250);
    expect(retryAfterMs(res({ "retry-after-ms": "120", "retry-after": "1" }))).toBe(120);
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(retryAfterMs(res({ "retry-after": "Wed, 01 Jan 2025 00:00:03 GMT" }), now)).toBe(3000);
    expect(retryAfterMs(res({}))).toBeUndefined();
  });
});

describe("createLM", () => {
  it("parses provider-prefixed model strings", () => {
    expect(parseModelString("openai/meta-llama/Llama-3-8B")).toEqual({ provider: "openai", name: "meta-llama/Llama-3-8B" });
    expect(parseModelString("gemini/gemini-2.5-pro")).toEqual({ provider: "gemini", name: "gemini-2.5-pro" });
    expect(parseModelString("claude-3-5-haiku")).toEqual({ provider: "anthropic", name: "claude-3-5-haiku" });
    expect(() => createLM("mistral/large")).toThrow(/unknown model string/);
    try {
      createLM("nope");
    } catch (e) {
      expect((e as LMError).code).toBe("config");
    }
    expect(() => createLM("openai/x", { baseUrl: "not a url" })).toThrow(LMError);
  });

  it("reads keys and base URLs from the environment", async () => {
    const lm = createLM("openai/gpt-4o-mini", { cache: false, retry: false, env: { OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: "env-key" } });
    await lm.call({ messages: MESSAGES });
    expect(seen[0].headers.authorization).toBe("Bearer env-key");
    const a = createLM("anthropic/claude-x", { cache: false, env: { ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: "ant" } });
    await a.call({ messages: MESSAGES });
    expect(seen[1].headers["x-api-key"]).toBe("ant");
    const g = createLM("gemini/gemini-x", { cache: false, baseUrl: url, env: { GEMINI_API_KEY: "gem" } });
    await g.call({ messages: MESSAGES });
    expect(seen[2].headers["x-goog-api-key"]).toBe("gem");
  });

  it("a missing key for a real provider fails the call with auth, without network", async () => {
    for (const [m, envName] of [
      ["openai/gpt-4o", "OPENAI_API_KEY"],
      ["anthropic/claude-x", "ANTHROPIC_API_KEY"],
      ["gemini/gemini-x", "GEMINI_API_KEY"],
    ]) {
      const e = (await createLM(m, { cache: false, env: {} }).call({ messages: MESSAGES }).catch((x) => x)) as LMError;
      expect(e).toBeInstanceOf(LMError);
      expect(e.code).toBe("auth");
      expect(e.message).toContain(envName);
    }
  });

  it("connection refused is a typed connection error", async () => {
    const e = (await createLM("openai/x", { ...OPTS, baseUrl: "http://127.0.0.1:1/v1" }).call({ messages: MESSAGES }).catch((x) => x)) as LMError;
    expect(e).toBeInstanceOf(LMError);
    expect(e.code).toBe("connection");
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it("dumps DSPy-style state without secrets and rebuilds from it", async () => {
    const lm = createLM("openai/gpt-4o-mini", { apiKey: "secret", baseUrl: `${url}/v1`, temperature: 0.4, maxTokens: 300, retry: { maxRetries: 2 } });
    const state = lm.dumpState();
    expect(state).toEqual({ model: "openai/gpt-4o-mini", model_type: "chat", cache: true, num_retries: 2, temperature: 0.4, max_tokens: 300 });
    expect(JSON.stringify(state)).not.toContain("secret");
    const back = lmFromState(state, { baseUrl: `${url}/v1`, cache: false });
    expect(back?.model).toBe("openai/gpt-4o-mini");
    expect(back?.settings).toEqual({ temperature: 0.4, maxTokens: 300 });
    await back?.call({ messages: MESSAGES });
    expect(seen[0].body).toMatchObject({ temperature: 0.4, max_tokens: 300 });
    expect(lmFromState({ model: 42 })).toBeUndefined();
    expect(lmFromState({ model: "bogus/x" })).toBeUndefined();
  });

  it("copy() overrides settings and shares the cache", async () => {
    const lm = createLM("openai/gpt-4o-mini", { baseUrl: `${url}/v1`, temperature: 0 });
    const hot = lm.copy({ temperature: 1 });
    expect(hot.settings.temperature).toBe(1);
    expect(hot.cache).toBe(lm.cache);
  });
});
