// Client-side concurrency, RPM and TPM limits, against sim-lm and on the Limiter itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import { Limiter, LMError, closeAllPools, createLM } from "../../src/engine/lm/index.js";

let sim: SimLm;
beforeAll(async () => {
  sim = await startSimLm({ latencyMs: 20 });
});
afterAll(async () => {
  await sim.close();
  await closeAllPools();
});

const call = (lm: ReturnType<typeof createLM>, i: number) => lm.call({ messages: [{ role: "user", content: `What is ${i} + 1?` }] });

describe("client-side limits", () => {
  it("maxConcurrency bounds requests in flight at the server", async () => {
    sim.resetStats();
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false, limits: { maxConcurrency: 4 } });
    await Promise.all(Array.from({ length: 40 }, (_, i) => call(lm, i)));
    const s = sim.stats();
    expect(s.completions).toBe(40);
    expect(s.inFlightPeak).toBeLessThanOrEqual(4);
    expect(lm.limiter?.peakInFlight).toBe(4);
    // Without a limit the same load reaches the server all at once.
    sim.resetStats();
    const free = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false });
    await Promise.all(Array.from({ length: 40 }, (_, i) => call(free, i)));
    expect(sim.stats().inFlightPeak).toBeGreaterThan(4);
  });

  it("rpm paces request starts after the burst", async () => {
    // 1,200 rpm = one request per 50 ms; a 0.25 s burst allows 5 at once.
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false, limits: { rpm: 1200, burstSeconds: 0.25 } });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 15 }, (_, i) => call(lm, i)));
    // 10 requests beyond the burst at 50 ms each: at least ~500 ms.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(480);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(lm.limiter?.granted).toBe(15);
  });

  it("tpm charges the token estimate and waits for the bucket to refill", async () => {
    // 600k tpm = 10 tokens/ms; a 0.1 s burst holds 1,000 tokens.
    const limiter = new Limiter({ tpm: 600_000, burstSeconds: 0.1 });
    const t0 = performance.now();
    const a = await limiter.acquire(1000);
    expect(performance.now() - t0).toBeLessThan(50);
    a.release(1000);
    const b = await limiter.acquire(1000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(80);
    // Settling with less than the estimate refunds the difference.
    b.release(200);
    const t1 = performance.now();
    await limiter.acquire(800);
    expect(performance.now() - t1).toBeLessThan(50);
  });

  it("serves waiters FIFO and rejects an aborted waiter with code aborted", async () => {
    const limiter = new Limiter({ maxConcurrency: 1 });
    const first = await limiter.acquire(0);
    const order: number[] = [];
    const ac = new AbortController();
    const p1 = limiter.acquire(0).then((p) => (order.push(1), p));
    const p2 = limiter.acquire(0, ac.signal);
    const p3 = limiter.acquire(0).then((p) => (order.push(3), p));
    ac.abort();
    await expect(p2).rejects.toSatisfy((e: unknown) => e instanceof LMError && e.code === "aborted");
    expect(limiter.waiting).toBe(2);
    first.release();
    (await p1).release();
    (await p3).release();
    expect(order).toEqual([1, 3]);
    expect(limiter.active).toBe(0);
  });

  it("rejects nonsense limits with a config error", () => {
    expect(() => new Limiter({ rpm: 0 })).toThrow(LMError);
    expect(() => new Limiter({ maxConcurrency: -1 })).toThrow(/maxConcurrency/);
  });
});
