// Cluster-wide LM budgets on the coordinator: which provider a peer's model counts under,
// and the token buckets behind `dspex limits set`.
import { describe, expect, it } from "vitest";
import { ProviderBudgets, providerOf } from "../../src/cluster/jobs/limits.js";

describe("providerOf", () => {
  it("reads model strings the way the LM layer does", () => {
    expect(providerOf("openai/gpt-4o-mini")).toBe("openai");
    expect(providerOf("gpt-4o-mini")).toBe("openai");
    expect(providerOf("claude-3-5-haiku")).toBe("anthropic");
    expect(providerOf("gemini/gemini-2.0-flash")).toBe("gemini");
    expect(providerOf("Junk/1")).toBe("junk");
    expect(providerOf(null)).toBe("");
  });
});

describe("ProviderBudgets", () => {
  it("paces per provider, refunds, and restarts a bucket only when its limit changes", () => {
    const b = new ProviderBudgets();
    b.configure({ openai: { rpm: 600, index: 1 } }); // 10/s, burst 10
    for (let i = 0; i < 10; i++) expect(b.take("openai", 0)).toBe(true);
    expect(b.take("openai", 0)).toBe(false);
    expect(b.take("anthropic", 0)).toBe(true); // no budget set: never paced
    b.refund("openai", 0);
    expect(b.take("openai", 0)).toBe(true);
    b.configure({ openai: { rpm: 600, index: 1 } }); // same limit: the spent bucket stays
    expect(b.take("openai", 0)).toBe(false);
    b.configure({ openai: { rpm: 600, tpm: 6000, index: 7 } }); // changed: fresh buckets
    // 100 tokens/s, burst 100: a 500-token estimate is capped at the burst (else it could
    // never start) and takes all of it; the next task waits.
    expect(b.take("openai", 500)).toBe(true);
    expect(b.take("openai", 50)).toBe(false);
    b.configure({});
    expect(b.size).toBe(0);
  });
});
