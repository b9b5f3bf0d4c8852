// Usage and cost per program run (trackUsage), bounded history, inspectHistory.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import {
  CallHistory,
  closeAllPools,
  createLM,
  globalHistory,
  inspectHistory,
  priceOf,
  processUsage,
  setModelPrice,
  trackUsage,
} from "../../src/engine/lm/index.js";

let sim: SimLm;
beforeAll(async () => {
  sim = await startSimLm({ seed: 1 });
});
afterAll(async () => {
  await sim.close();
  await closeAllPools();
});

const msgs = (q: string) => [{ role: "user" as const, content: q }];

describe("usage", () => {
  it("trackUsage collects one run's tokens and cost, per model, nested runs counting in outer ones", async () => {
    const mini = createLM("openai/gpt-4o-mini", { baseUrl: `${sim.url}/v1`, cache: false });
    const claude = createLM("anthropic/claude-3-5-haiku-20241022", { baseUrl: sim.url, cache: false });
    const before = processUsage().total.calls;
    const { usage: outer, result: inner } = await trackUsage(async () => {
      await mini.call({ messages: msgs("What is 1 + 1?") });
      const { usage } = await trackUsage(() => claude.call({ messages: msgs("What is 2 + 2?") }));
      // Calls made concurrently (not awaited in order) are still attributed to this run.
      await Promise.all([mini.call({ messages: msgs("a") }), mini.call({ messages: msgs("b") })]);
      return usage;
    });
    expect(inner.total.calls).toBe(1);
    expect(outer.total.calls).toBe(4);
    expect(outer.byModel.get("openai/gpt-4o-mini")?.calls).toBe(3);
    expect(outer.byModel.get("anthropic/claude-3-5-haiku-20241022")?.calls).toBe(1);
    const c = inner.total;
    expect(c.costUsd).toBeCloseTo((c.promptTokens * 0.8 + c.completionTokens * 4) / 1e6, 12);
    expect(outer.total.totalTokens).toBe(outer.total.promptTokens + outer.total.completionTokens);
    expect(outer.total.costUsd).toBeGreaterThan(c.costUsd);
    expect(processUsage().total.calls - before).toBe(4);
    expect(JSON.parse(JSON.stringify(outer)).total.calls).toBe(4);
  });

  it("cache hits count as calls with zero tokens", async () => {
    const lm = createLM("openai/gpt-4o-mini", { baseUrl: `${sim.url}/v1` });
    const { usage } = await trackUsage(async () => {
      await lm.call({ messages: msgs("cache me for usage") });
      await lm.call({ messages: msgs("cache me for usage") });
    });
    expect(usage.total.calls).toBe(2);
    expect(usage.total.cacheHits).toBe(1);
  });

  it("unknown models cost 0 unless priced; prices match dated snapshots by prefix", () => {
    expect(priceOf("openai/gpt-4o-2024-08-06")).toEqual({ input: 2.5, output: 10 });
    expect(priceOf("openai/gpt-4o-mini-2024-07-18")).toEqual({ input: 0.15, output: 0.6 });
    expect(priceOf("openai/sim")).toBeUndefined();
    setModelPrice("openai/my-local", { input: 1, output: 2 });
    expect(priceOf("my-local-v2")).toEqual({ input: 1, output: 2 });
  });
});

describe("history", () => {
  it("keeps the last N calls per LM and process-wide, with errors", async () => {
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false, historySize: 3, retry: false });
    for (let i = 0; i < 5; i++) await lm.call({ messages: msgs(`What is ${i} + 10?`), temperature: 0.5 });
    expect(lm.history.size).toBe(3);
    const last = lm.history.last(3);
    expect(last.map((e) => e.messages[0].content)).toEqual(["What is 2 + 10?", "What is 3 + 10?", "What is 4 + 10?"]);
    expect(last[2]).toMatchObject({ model: "openai/sim", cached: false, attempts: 1, settings: { temperature: 0.5 } });
    expect(globalHistory.last(1)[0]).toBe(last[2]);
    sim.inject("server_error");
    await lm.call({ messages: msgs("boom") }).catch(() => undefined);
    expect(lm.history.last(1)[0].error?.code).toBe("server_error");
  });

  it("inspectHistory renders messages, responses and usage like dspy.inspect_history", async () => {
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false });
    await lm.call({ messages: [{ role: "system", content: "Be brief." }, ...msgs("What is 6 * 7?")] });
    let printed = "";
    const text = inspectHistory(1, lm.history, (s) => (printed = s));
    expect(text).toBe(printed);
    expect(text).toContain("System message:\n\nBe brief.");
    expect(text).toContain("User message:\n\nWhat is 6 * 7?");
    expect(text).toMatch(/Response:\n\n-?\d+/);
    expect(text).toMatch(/Usage: \d+ prompt \+ \d+ completion tokens/);
  });

  it("the ring buffer drops the oldest entries", () => {
    const h = new CallHistory(2);
    const e = (i: number) => ({ timestamp: i, model: "m", messages: [], settings: {}, outputs: [String(i)], usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 }, cached: false, attempts: 1, durationMs: 0 });
    h.push(e(1));
    h.push(e(2));
    h.push(e(3));
    expect(h.last().map((x) => x.timestamp)).toEqual([2, 3]);
    expect(h.last(1).map((x) => x.timestamp)).toEqual([3]);
    h.clear();
    expect(h.size).toBe(0);
  });
});

describe("history capacity", () => {
  it("resize keeps the most recent entries; 0 turns recording off", () => {
    const h = new CallHistory(5);
    const e = (i: number) => ({ timestamp: i, model: "m", messages: [], settings: {}, outputs: [], usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 }, cached: false, attempts: 1, durationMs: 0 });
    for (let i = 1; i <= 5; i++) h.push(e(i));
    h.resize(2);
    expect(h.last().map((x) => x.timestamp)).toEqual([4, 5]);
    h.push(e(6));
    expect(h.last().map((x) => x.timestamp)).toEqual([5, 6]);
    h.resize(0);
    h.push(e(7));
    expect(h.size).toBe(0);
  });
});
