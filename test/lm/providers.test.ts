// Each provider client against sim-lm: happy path, usage, every error class, and the breaker.
import { EventEmitter } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import { FAULT_MESSAGES } from "../../src/simlm/wire.js";
import { createLM, closeAllPools, LMError, type LMOptions } from "../../src/engine/lm/index.js";
import { chatField, chatPrompt } from "../simlm/prompts.js";

const PROVIDERS = [
  { api: "openai", model: "openai/gpt-4o-mini", base: (u: string) => `${u}/v1`, overloadedStatus: 503, price: [0.15, 0.6] },
  { api: "anthropic", model: "anthropic/claude-sonnet-4-5", base: (u: string) => u, overloadedStatus: 529, price: [3, 15] },
  { api: "gemini", model: "gemini/gemini-2.5-flash", base: (u: string) => u, overloadedStatus: 503, price: [0.3, 2.5] },
] as const;

const FAST: LMOptions = { cache: false, breaker: false, timeoutMs: 2000, retry: { initialDelayMs: 1, maxDelayMs: 10 } };

async function lmError(p: Promise<unknown>): Promise<LMError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LMError);
    return err as LMError;
  }
  throw new Error("expected the call to fail");
}

const tokens = (s: string) => (s.length === 0 ? 0 : Math.ceil(s.length / 4));

afterAll(async () => {
  await closeAllPools();
});

