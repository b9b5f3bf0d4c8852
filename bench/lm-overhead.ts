// LM-layer overhead: CPU per call and wall time at concurrency 64, through the full LM stack
// (createLM -> call, default options) and through Predict / ChainOfThought, versus a bare
// undici request with the same body bytes to the same sim-lm, same run.
// sim-lm runs in a child process so process.cpuUsage() measures the client side only.
//
//   npx tsx bench/lm-overhead.ts [--calls 2000] [--rounds 7] [--wall-calls 1280] [--wall-rounds 5]
//
// Prints one JSON object. Variants are a list of { name, setup } entries (setup gets the
// sim-lm URL and returns a call function); the first is the baseline of every ratio. In the
// CPU phases the variants take turns in small blocks of calls within each round (so they
// share the machine's load of the moment); a round's ratio compares a variant with the
// baseline of the same round, and the median of those ratios is the headline. Load
// averages are printed with every phase: the machine may be shared.
import "../src/util/polyfill.js";
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cpus, loadavg } from "node:os";
import { AsyncLocalStorage } from "node:async_hooks";
import type { Dispatcher } from "undici";
import { startSimLm, type SimLmOptions } from "../src/simlm/server.js";
import { ChainOfThought, ChatAdapter } from "../src/index.js";
import { closeAllPools, createLM } from "../src/engine/lm/index.js";
import { poolFor } from "../src/engine/lm/http.js";
import type { ChatMessage } from "../src/engine/lm/types.js";

interface Variant {
  name: string;
  /** Build a client for a sim-lm at `url`; `call(j)` makes the variant's j-th prediction. */
  setup(url: string): Promise<{ call: (j: number) => Promise<unknown>; close: () => Promise<void> }>;
}

// Every call asks a question never asked before in the run, so the default in-memory cache
// (on in every LM variant, as createLM's default) never hits: each prediction is a real HTTP
// round trip. Each variant counts its own calls (all run the same number), and the j-th call
// of bare_undici and of predict_full_stack send the same bytes. Variants that share the
// process-wide cache with predict_full_stack get questions of their own (same length).
const program = new ChainOfThought("question -> answer: int");
const adapter = new ChatAdapter();
const question = (space: number, j: number) => `What is ${space * 10_000_000 + j} + ${(j * 7) % 89}?`;
const PREDICT_SPACE = 1;

// The ChatAdapter prompt of ChainOfThought("question -> answer: int") around a question, as
// a bare client would build it: the adapter's output split at the question, checked below.
const [SYSTEM, USER_HEAD, USER_TAIL] = (() => {
  const marker = "\u0000QUESTION\u0000";
  const [system, user] = adapter.format(program.predict.signature, [], { question: marker });
  const [head, tail] = user.content.split(marker);
  return [system.content, head, tail];
})();
const messagesFor = (q: string): ChatMessage[] => [
  { role: "system", content: SYSTEM },
  { role: "user", content: USER_HEAD + q + USER_TAIL },
];

const bareUndici: Variant = {
  name: "bare_undici",
  async setup(url) {
    // The same undici Pool (same options) the LM layer uses, minus everything else.
    const pool = poolFor(url);
    const headers = { "content-type": "application/json" };
    return {
      call: async (j) => {
        const res = await pool.request({
          path: "/v1/chat/completions",
          method: "POST",
          headers,
          body: JSON.stringify({ model: "sim", messages: messagesFor(question(PREDICT_SPACE, j)) }),
        });
        const json = (await res.body.json()) as { choices: { message: { content: string } }[] };
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
        return json.choices[0].message.content;
      },
      close: () => closeAllPools(),
    };
  },
};

