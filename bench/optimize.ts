// bench/optimize: evaluation and bootstrapping speed, and memory of streamed evaluation.
// Prints one JSON object. Run: node --expose-gc --import tsx bench/optimize.ts [--quick]
//  1. 1,000-example Evaluate at 50 ms latency, concurrency 64, vs a bare undici pool sending
//     the same requests to the same sim-lm (goal: <= 1.1x its wall time). Median of 3.
//  2. BootstrapFewShot full pass (every example attempted, DSPy's default 16 labeled demos
//     in the teacher) over 100 examples at 50 ms:
//     concurrency 64 vs 1 (goal >= 15x faster), demos must be identical.
//  3. Heap after 100k and 1M streamed evaluations at 0 ms latency (an in-process LM, so the
//     measurement is Evaluate's own memory, not HTTP buffers): goal growth < 10 MB.
import "../src/util/polyfill.js";
import { Pool } from "undici";
import { ChainOfThought, ChatAdapter, Evaluate, LocalExecutor, Predict, createLM, withSettings, BootstrapFewShot, closeAllPools, type LM } from "../src/index.js";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { arithmeticSet } from "../src/cli/commands/demo.js";

const quick = process.argv.includes("--quick");

/** sim-lm in its own process, as in a real deployment (it must not share our CPU). */
async function spawnSimLm(args: string[]): Promise<{ url: string; close: () => Promise<void> }> {
  const bin = fileURLToPath(new URL("../bin/dspex.js", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [bin, "sim-lm", "--port", "0", "--json", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sim-lm did not start within 20 s")), 20_000);
    lines.on("line", (l) => {
      const m = JSON.parse(l) as { event?: string; url?: string };
      if (m.event === "listening" && m.url) {
        clearTimeout(timer);
        resolve(m.url);
      }
    });
    child.once("exit", (code) => reject(new Error(`sim-lm exited with ${code}`)));
  });
  return {
    url,
    close: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gc = (globalThis as { gc?: () => void }).gc;
const heapMB = () => {
  gc?.();
  gc?.();
  return Math.round((process.memoryUsage().heapUsed / 1048576) * 10) / 10;
};

async function evalVsBare() {
  const sim = await spawnSimLm(["--latency", "50", "--capacity", "0", "--seed", "1"]);
  const n = quick ? 300 : 1000;
  const devset = arithmeticSet(n, 3);
  const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "x", cache: false });
  const program = new Predict("question -> answer");
  const adapter = new ChatAdapter();
  const bodies = devset.map((e) =>
    JSON.stringify({ model: "sim-1", messages: adapter.format(program.signature, [], { question: e.get("question") }) }),
  );
  const rounds: { dspex: number; bare: number }[] = [];
  for (let r = 0; r < 3; r++) {
    let t = performance.now();
    const res = await withSettings({ lm }, () => new Evaluate({ devset, metric: "exact_match", concurrency: 64, progress: false }).run(program));
    const dspex = performance.now() - t;
    if (res.total !== n || res.errors !== 0) throw new Error(`eval failed: ${JSON.stringify(res)}`);
    const pool = new Pool(sim.url, { connections: 64, keepAliveTimeout: 30_000 });
    t = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < n) {
          const i = next++;
          const r = await pool.request({ path: "/v1/chat/completions", method: "POST", headers: { "content-type": "application/json", authorization: "Bearer x" }, body: bodies[i] });
          await r.body.json();
        }
      }),
    );
    const bare = performance.now() - t;
    await pool.close();
    rounds.push({ dspex, bare });
  }
  await closeAllPools();
  await sim.close();
  const d = median(rounds.map((r) => r.dspex));
  const b = median(rounds.map((r) => r.bare));
  return { examples: n, latencyMs: 50, concurrency: 64, dspexMs: Math.round(d), bareUndiciMs: Math.round(b), ratio: Math.round((d / b) * 1000) / 1000, goal: "<= 1.1", rounds: rounds.map((r) => ({ dspex: Math.round(r.dspex), bare: Math.round(r.bare) })) };
}