describe.each(PROVIDERS)("$api client against sim-lm", (p) => {
  let sim: SimLm;
  beforeAll(async () => {
    sim = await startSimLm({ seed: 3, baseAccuracy: 1, retryAfterMs: 60, slowMs: 400, latencyMs: 1 });
  });
  afterAll(async () => {
    await sim.close();
  });
  const lm = (extra: LMOptions = {}) => createLM(p.model, { ...FAST, baseUrl: p.base(sim.url), apiKey: "test-key", ...extra });
  const messages = chatPrompt("What is 12 + 30?", { outputs: [{ name: "reasoning" }, { name: "answer", type: "int" }] });

  it("completes a chat call and parses usage and cost", async () => {
    const r = await lm().call({ messages });
    expect(r.outputs).toHaveLength(1);
    expect(chatField(r.outputs[0], "answer")).toBe("42");
    expect(r.cached).toBeUndefined();
    const prompt = tokens(messages[0].content) + 4 + tokens(messages[1].content) + 4;
    expect(r.usage.promptTokens).toBe(prompt);
    expect(r.usage.completionTokens).toBe(tokens(r.outputs[0]));
    expect(r.usage.totalTokens).toBe(r.usage.promptTokens + r.usage.completionTokens);
    const [inp, out] = p.price;
    expect(r.usage.costUsd).toBeCloseTo((prompt * inp + r.usage.completionTokens * out) / 1e6, 12);
    expect(r.finishReasons).toHaveLength(1);
  });

  it("returns n completions", async () => {
    const r = await lm().call({ messages, n: 3, temperature: 0.7 });
    expect(r.outputs).toHaveLength(3);
    for (const o of r.outputs) expect(o).toContain("[[ ## completed ## ]]");
  });

  it("maps responseFormat to the provider's JSON mode", async () => {
    const schema = { type: "object", properties: { answer: { type: "integer" } }, required: ["answer"], additionalProperties: false };
    const r = await lm().call({
      messages: [{ role: "user", content: "What is 2 * 21?" }],
      responseFormat: { type: "json_schema", name: "Out", schema },
    });
    if (p.api === "anthropic") expect(r.outputs[0]).toBe("42"); // no JSON mode in the Messages API
    else expect(JSON.parse(r.outputs[0])).toEqual({ answer: 42 });
  });

  it("429 with Retry-After is retried after the server's wait", async () => {
    sim.inject("rate_limit");
    const client = lm();
    const t0 = performance.now();
    const r = await client.call({ messages });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    expect(chatField(r.outputs[0], "answer")).toBe("42");
    expect(client.stats.retries).toBe(1);
    expect(client.history.last(1)[0].attempts).toBe(2);
  });

  it("429 surfaces as rate_limited with the provider's message and retry-after when not retried", async () => {
    sim.inject("rate_limit");
    const e = await lmError(lm({ retry: false }).call({ messages }));
    expect(e.code).toBe("rate_limited");
    expect(e.status).toBe(429);
    expect(e.retryable).toBe(true);
    expect(e.retryAfterMs).toBe(60);
    expect(e.providerMessage).toBe(FAULT_MESSAGES.rate_limit[p.api]);
    expect(e.message).toContain(FAULT_MESSAGES.rate_limit[p.api]);
    expect(e.provider).toBe(p.api);
    expect(e.attempts).toBe(1);
  });

  it("500 is retried, or surfaces as server_error", async () => {
    sim.inject("server_error", 2);
    const client = lm();
    await client.call({ messages });
    expect(client.stats.retries).toBe(2);
    sim.inject("server_error");
    const e = await lmError(lm({ retry: false }).call({ messages }));
    expect(e.code).toBe("server_error");
    expect(e.status).toBe(500);
    expect(e.providerMessage).toBe(FAULT_MESSAGES.server_error[p.api]);
  });

  it("overloaded (529 / 503) is retried, or surfaces as overloaded", async () => {
    sim.inject("overloaded");
    const client = lm();
    await client.call({ messages });
    expect(client.stats.retries).toBe(1);
    sim.inject("overloaded");
    const e = await lmError(lm({ retry: false }).call({ messages }));
    expect(e.code).toBe("overloaded");
    expect(e.status).toBe(p.overloadedStatus);
    expect(e.providerMessage).toBe(FAULT_MESSAGES.overloaded[p.api]);
  });

  it("a slow reply times out, and is retried", async () => {
    sim.inject("slow");
    const t0 = performance.now();
    const e = await lmError(lm({ retry: false, timeoutMs: 50 }).call({ messages }));
    expect(e.code).toBe("timeout");
    expect(performance.now() - t0).toBeLessThan(350);
    sim.inject("slow");
    const client = lm({ timeoutMs: 100 });
    const r = await client.call({ messages });
    expect(chatField(r.outputs[0], "answer")).toBe("42");
    expect(client.stats.retries).toBe(1);
  });

  it("a dropped connection is retried, or surfaces as connection", async () => {
    sim.inject("drop");
    const client = lm();
    await client.call({ messages });
    expect(client.stats.retries).toBe(1);
    sim.inject("drop");
    const e = await lmError(lm({ retry: false }).call({ messages }));
    expect(e.code).toBe("connection");
    expect(e.retryable).toBe(true);
  });

  it("a malformed JSON body is retried, or surfaces as bad_response", async () => {
    sim.inject("malformed");
    const client = lm();
    await client.call({ messages });
    expect(client.stats.retries).toBe(1);
    sim.inject("malformed");
    const e = await lmError(lm({ retry: false }).call({ messages }));
    expect(e.code).toBe("bad_response");
    expect(e.message).toContain("not valid JSON");
  });

  it("a 4xx is not retried: bad request keeps the provider's message", async () => {
    const before = sim.stats().calls.total;
    const bad = p.api === "gemini" ? { n: 20 } : p.api === "openai" ? { temperature: 5 } : { temperature: 1.5 };
    const e = await lmError(lm().call({ messages, ...bad }));
    expect(e.code).toBe("bad_request");
    expect(e.status).toBe(400);
    expect(e.providerMessage).toBeTruthy();
    expect(e.attempts).toBe(1);
    expect(sim.stats().calls.total - before).toBe(1);
  });
});