const bareUndiciDispatch: Variant = {
  name: "bare_undici_dispatch",
  async setup(url) {
    // For reference: the same request through Pool.dispatch with a handler that gathers the
    // body (no Readable stream), which is how the LM layer sends its requests.
    const pool = poolFor(url);
    const headers = { "content-type": "application/json" };
    return {
      call: (j) =>
        new Promise((resolve, reject) => {
          const chunks: Buffer[] = [];
          let status = 0;
          pool.dispatch(
            { path: "/v1/chat/completions", method: "POST", headers, body: JSON.stringify({ model: "sim", messages: messagesFor(question(PREDICT_SPACE, j)) }) },
            {
              onRequestStart() {},
              onResponseStart(_c, statusCode) {
                status = statusCode;
              },
              onResponseData(_c, chunk) {
                chunks.push(chunk);
              },
              onResponseEnd() {
                const json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { choices: { message: { content: string } }[] };
                if (status !== 200) reject(new Error(`HTTP ${status}`));
                else resolve(json.choices[0].message.content);
              },
              onResponseError(_c, err) {
                reject(err);
              },
            },
          );
        }),
      close: () => closeAllPools(),
    };
  },
};

const fullStack: Variant = {
  name: "lm_full_stack",
  async setup(url) {
    // Defaults: cache, retry policy, circuit breaker, per-attempt timeout, usage, history, span.
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1` });
    return { call: (j) => lm.call({ messages: messagesFor(question(2, j)) }), close: () => closeAllPools() };
  },
};

const fullStackLimits: Variant = {
  name: "lm_full_stack_with_limits",
  async setup(url) {
    const lm = createLM("openai/sim", {
      baseUrl: `${url}/v1`,
      limits: { maxConcurrency: 1024, rpm: 10_000_000, tpm: 10_000_000_000 },
    });
    return { call: (j) => lm.call({ messages: messagesFor(question(3, j)) }), close: () => closeAllPools() };
  },
};

const predictFullStack: Variant = {
  name: "predict_full_stack",
  async setup(url) {
    // A whole prediction with createLM's defaults: ChatAdapter format -> LM full stack (cache
    // lookup and store included) -> parse into typed fields. The Predict carries
    // ChainOfThought's signature, so it sends the same bytes as bare_undici.
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1` });
    const predict = new ChainOfThought("question -> answer: int", { lm }).predict;
    const body = lm.provider.encode({ model: "sim", messages: adapter.format(predict.signature, [], { question: question(PREDICT_SPACE, 12345) }) });
    if (body !== JSON.stringify({ model: "sim", messages: messagesFor(question(PREDICT_SPACE, 12345)) })) {
      throw new Error("bench bug: bare_undici and predict_full_stack would send different bytes");
    }
    return { call: (j) => predict.call({ question: question(PREDICT_SPACE, j) }), close: () => closeAllPools() };
  },
};

const chainOfThoughtFullStack: Variant = {
  name: "chain_of_thought_full_stack",
  async setup(url) {
    // The same prediction through the ChainOfThought module (adds a module call scope).
    const lm = createLM("openai/sim", { baseUrl: `${url}/v1` });
    const cot = new ChainOfThought("question -> answer: int", { lm });
    return { call: (j) => cot.call({ question: question(4, j) }), close: () => closeAllPools() };
  },
};

const VARIANTS: Variant[] = [bareUndici, bareUndiciDispatch, fullStack, fullStackLimits, predictFullStack, chainOfThoughtFullStack];

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
const load = () => loadavg().map((x) => round(x, 2));

type Call = () => Promise<unknown>;

