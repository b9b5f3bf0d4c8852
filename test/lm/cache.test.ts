// Cache: memory hits, misses on any setting or rolloutId change, per-call bypass, disk
// persistence, corrupt entries, and two processes writing one directory at once.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import { LMCache, cacheKey, closeAllPools, createLM } from "../../src/engine/lm/index.js";

let sim: SimLm;
let dir: string;
beforeAll(async () => {
  sim = await startSimLm({ seed: 5 });
  dir = await mkdtemp(join(tmpdir(), "dspex-cache-"));
});
afterAll(async () => {
  await sim.close();
  await closeAllPools();
  await rm(dir, { recursive: true, force: true });
});

const msgs = (q: string) => [{ role: "user" as const, content: q }];
const served = () => sim.stats().completions;

describe("LM cache", () => {
  it("hits on an identical request: no server call, zero usage, same outputs", async () => {
    const cache = new LMCache();
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache });
    const before = served();
    const a = await lm.call({ messages: msgs("What is 1 + 2?"), temperature: 0 });
    const b = await lm.call({ messages: msgs("What is 1 + 2?"), temperature: 0 });
    expect(served() - before).toBe(1);
    expect(b.cached).toBe(true);
    expect(b.outputs).toEqual(a.outputs);
    expect(b.usage.totalTokens).toBe(0);
    expect(a.usage.totalTokens).toBeGreaterThan(0);
    expect(cache.stats).toMatchObject({ hits: 1, memoryHits: 1, misses: 1, writes: 1 });
    expect(lm.stats.cacheHits).toBe(1);
  });

  it("misses when a setting or the rolloutId changes; repeats of a rolloutId hit", async () => {
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: new LMCache() });
    const before = served();
    await lm.call({ messages: msgs("q"), temperature: 1, rolloutId: 1 });
    await lm.call({ messages: msgs("q"), temperature: 1, rolloutId: 2 });
    await lm.call({ messages: msgs("q"), temperature: 0.5, rolloutId: 2 });
    await lm.call({ messages: msgs("q"), temperature: 1, rolloutId: 2, maxTokens: 50 });
    expect(served() - before).toBe(4);
    const again = await lm.call({ messages: msgs("q"), temperature: 1, rolloutId: 2 });
    expect(again.cached).toBe(true);
    expect(served() - before).toBe(4);
  });

  it("cache: false bypasses it per call (neither read nor written)", async () => {
    const cache = new LMCache();
    const lm = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache });
    const before = served();
    await lm.call({ messages: msgs("bypass") });
    const bypassed = await lm.call({ messages: msgs("bypass"), cache: false });
    expect(bypassed.cached).toBeUndefined();
    await lm.call({ messages: msgs("bypass2"), cache: false });
    const fresh = await lm.call({ messages: msgs("bypass2") });
    expect(fresh.cached).toBeUndefined(); // the bypassed call did not write
    expect(served() - before).toBe(4);
    const off = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: false });
    await off.call({ messages: msgs("bypass") });
    expect(served() - before).toBe(5);
  });

  it("keys ignore API keys and base URLs but cover model, messages, settings and rolloutId", () => {
    const base = { model: "openai/m", messages: msgs("x"), temperature: 0.5 };
    const schemaA = { type: "json_schema" as const, name: "O", schema: { a: 1, b: { c: 2, d: 3 } } };
    const schemaB = { type: "json_schema" as const, name: "O", schema: { b: { d: 3, c: 2 }, a: 1 } };
    expect(cacheKey(base)).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey({ ...base, responseFormat: schemaA })).toBe(cacheKey({ ...base, responseFormat: schemaB }));
    const variants = [
      { ...base, model: "openai/n" },
      { ...base, messages: msgs("y") },
      { ...base, messages: [{ role: "system" as const, content: "x" }] },
      { ...base, temperature: 0.6 },
      { ...base, rolloutId: 1 },
      { ...base, n: 2 },
      { ...base, stop: ["\n"] },
      { ...base, responseFormat: { type: "json_object" as const } },
    ];
    const keys = new Set([cacheKey(base), ...variants.map(cacheKey)]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it("keys keep texts apart that could run together or that UTF-8 would merge", () => {
    const key = (...contents: string[]) => cacheKey({ model: "openai/m", messages: contents.map((content) => ({ role: "user" as const, content })) });
    // One message holding what looks like a message boundary vs two messages.
    expect(key("a\u0000user\u00001:b")).not.toBe(key("a", "b"));
    expect(key("ab", "c")).not.toBe(key("a", "bc"));
    // Lone surrogates both become U+FFFD in UTF-8; the keys must still differ.
    expect(key("x\ud800")).not.toBe(key("x\ud801"));
    expect(key("x\ud800")).not.toBe(key("x\ufffd"));
    expect(key("😀")).toBe(key("😀"));
    expect(cacheKey({ model: "a:b", messages: [] })).not.toBe(cacheKey({ model: "a", messages: [{ role: "user", content: "b" }] }));
  });

  it("two LMs with different API keys share entries", async () => {
    const cache = new LMCache();
    const a = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, apiKey: "k1", cache });
    const b = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, apiKey: "k2", cache });
    await a.call({ messages: msgs("shared") });
    expect((await b.call({ messages: msgs("shared") })).cached).toBe(true);
  });

  it("persists on disk across cache instances and tolerates corrupt entries", async () => {
    const d = join(dir, "persist");
    const first = new LMCache({ dir: d });
    const lm1 = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: first });
    const r1 = await lm1.call({ messages: msgs("What is 5 * 5?") });
    await first.flush();

    const second = new LMCache({ dir: d });
    const lm2 = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: second });
    const before = served();
    const r2 = await lm2.call({ messages: msgs("What is 5 * 5?") });
    expect(r2.cached).toBe(true);
    expect(r2.outputs).toEqual(r1.outputs);
    expect(second.stats.diskHits).toBe(1);
    expect(served()).toBe(before);

    const key = cacheKey({ model: "openai/sim", messages: msgs("What is 5 * 5?") });
    await writeFile(join(d, key.slice(0, 2), `${key}.json`), '{"v":1,"key":"trunc');
    const third = new LMCache({ dir: d });
    const lm3 = createLM("openai/sim", { baseUrl: `${sim.url}/v1`, cache: third });
    const r3 = await lm3.call({ messages: msgs("What is 5 * 5?") });
    expect(r3.cached).toBeUndefined();
    expect(third.stats.corrupt).toBe(1);
    expect(served()).toBe(before + 1);
    await third.flush();
    const fourth = new LMCache({ dir: d });
    expect(await fourth.get(key)).toBeDefined(); // rewritten whole
  });

  it("is safe with two processes writing the same entries while a reader reads", async () => {
    const d = join(dir, "multi");
    const writer = fileURLToPath(new URL("./fixtures/cache-writer.ts", import.meta.url));
    const count = 150;
    const run = (tag: string) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", writer, d, tag, String(count)], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (c) => (out += c));
        child.stderr.on("data", (c) => (err += c));
        child.on("close", (code) => resolve({ code, out, err }));
      });
    const keyOf = (i: number) => createHash("sha256").update(`entry-${i}`).digest("hex");
    let writersDone = false;
    const writers = Promise.all([run("A"), run("B")]).finally(() => {
      writersDone = true;
    });
    // Read continuously while both write: a reader must never see a partial entry.
    const reader = new LMCache({ dir: d, memory: false });
    let reads = 0;
    while (!writersDone) {
      for (let i = 0; i < count; i += 7) {
        await reader.get(keyOf(i));
        reads++;
      }
      await new Promise((r) => setImmediate(r));
    }
    const results = await writers;
    for (const r of results) {
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out).diskErrors).toBe(0);
    }
    expect(reads).toBeGreaterThan(0);
    expect(reader.stats.corrupt).toBe(0);
    const check = new LMCache({ dir: d, memory: false });
    for (let i = 0; i < count; i++) {
      const e = await check.get(keyOf(i));
      expect(e?.outputs[0]).toMatch(new RegExp(`^[AB]-${i}-x{2000}$`));
    }
    expect(check.stats.corrupt).toBe(0);
    const leftovers = (await readdir(d, { recursive: true })).filter((f) => String(f).endsWith(".tmp"));
    expect(leftovers).toEqual([]);
  });
});