async function bootstrapPass() {
  const sim = await spawnSimLm(["--latency", "50", "--capacity", "0", "--seed", "2"]);
  const n = quick ? 40 : 100;
  const trainset = arithmeticSet(n, 4);
  const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "x", cache: false });
  const run = async (concurrency: number) => {
    const t = performance.now();
    // A full pass: K = n so no example is skipped; labeled demos at DSPy's default 16.
    const bs = new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: n, maxLabeledDemos: 16 });
    const p = await withSettings({ lm }, () => bs.compile(new ChainOfThought("question -> answer"), { trainset, executor: new LocalExecutor({ concurrency }), progress: false }));
    return { ms: performance.now() - t, demos: JSON.stringify(p.dumpState()), attempts: bs.report!.attempts, bootstrapped: bs.report!.bootstrapped.length };
  };
  const par = await run(64);
  const seq = await run(1);
  await closeAllPools();
  await sim.close();
  return {
    examples: n,
    latencyMs: 50,
    sequentialMs: Math.round(seq.ms),
    concurrent64Ms: Math.round(par.ms),
    speedup: Math.round((seq.ms / par.ms) * 10) / 10,
    goal: ">= 15",
    sameDemos: seq.demos === par.demos,
    attempts: { sequential: seq.attempts, concurrent: par.attempts },
    bootstrapped: seq.bootstrapped,
  };
}

/** Replies instantly in ChatAdapter format: isolates Evaluate's memory from HTTP. */
const instantLM: LM = {
  model: "bench/instant",
  async call(req) {
    const m = /What is (\d+) ([-+*]) (\d+)\?/.exec(req.messages[req.messages.length - 1].content);
    const [a, op, b] = m ? [Number(m[1]), m[2], Number(m[3])] : [0, "+", 0];
    const ans = op === "+" ? a + b : op === "-" ? a - b : a * b;
    return { outputs: [`[[ ## answer ## ]]\n${ans}\n\n[[ ## completed ## ]]`], model: "bench/instant", usage: { promptTokens: 50, completionTokens: 5, totalTokens: 55, costUsd: 0 } };
  },
};

async function streamedHeap() {
  const program = new Predict("question -> answer");
  const pool = arithmeticSet(1000, 5).map((e) => e.toDict());
  async function* stream(n: number) {
    for (let i = 0; i < n; i++) yield pool[i % pool.length];
  }
  const run = (n: number) => withSettings({ lm: instantLM }, () => new Evaluate({ devset: stream(n), metric: "exact_match", concurrency: 64, progress: false, maxErrors: 0 }).run(program));
  await run(2000); // warm up JIT and caches
  const base = heapMB();
  const small = quick ? 20_000 : 100_000;
  const big = quick ? 100_000 : 1_000_000;
  let t = performance.now();
  const r1 = await run(small);
  const after1 = heapMB();
  const ms1 = performance.now() - t;
  t = performance.now();
  const r2 = await run(big);
  const after2 = heapMB();
  const ms2 = performance.now() - t;
  return {
    gcExposed: !!gc,
    baseHeapMB: base,
    [`after${small}HeapMB`]: after1,
    [`after${big}HeapMB`]: after2,
    growthMB: Math.round((after2 - base) * 10) / 10,
    goal: "< 10 MB",
    evalsPerSecond: { [small]: Math.round(r1.total / (ms1 / 1000)), [big]: Math.round(r2.total / (ms2 / 1000)) },
    scores: [r1.score, r2.score],
  };
}

const out = { node: process.version, loadavg: (await import("node:os")).loadavg().map((x) => Math.round(x * 100) / 100), quick, evaluate: await evalVsBare(), bootstrap: await bootstrapPass(), memory: await streamedHeap() };
process.stdout.write(JSON.stringify(out, null, 2) + "\n");