async function runAt(call: Call, n: number, concurrency: number): Promise<void> {
  let left = n;
  const worker = async () => {
    while (left > 0) {
      left--;
      await call();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

async function wallMs(call: Call, n: number, concurrency: number): Promise<number> {
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

// Calls made so far per variant, over the whole run (the process-wide cache outlives phases).
const callsMade = VARIANTS.map(() => 0);

/** Set up every variant against `url`; call k's j-th invocation asks question j of variant k. */
async function setupAll(url: string): Promise<{ calls: Call[]; close: () => Promise<void> }> {
  const clients = await Promise.all(VARIANTS.map((v) => v.setup(url)));
  return {
    calls: clients.map((c, k) => () => c.call(callsMade[k]++)),
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

interface Phase {
  samples: number[][];
  loadavgBefore: number[];
  loadavgAfter: number[];
}

/** Interleaved rounds (order rotated each round so drift favours no variant), after a warm-up. */
async function measure(calls: Call[], rounds: number, warmup: number, sample: (call: Call) => Promise<number>, warmConcurrency: number): Promise<Phase> {
  for (const c of calls) await runAt(c, warmup, warmConcurrency);
  const samples: number[][] = calls.map(() => []);
  const loadavgBefore = load();
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < calls.length; k++) {
      const idx = (k + r) % calls.length;
      samples[idx].push(await sample(calls[idx]));
    }
  }
  return { samples, loadavgBefore, loadavgAfter: load() };
}

/**
 * CPU ms per call. Each round makes `perRound` calls per variant in blocks of `block`, the
 * variants taking turns block by block (order rotated), so every variant of a round sees
 * the same machine load: on a shared machine the load moves within seconds, and a round's
 * ratios would otherwise mostly measure that.
 */
async function measureCpu(calls: Call[], rounds: number, warmup: number, perRound: number, block: number, concurrency: number): Promise<Phase> {
  for (const c of calls) await runAt(c, warmup, concurrency);
  const samples: number[][] = calls.map(() => []);
  const loadavgBefore = load();
  for (let r = 0; r < rounds; r++) {
    const cpu = calls.map(() => 0);
    for (let b = 0; b * block < perRound; b++) {
      for (let k = 0; k < calls.length; k++) {
        const idx = (k + b + r) % calls.length;
        const c0 = process.cpuUsage();
        await runAt(calls[idx], block, concurrency);
        const c = process.cpuUsage(c0);
        cpu[idx] += c.user + c.system;
      }
    }
    const n = Math.ceil(perRound / block) * block;
    cpu.forEach((us, k) => samples[k].push(us / 1000 / n));
  }
  return { samples, loadavgBefore, loadavgAfter: load() };
}

function summarize(phase: Phase, unit: string, scale: number, digits: number): Record<string, unknown> {
  const base = phase.samples[0];
  const out: Record<string, unknown> = {};
  VARIANTS.forEach((v, k) => {
    const xs = phase.samples[k];
    const roundRatios = xs.map((x, r) => x / base[r]);
    out[v.name] = {
      [`median${unit}`]: round(median(xs) * scale, digits),
      samples: xs.map((x) => round(x * scale, digits)),
      roundRatiosVsBare: roundRatios.map((x) => round(x, 3)),
      medianRoundRatioVsBare: round(median(roundRatios), 3),
      ratioOfMediansVsBare: round(median(xs) / median(base), 3),
    };
  });
  return out;
}

const medianRoundRatio = (phase: Phase, k: number) => round(median(phase.samples[k].map((x, r) => x / phase.samples[0][r])), 3);

/** Replace a pool's request() and dispatch() with an in-memory canned reply (transport-free overhead). */
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
  const headers = { "content-type": "application/json" };
  const pool = poolFor(url) as unknown as {
    request: (o: Dispatcher.RequestOptions) => Promise<unknown>;
    dispatch: (o: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) => boolean;
  };
  pool.request = async () => ({ statusCode: 200, headers, body });
  // The LM layer's path: the handler's callbacks, one microtask later (like request() above).
  const bytes = Buffer.from(reply);
  const controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null } as unknown as Dispatcher.DispatchController;
  pool.dispatch = (_o, h) => {
    queueMicrotask(() => {
      h.onRequestStart?.(controller, {});
      h.onResponseStart?.(controller, 200, headers, "OK");
      h.onResponseData?.(controller, bytes);
      h.onResponseEnd?.(controller, {});
    });
    return true;
  };
}

async function main(): Promise<void> {
  // The engine runs AsyncLocalStorage scopes (usage tracking, settings), which turn on async
  // hooks for the whole process and make every promise dearer. Turn them on before any round
  // so all variants and rounds run under the same conditions, as in any program using the engine.
  new AsyncLocalStorage<number>().run(0, () => undefined);
  const calls = arg("calls", 2000);
  const rounds = arg("rounds", 7);
  const wallCalls = arg("wall-calls", 1280);
  const wallRounds = arg("wall-rounds", 5);
  const loadavgStart = load();

  // 1. Transport stubbed in memory: the LM layer's own CPU per call, free of network noise.
  const stubUrl = "http://stub.invalid:1";
  stubTransport(stubUrl);
  const stubbed = await setupAll(stubUrl);
  const stubCalls = calls * 10;
  const stub = await measureCpu(stubbed.calls, rounds, 5000, stubCalls, 1000, 1);
  await closeAllPools();

  // 2. CPU per call against sim-lm in a child process (latency 0): one call at a time, and 16 in flight.
  const fast = await spawnSim({ latencyMs: 0, seed: 1 });
  const clients = await setupAll(fast.url);
  const c1 = await measureCpu(clients.calls, rounds, 1000, calls, 50, 1);
  const c16 = await measureCpu(clients.calls, rounds, 1000, calls, 160, 16);
  await clients.close();
  fast.child.disconnect();

  // 3. Wall time: concurrency 64 against a server with 50 ms latency.
  const slow = await spawnSim({ latencyMs: 50, seed: 1 });
  const wallClients = await setupAll(slow.url);
  const wall = await measure(wallClients.calls, wallRounds, 128, (c) => wallMs(c, wallCalls, 64), 64);
  await wallClients.close();
  slow.child.disconnect();

  const stubUs = (k: number) => median(stub.samples[k]) * 1000;
  const predictK = VARIANTS.indexOf(predictFullStack);
  const phase = (p: Phase, extra: Record<string, unknown>, unit: string, scale: number, digits: number) => ({
    ...extra,
    loadavgBefore: p.loadavgBefore,
    loadavgAfter: p.loadavgAfter,
    variants: summarize(p, unit, scale, digits),
  });
  const wallOut = phase(
    wall,
    { callsPerRound: wallCalls, rounds: wallRounds, simLatencyMs: 50, goal: "predict_full_stack (and lm_full_stack) <= 1.1x bare_undici" },
    "WallMs",
    1,
    1,
  );
  VARIANTS.forEach((v, k) => {
    (wallOut.variants[v.name] as Record<string, unknown>).callsPerSec = round((wallCalls / median(wall.samples[k])) * 1000, 1);
  });
  process.stdout.write(
    JSON.stringify(
      {
        bench: "lm-overhead",
        node: process.version,
        cpus: cpus().length,
        loadavgStart,
        loadavgEnd: load(),
        simLm: "child process on 127.0.0.1 (its CPU is not counted)",
        asyncHooks: "enabled for all variants (AsyncLocalStorage active, as with the engine)",
        cache: "LM variants use createLM's default (process-wide in-memory cache); every call asks a new question, so none is a cache hit",
        headline: {
          predictCpuRatioConcurrency1: medianRoundRatio(c1, predictK),
          goal: "<= 1.2 (median over rounds of predict_full_stack / bare_undici CPU per call, concurrency 1)",
          predictWallRatioConcurrency64: medianRoundRatio(wall, predictK),
          wallGoal: "<= 1.1",
          predictCpuRatioConcurrency1VsDispatch: round(median(c1.samples[predictK].map((x, r) => x / c1.samples[1][r])), 3),
          vsDispatchNote: "informational: predict_full_stack / bare_undici_dispatch (the transport the LM layer uses), engine cost on an equal transport",
        },
        stubbedTransport: phase(
          stub,
          {
            note: "undici Pool.request and Pool.dispatch replaced by an in-memory canned reply: CPU of everything but the network",
            callsPerRound: stubCalls,
            callsPerBlock: 1000,
            rounds,
            lmLayerOverheadUsPerCall: round(stubUs(VARIANTS.indexOf(fullStack)) - stubUs(0), 2),
            predictOverheadUsPerCall: round(stubUs(predictK) - stubUs(0), 2),
            predictOverheadVsDispatchUsPerCall: round(stubUs(predictK) - stubUs(1), 2),
          },
          "CpuUsPerCall",
          1000,
          2,
        ),
        cpuConcurrency1: phase(c1, { callsPerRound: calls, callsPerBlock: 50, rounds, simLatencyMs: 0, goal: "predict_full_stack (and lm_full_stack) <= 1.2x bare_undici" }, "CpuMsPerCall", 1, 4),
        cpuConcurrency16: phase(c16, { callsPerRound: calls, callsPerBlock: 160, concurrency: 16, rounds, simLatencyMs: 0 }, "CpuMsPerCall", 1, 4),
        wallConcurrency64: wallOut,
      },
      null,
      2,
    ) + "\n",
  );
}

if (process.argv.includes("--serve")) await serve();
else await main();