describe("auth and context-window errors", () => {
  let sim: SimLm;
  beforeAll(async () => {
    sim = await startSimLm({ apiKey: "right", contextWindow: 5000 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it.each(PROVIDERS)("$api: a wrong key is auth, not retried", async (p) => {
    const e = await lmError(createLM(p.model, { ...FAST, baseUrl: p.base(sim.url), apiKey: "wrong" }).call({ messages: [{ role: "user", content: "hi" }] }));
    expect(e.code).toBe("auth");
    expect(e.attempts).toBe(1);
    expect(e.providerMessage).toBeTruthy();
    const ok = await createLM(p.model, { ...FAST, baseUrl: p.base(sim.url), apiKey: "right" }).call({ messages: [{ role: "user", content: "hi" }] });
    expect(ok.outputs[0].length).toBeGreaterThan(0);
  });

  it.each(PROVIDERS)("$api: an oversized prompt is context_window", async (p) => {
    const e = await lmError(
      createLM(p.model, { ...FAST, baseUrl: p.base(sim.url), apiKey: "right" }).call({ messages: [{ role: "user", content: "x".repeat(40_000) }] }),
    );
    expect(e.code).toBe("context_window");
    expect(e.retryable).toBe(false);
  });
});

describe("circuit breaker", () => {
  let sim: SimLm;
  beforeAll(async () => {
    sim = await startSimLm({});
  });
  afterAll(async () => {
    await sim.close();
  });

  it("opens after sustained failure, fails fast without calling the server, then half-opens", async () => {
    const lm = createLM("openai/sim", {
      cache: false,
      baseUrl: `${sim.url}/v1`,
      retry: false,
      breaker: { windowSize: 10, minimumCalls: 5, threshold: 0.5, halfOpenAfterMs: 150 },
    });
    const msg = { messages: [{ role: "user" as const, content: "What is 1 + 1?" }] };
    sim.inject("server_error", 5);
    for (let i = 0; i < 5; i++) expect((await lmError(lm.call(msg))).code).toBe("server_error");
    expect(lm.breakerState).toBe("open");

    const served = sim.stats().calls.total;
    const t0 = performance.now();
    const fast = await lmError(lm.call(msg));
    expect(fast.code).toBe("circuit_open");
    expect(fast.message).toContain("server_error");
    expect(performance.now() - t0).toBeLessThan(50);
    expect(sim.stats().calls.total).toBe(served); // never reached the server

    // After the cool-down one test call goes through; it fails, so the breaker re-opens.
    await new Promise((r) => setTimeout(r, 170));
    sim.inject("server_error");
    expect((await lmError(lm.call(msg))).code).toBe("server_error");
    expect(lm.breakerState).toBe("open");
    expect((await lmError(lm.call(msg))).code).toBe("circuit_open");

    // Next cool-down: the test call succeeds and the breaker closes.
    await new Promise((r) => setTimeout(r, 170));
    const ok = await lm.call(msg);
    expect(ok.outputs[0]).toMatch(/^-?\d+$/);
    expect(lm.breakerState).toBe("closed");
    await lm.call(msg);
  });

  it("circuit_open is not retried by the retry policy", async () => {
    const lm = createLM("openai/sim2", {
      cache: false,
      baseUrl: `${sim.url}/v1`,
      retry: { maxRetries: 10, initialDelayMs: 1, maxDelayMs: 2 },
      breaker: { windowSize: 4, minimumCalls: 4, halfOpenAfterMs: 60_000 },
    });
    sim.inject("server_error", 4);
    const before = sim.stats().calls.total;
    const e = await lmError(lm.call({ messages: [{ role: "user", content: "hello" }] }));
    expect(e.code).toBe("circuit_open");
    expect(e.attempts).toBe(5); // 4 failures open the breaker, the 5th attempt fails fast
    expect(sim.stats().calls.total - before).toBe(4);
  });
});

describe("cancellation and transport timeouts", () => {
  let sim: SimLm;
  beforeAll(async () => {
    sim = await startSimLm({ latencyMs: 300, retryAfterMs: 5000 });
  });
  afterAll(async () => {
    await sim.close();
  });
  const msg = { messages: [{ role: "user" as const, content: "What is 1 + 1?" }] };

  it("an abort mid-request surfaces as aborted, quickly", async () => {
    const lm = createLM("openai/sim", { ...FAST, baseUrl: `${sim.url}/v1` });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user gave up")), 30);
    const t0 = performance.now();
    const e = await lmError(lm.call({ ...msg, signal: ac.signal }));
    expect(e.code).toBe("aborted");
    expect(e.message).toContain("user gave up");
    expect(performance.now() - t0).toBeLessThan(250);
    const pre = await lmError(lm.call({ ...msg, signal: AbortSignal.abort() }));
    expect(pre.code).toBe("aborted");
  });

  it("an abort during a Retry-After wait does not wait it out", async () => {
    const lm = createLM("openai/sim", { ...FAST, baseUrl: `${sim.url}/v1` });
    sim.inject("rate_limit");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = performance.now();
    const e = await lmError(lm.call({ ...msg, signal: ac.signal }));
    expect(e.code).toBe("aborted");
    expect(performance.now() - t0).toBeLessThan(1000); // the server asked for 5 s
  });

  it("a Retry-After beyond maxRetryAfterMs is not waited for", async () => {
    const lm = createLM("openai/sim", { ...FAST, baseUrl: `${sim.url}/v1`, retry: { maxRetryAfterMs: 1000 } });
    sim.inject("rate_limit");
    const t0 = performance.now();
    const e = await lmError(lm.call(msg));
    expect(e.code).toBe("rate_limited");
    expect(e.retryAfterMs).toBe(5000);
    expect(e.attempts).toBe(1);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("a long-lived signal keeps no listeners from finished calls; a signal works with the default timeout too", async () => {
    const fast = await startSimLm({ latencyMs: 1 });
    try {
      const ac = new AbortController();
      for (const timeoutMs of [2000, 120_000]) {
        const lm = createLM("openai/sim", { ...FAST, timeoutMs, baseUrl: `${fast.url}/v1` });
        for (let i = 0; i < 20; i++) expect((await lm.call({ ...msg, signal: ac.signal })).outputs).toHaveLength(1);
        expect(EventEmitter.getEventListeners(ac.signal, "abort")).toHaveLength(0);
        expect(await lmError(lm.call({ ...msg, signal: AbortSignal.abort(new Error("stop")) }))).toMatchObject({ code: "aborted" });
      }
      const slowLm = createLM("openai/sim", { ...FAST, timeoutMs: 120_000, baseUrl: `${sim.url}/v1` });
      const ac2 = new AbortController();
      setTimeout(() => ac2.abort(), 30);
      expect((await lmError(slowLm.call({ ...msg, signal: ac2.signal }))).code).toBe("aborted");
      expect(EventEmitter.getEventListeners(ac2.signal, "abort")).toHaveLength(0);
    } finally {
      await fast.close();
    }
  });

  it("a request still queued for a connection fails at once on abort or timeout", async () => {
    const { postJson } = await import("../../src/engine/lm/http.js");
    const { Pool } = await import("undici");
    const pool = new Pool(sim.url, { connections: 1 }); // one socket: the second request queues
    const body = JSON.stringify({ model: "sim", ...msg });
    const send = (signal: AbortSignal | undefined, timeoutMs: number) =>
      postJson(pool, "/v1/chat/completions", { "content-type": "application/json" }, body, signal, timeoutMs, (res) => res.status);
    try {
      const busy = send(undefined, 5000); // holds the socket for sim's 300 ms
      const t0 = performance.now();
      const timedOut = await lmError(send(undefined, 50));
      expect(timedOut.code).toBe("timeout");
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("gave up")), 30);
      const aborted = await lmError(send(ac.signal, 5000));
      expect(aborted).toMatchObject({ code: "aborted" });
      expect(aborted.message).toContain("gave up");
      expect(performance.now() - t0).toBeLessThan(250);
      expect(await busy).toBe(200);
      expect(await send(undefined, 5000)).toBe(200); // the pool still works
    } finally {
      await pool.close();
    }
  });

  it("undici's own header/body timeouts map to timeout", async () => {
    const { transportError } = await import("../../src/engine/lm/http.js");
    const e = transportError(Object.assign(new Error("Headers Timeout Error"), { code: "UND_ERR_HEADERS_TIMEOUT" }), 30_000);
    expect(e.code).toBe("timeout");
    expect(e.message).toContain("30000 ms");
    expect(transportError(Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })).code).toBe("connection");
  });
});
