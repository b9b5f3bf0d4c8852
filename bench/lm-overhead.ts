// LM-layer overhead: CPU per call and wall time at concurrency 64, through the full LM stack
// (createLM -> call, cache off) versus a bare undici request to the same sim-lm, same run.
// sim-lm runs in a child process so process.cpuUsage() measures the client side only.
//
//   npx tsx bench/lm-overhead.ts [--calls 2000] [--rounds 7] [--wall-calls 1280] [--wall-rounds 5]
//
// Prints one JSON object. Variants are a list of { name, setup } entries (setup gets the
// sim-lm URL and returns a call function); the first is the baseline of every ratio.
import "../src/util/polyfill.js";
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpus } from "node:os";
import { AsyncLocalStorage } from "node:async_hooks";
import type { Dispatcher } from "undici";
import { startSimLm, type SimLmOptions } from "../src/simlm/server.js";
import { ChainOfThought, ChatAdapter } from "../src/index.js";
import { closeAllPools, createLM } from "../src/engine/lm/index.js";
import { poolFor } from "../src/engine/lm/http.js";
import type { ChatMessage } from "../src/engine/lm/types.js";

interface Variant {
  name: string;
  /** Build a client for a sim-lm at `url`; `call(i)` makes one prediction. */
  setup(url: string): Promise<{ call: (i: number) => Promise<unknown>; close: () => Promise<void> }>;
}

// Every variant sends the same bytes: the real ChatAdapter prompt of
// ChainOfThought("question -> answer: int"), precomputed for the bare and LM variants (the
// Predict variant builds and parses it itself, which is part of what it measures).
const program = new ChainOfThought("question -> answer: int");
const adapter = new ChatAdapter();
const QUESTIONS = Array.from({ length: 97 }, (_, i) => `What is ${i} + ${(i * 7) % 89}?`);
const PROMPTS: ChatMessage[][] = QUESTIONS.map((q) => adapter.format(program.predict.signature, [], { question: q }));
const messages = (i: number): ChatMessage[] => PROMPTS[i % PROMPTS.length];

const bareUndici: Variant = {
  name: "bare_undici",
  async setup(url) {
    // The same undici Pool (same options) the LM layer uses, minus everything else.
    const pool = poolFor(url);
    const headers = { "content-type": "application/json" };
    return {
      call: async (i) => {
        const res = await pool.request({
          path: "/v1/chat/completions",
          method: "POST",
          headers,
          body: JSON.stringify({ model: "sim", messages: messages(i) }),
        });
        const json = (await res.body.json()) as { choices: { message: { content: string } }[] };
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
        return json.choices[0].message.content;
      },
      close: () => closeAllPools(),
    };
  },
};

const fullStack: Variant = {
  name: "lm_full_stack",
  async setup(url) {
    // Defaults on: retry policy, circuit breaker, per-attempt timeout, usage, history, span.
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1`, cache: false });
    return { call: (i) => lm.call({ messages: messages(i) }), close: () => closeAllPools() };
  },
};

const fullStackLimits: Variant = {
  name: "lm_full_stack_with_limits",
  async setup(url) {
    const lm = createLM("openai/sim", {
      baseUrl: `${url}/v1`,
      cache: false,
      limits: { maxConcurrency: 1024, rpm: 10_000_000, tpm: 10_000_000_000 },
    });
    return { call: (i) => lm.call({ messages: messages(i) }), close: () => closeAllPools() };
  },
};

const predictFullStack: Variant = {
  name: "predict_full_stack",
  async setup(url) {
    // A whole prediction: ChatAdapter format -> LM full stack -> parse into typed fields.
    // The Predict carries ChainOfThought's signature, so it sends the same bytes as the others.
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1`, cache: false });
    const predict = new ChainOfThought("question -> answer: int", { lm }).predict;
    return { call: (i) => predict.call({ question: QUESTIONS[i % QUESTIONS.length] }), close: () => closeAllPools() };
  },
};

