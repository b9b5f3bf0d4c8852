// Under 20% injected 429/500 faults, 1,000 predictions all succeed; retries are counted.
import { afterAll, describe, expect, it } from "vitest";
import { startSimLm } from "../../src/simlm/server.js";
import { createLM, closeAllPools, trackUsage } from "../../src/engine/lm/index.js";
import { arithmeticQuestions, chatField, chatPrompt } from "../simlm/prompts.js";

afterAll(async () => {
  await closeAllPools();
});

describe.each([
  { api: "openai", model: "openai/sim", base: (u: string) => `${u}/v1` },
  { api: "anthropic", model: "anthropic/claude-sim", base: (u: string) => u },
  { api: "gemini", model: "gemini/gemini-sim", base: (u: string) => u },
])("$api under 20% injected 429/500 faults", ({ api, model, base }) => {
  it("1,000 predictions all succeed, with every injected fault retried once", async () => {
    const sim = await startSimLm({ seed: 42, errorRate: 0.2, faultMix: { rate_limit: 1, server_error: 1 }, retryAfterMs: 2, latencyMs: 1 });
    try {
      // Default breaker on: a 20% fault rate must not open it.
      const lm = createLM(model, { baseUrl: base(sim.url), cache: false, retry: { initialDelayMs: 1, maxDelayMs: 20 }, limits: { maxConcurrency: 32 } });
      const qs = arithmeticQuestions(1000, 1);
      const { result, usage } = await trackUsage(() => Promise.all(qs.map((q) => lm.call({ messages: chatPrompt(q.question) }))));
      expect(result).toHaveLength(1000);
      for (const r of result) expect(chatField(r.outputs[0], "answer")).toMatch(/^-?\d+$/);
      const stats = sim.stats();
      const injected = stats.errorsInjected.total;
      expect(stats.completions).toBe(1000);
      expect(lm.stats.errors).toBe(0);
      expect(lm.stats.retries).toBe(injected);
      expect(usage.total.retries).toBe(injected);
      expect(usage.total.calls).toBe(1000);
      // 1,000 successes at p = 0.2 per attempt: ~250 faults expected.
      expect(injected).toBeGreaterThan(170);
      expect(injected).toBeLessThan(340);
      expect(lm.breakerState).toBe("closed");
      console.log(
        JSON.stringify({ api, predictions: 1000, succeeded: result.length, retries: lm.stats.retries, injected: stats.errorsInjected, promptTokens: usage.total.promptTokens }),
      );
    } finally {
      await sim.close();
    }
  });
});
