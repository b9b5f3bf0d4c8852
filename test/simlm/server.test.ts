// sim-lm over HTTP: routes, stats, capacity queueing, seeded faults, provider error shapes.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Pool, request } from "undici";
import { startSimLm, type SimLm, type SimLmOptions } from "../../src/simlm/server.js";

const started: SimLm[] = [];
async function sim(options: SimLmOptions = {}): Promise<SimLm> {
  const s = await startSimLm(options);
  started.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

const chatBody = (q = "What is 2 + 2?") => JSON.stringify({ model: "sim", messages: [{ role: "user", content: q }] });

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const r = await request(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, json: (() => { try { return JSON.parse(text); } catch { return undefined; } })() };
}

describe("sim-lm server", () => {
  it("binds 127.0.0.1 on an ephemeral port and lists models", async () => {
    const s = await sim({ models: ["a", "b"] });
    expect(s.url).toBe(`http://127.0.0.1:${s.port}`);
    expect(s.port).toBeGreaterThan(0);
    const r = await request(`${s.url}/v1/models`);
    expect(await r.body.json()).toEqual({
      object: "list",
      data: [
        { id: "a", object: "model", created: 1_700_000_000, owned_by: "sim-lm" },
        { id: "b", object: "model", created: 1_700_000_000, owned_by: "sim-lm" },
      ],
    });
  });

  it("GET /stats reports calls per endpoint, tokens, connections; POST /stats/reset clears them", async () => {
    const s = await sim();
    await post(`${s.url}/v1/chat/completions`, chatBody());
    await post(`${s.url}/v1/messages`, JSON.stringify({ model: "c", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }), { "anthropic-version": "2023-06-01" });
    await post(`${s.url}/v1beta/models/g:generateContent`, JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hi" }] }] }));
    const stats = (await (await request(`${s.url}/stats`)).body.json()) as ReturnType<SimLm["stats"]>;
    expect(stats.calls).toEqual({ total: 3, byEndpoint: { "chat.completions": 1, messages: 1, generateContent: 1 } });
    expect(stats.completions).toBe(3);
    expect(stats.tokens.prompt).toBeGreaterThan(0);
    expect(stats.connections).toBeGreaterThanOrEqual(1);
    await post(`${s.url}/stats/reset`, "");
    expect(s.stats().calls.total).toBe(0);
  });

  it("keeps connections alive", async () => {
    const s = await sim();
    const pool = new Pool(s.url, { connections: 1 });
    for (let i = 0; i < 10; i++) {
      const r = await pool.request({ path: "/v1/chat/completions", method: "POST", body: chatBody(), headers: { "content-type": "application/json" } });
      await r.body.text();
    }
    await pool.close();
    expect(s.stats().connections).toBe(1);
  });

  it("applies latency, and queues requests beyond capacity FIFO", async () => {
    const s = await sim({ latencyMs: 40, capacity: 2 });
    const t0 = performance.now();
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 8)); // arrive in index order
        await post(`${s.url}/v1/chat/completions`, chatBody(`What is ${i} + 1?`));
        done.push(i);
      }),
    );
    expect(performance.now() - t0).toBeGreaterThanOrEqual(120); // 3 waves of 40 ms
    const st = s.stats();
    expect(st.processingPeak).toBe(2);
    expect(st.queuedPeak).toBeGreaterThanOrEqual(2);
    expect(st.inFlightPeak).toBeGreaterThanOrEqual(4);
    expect(done).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("injects seeded faults deterministically by arrival order", async () => {
    const statuses = async (seed: number) => {
      const s = await sim({ seed, errorRate: 0.4, faultMix: { rate_limit: 1, server_error: 1, overloaded: 1, malformed: 1 }, retryAfterMs: 5 });
      const out: string[] = [];
      for (let i = 0; i < 40; i++) {
        const r = await post(`${s.url}/v1/chat/completions`, chatBody());
        out.push(r.json ? String(r.status) : `${r.status}-malformed`);
      }
      return { out, stats: s.stats() };
    };
    const a = await statuses(7);
    const b = await statuses(7);
    const c = await statuses(8);
    expect(a.out).toEqual(b.out);
    expect(a.out).not.toEqual(c.out);
    expect(new Set(a.out)).toEqual(new Set(["200", "429", "500", "503", "200-malformed"]));
    expect(a.stats.errorsInjected.total).toBe(a.out.filter((x) => x !== "200").length);
  });

  it("speaks each provider's error shape and retry hints", async () => {
    const s = await sim({ retryAfterMs: 1500 });
    s.inject("rate_limit", 3);
    const o = await post(`${s.url}/v1/chat/completions`, chatBody());
    expect(o.status).toBe(429);
    expect(o.headers["retry-after"]).toBe("1.500");
    expect(o.headers["retry-after-ms"]).toBe("1500");
    expect(o.json).toEqual({ error: { message: expect.any(String), type: "requests", param: null, code: "rate_limit_exceeded" } });

    const a = await post(`${s.url}/v1/messages`, JSON.stringify({ model: "c", max_tokens: 5, messages: [{ role: "user", content: "x" }] }), { "anthropic-version": "2023-06-01" });
    expect(a.status).toBe(429);
    expect(a.headers["retry-after"]).toBe("1.500");
    expect(a.json).toEqual({ type: "error", error: { type: "rate_limit_error", message: expect.any(String) } });

    const g = await post(`${s.url}/v1beta/models/gemini-x:generateContent`, JSON.stringify({ contents: [{ parts: [{ text: "x" }] }] }));
    expect(g.status).toBe(429);
    expect(g.headers["retry-after"]).toBeUndefined();
    expect(g.json.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED", details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "1.500s" }] });

    s.inject("overloaded");
    const ov = await post(`${s.url}/v1/messages`, JSON.stringify({ model: "c", max_tokens: 5, messages: [{ role: "user", content: "x" }] }), { "anthropic-version": "2023-06-01" });
    expect(ov.status).toBe(529);
    expect(ov.json.error.type).toBe("overloaded_error");
  });

  it("rejects bad requests the way the providers do", async () => {
    const s = await sim();
    expect((await post(`${s.url}/v1/chat/completions`, "{not json")).status).toBe(400);
    const noMsgs = await post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: "m" }));
    expect(noMsgs.status).toBe(400);
    expect(noMsgs.json.error.type).toBe("invalid_request_error");
    expect((await post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "x" }] }))).status).toBe(400);
    const noVersion = await post(`${s.url}/v1/messages`, JSON.stringify({ model: "c", max_tokens: 5, messages: [{ role: "user", content: "x" }] }));
    expect(noVersion.status).toBe(400);
    expect(noVersion.json.error.message).toContain("anthropic-version");
    const noMax = await post(`${s.url}/v1/messages`, JSON.stringify({ model: "c", messages: [{ role: "user", content: "x" }] }), { "anthropic-version": "2023-06-01" });
    expect(noMax.status).toBe(400);
    expect(noMax.json.error.message).toContain("max_tokens");
    const nf = await request(`${s.url}/nope`);
    expect(nf.statusCode).toBe(404);
    await nf.body.text();
    expect(s.stats().badRequests).toBe(5);
  });

  it("drops connections when told to", async () => {
    const s = await sim();
    s.inject("drop");
    await expect(post(`${s.url}/v1/chat/completions`, chatBody())).rejects.toThrow();
    expect(s.stats().errorsInjected.drop).toBe(1);
    expect((await post(`${s.url}/v1/chat/completions`, chatBody())).status).toBe(200);
  });

  it("truncates to max_tokens and stops at stop sequences", async () => {
    const s = await sim({ baseAccuracy: 1 });
    const long = await post(
      `${s.url}/v1/chat/completions`,
      JSON.stringify({ model: "m", max_tokens: 2, messages: [{ role: "user", content: "Write something" }] }),
    );
    expect(long.json.choices[0].finish_reason).toBe("length");
    expect(long.json.choices[0].message.content.length).toBeLessThanOrEqual(8);
    const stop = await post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: "m", stop: ["2"], messages: [{ role: "user", content: "What is 40 + 2?" }] }));
    expect(stop.json.choices[0].message.content).toBe("4");
  });

  it("validates its options", async () => {
    await expect(startSimLm({ errorRate: 2 })).rejects.toThrow(/errorRate/);
  });
});

afterAll(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});