const chainOfThoughtFullStack: Variant = {
  name: "chain_of_thought_full_stack",
  async setup(url) {
    // The same prediction through the ChainOfThought module (adds a module call scope).
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1`, cache: false });
    const cot = new ChainOfThought("question -> answer: int", { lm });
    return { call: (i) => cot.call({ question: QUESTIONS[i % QUESTIONS.length] }), close: () => closeAllPools() };
  },
};

const VARIANTS: Variant[] = [bareUndici, fullStack, fullStackLimits, predictFullStack, chainOfThoughtFullStack];

// ---------------------------------------------------------------------------

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;

async function runAt(call: (i: number) => Promise<unknown>, n: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await call(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

async function cpuPerCall(call: (i: number) => Promise<unknown>, n: number, concurrency: number): Promise<number> {
  const c0 = process.cpuUsage();
  await runAt(call, n, concurrency);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / n;
}

async function wallMs(call: (i: number) => Promise<unknown>, n: number, concurrency: number): Promise<number> {
  const t0 = performance.now();
  await runAt(call, n, concurrency);
  return performance.now() - t0;
}

/** Start sim-lm in a child process (this file with --serve) and return its URL. */
function spawnSim(options: SimLmOptions): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ["--serve", JSON.stringify(options)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.once("message", (m) => resolve({ url: (m as { url: string }).url, child }));
    child.once("exit", (code) => reject(new Error(`sim-lm child exited (${code})`)));
  });
}

async function serve(): Promise<void> {
  const options = JSON.parse(process.argv[process.argv.indexOf("--serve") + 1]) as SimLmOptions;
  const sim = await startSimLm(options);
  process.send?.({ url: sim.url });
  process.on("disconnect", () => void sim.close().then(() => process.exit(0)));
}

type Samples = Record<string, number[]>;

/** Interleaved rounds (order rotated each round so drift favours no variant), after a warm-up. */
async function measure(
  clients: { call: (i: number) => Promise<unknown> }[],
  rounds: number,
  warmup: number,
  sample: (call: (i: number) => Promise<unknown>) => Promise<number>,
  warmConcurrency: number,
): Promise<Samples> {
  const out: Samples = {};
  for (const c of clients) await runAt(c.call, warmup, warmConcurrency);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < VARIANTS.length; k++) {
      const idx = (k + r) % VARIANTS.length;
      (out[VARIANTS[idx].name] ??= []).push(await sample(clients[idx].call));
    }
  }
  return out;
}

function summarize(samples: Samples, unit: string, scale: number, digits: number): Record<string, unknown> {
  const base = median(samples[VARIANTS[0].name]);
  const out: Record<string, unknown> = {};
  for (const v of VARIANTS) {
    const m = median(samples[v.name]);
    out[v.name] = {
      [`median${unit}`]: round(m * scale, digits),
      samples: samples[v.name].map((x) => round(x * scale, digits)),
      ratioVsBare: round(m / base, 3),
    };
  }
  return out;
}

/** Replace a pool's request() with an in-memory canned reply (transport-free overhead). */
function stubTransport(url: string): void {
  const reply = JSON.stringify({
    id: "chatcmpl-stub",
    object: "chat.completion",
    created: 1,
    model: "sim",
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: "[[ ## reasoning ## ]]\nWe need to compute 12 + 30. 12 + 30 = 42.\n\n[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]", refusal: null },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage: { prompt_tokens: 230, completion_tokens: 30, total_tokens: 260 },
  });
  const body = { text: async () => reply, json: async () => JSON.parse(reply) };
  const pool = poolFor(url) as unknown as { request: (o: Dispatcher.RequestOptions) => Promise<unknown> };
  pool.request = async () => ({ statusCode: 200, headers: { "content-type": "application/json" }, body });
}

async function main(): Promise<void> {
  // The engine (Predict) runs in AsyncLocalStorage scopes, which turn on async hooks for the
  // whole process and make every promise dearer. Turn them on before any round so all
  // variants and rounds run under the same conditions, as in any program using the engine.
  new AsyncLocalStorage<number>().run(0, () => undefined);
  const calls = arg("calls", 2000);
  const rounds = arg("rounds", 7);
  const wallCalls = arg("wall-calls", 1280);
  const wallRounds = arg("wall-rounds", 5);

  // 1. Transport stubbed in memory: the LM layer's own CPU per call, free of network noise.
  const stubUrl = "http://stub.invalid:1";
  stubTransport(stubUrl);
  const stubClients = await Promise.all(VARIANTS.map((v) => v.setup(stubUrl)));
  const stubCalls = calls * 10;
  const stub = await measure(stubClients, rounds, 5000, (c) => cpuPerCall(c, stubCalls, 1), 1);
  await closeAllPools();

  // 2. CPU per call against sim-lm in a child process (latency 0): one call at a time, and 16 in flight.
  const fast = await spawnSim({ latencyMs: 0, seed: 1 });
  const clients = await Promise.all(VARIANTS.map((v) => v.setup(fast.url)));
  const c1 = await measure(clients, rounds, 1000, (c) => cpuPerCall(c, calls, 1), 1);
  const c16 = await measure(clients, rounds, 1000, (c) => cpuPerCall(c, calls, 16), 16);
  await Promise.all(clients.map((c) => c.close()));
  fast.child.disconnect();

  // 3. Wall time: concurrency 64 against a server with 50 ms latency.
  const slow = await spawnSim({ latencyMs: 50, seed: 1 });
  const wallClients = await Promise.all(VARIANTS.map((v) => v.setup(slow.url)));
  const wall = await measure(wallClients, wallRounds, 128, (c) => wallMs(c, wallCalls, 64), 64);
  await Promise.all(wallClients.map((c) => c.close()));
  slow.child.disconnect();

  const wallSummary = summarize(wall, "WallMs", 1, 1);
  for (const v of VARIANTS) {
    (wallSummary[v.name] as Record<string, unknown>).callsPerSec = round((wallCalls / median(wall[v.name])) * 1000, 1);
  }
  const stubMs = (name: string) => median(stub[name]);
  process.stdout.write(
    JSON.stringify(
      {
        bench: "lm-overhead",
        node: process.version,
        cpus: cpus().length,
        simLm: "child process on 127.0.0.1 (its CPU is not counted)",
        asyncHooks: "enabled for all variants (AsyncLocalStorage active, as with the engine)",
        stubbedTransport: {
          note: "undici Pool.request replaced by an in-memory canned reply: CPU of everything but the network",
          callsPerRound: stubCalls,
          rounds,
          variants: summarize(stub, "CpuUsPerCall", 1000, 2),
          lmLayerOverheadUsPerCall: round((stubMs(fullStack.name) - stubMs(bareUndici.name)) * 1000, 2),
          predictOverheadUsPerCall: round((stubMs(predictFullStack.name) - stubMs(bareUndici.name)) * 1000, 2),
        },
        cpuConcurrency1: { callsPerRound: calls, rounds, simLatencyMs: 0, variants: summarize(c1, "CpuMsPerCall", 1, 4), goal: "predict_full_stack (and lm_full_stack) <= 1.2x bare_undici" },
        cpuConcurrency16: { callsPerRound: calls, rounds, simLatencyMs: 0, variants: summarize(c16, "CpuMsPerCall", 1, 4) },
        wallConcurrency64: { callsPerRound: wallCalls, rounds: wallRounds, simLatencyMs: 50, variants: wallSummary, goal: "predict_full_stack (and lm_full_stack) <= 1.1x bare_undici" },
      },
      null,
      2,
    ) + "\n",
  );
}

if (process.argv.includes("--serve")) await serve();
else await main();
