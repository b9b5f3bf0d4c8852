import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Example, Predict, configure, type LM, type LMRequest } from "../../src/index.js";
import { Evaluate } from "../../src/engine/evaluate/evaluate.js";
import { LocalExecutor, type Task } from "../../src/engine/evaluate/executor.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";

afterEach(() => resetSettingsForTests());

/** Answers "n+m?" questions; sometimes wrong or failing, deterministically; tracks concurrency. */
class ArithLM implements LM {
  readonly model = "test/arith";
  inFlight = 0;
  peak = 0;
  calls = 0;
  constructor(private readonly opts: { wrongEvery?: number; failEvery?: number; delayMs?: number } = {}) {}
  async call(req: LMRequest) {
    this.calls++;
    this.inFlight++;
    this.peak = Math.max(this.peak, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, this.opts.delayMs ?? 0));
      const q = /\[\[ ## question ## \]\]\n(\d+)\+(\d+)\?/.exec(req.messages.at(-1)!.content)!;
      const a = Number(q[1]);
      const b = Number(q[2]);
      if (this.opts.failEvery && a % this.opts.failEvery === 0) throw Object.assign(new Error(`LM failed on ${a}`), { code: "server_error" });
      const answer = this.opts.wrongEvery && a % this.opts.wrongEvery === 0 ? a + b + 1 : a + b;
      return { outputs: [`[[ ## answer ## ]]\n${answer}\n\n[[ ## completed ## ]]`], model: this.model, usage: { promptTokens: 3, completionTokens: 1, totalTokens: 4, costUsd: 0.5 } };
    } finally {
      this.inFlight--;
    }
  }
}

const devset = (n: number) => Array.from({ length: n }, (_, i) => new Example({ question: `${i}+1?`, answer: String(i + 1) }).withInputs("question"));

describe("LocalExecutor", () => {
  it("streams results in completion order, bounded by concurrency, and reports failures as values", async () => {
    const lm = new ArithLM({ failEvery: 5, delayMs: 1 });
    configure({ lm });
    const tasks: Task[] = devset(20).map((e, i) => ({ id: `t${i}`, program: "p", example: e.toDict(), inputKeys: ["question"], metric: "exact_match" }));
    const results = [];
    for await (const r of new LocalExecutor({ concurrency: 3 }).run({ programs: { p: new Predict("question -> answer") }, tasks })) results.push(r);
    expect(results).toHaveLength(20);
    expect(new Set(results.map((r) => r.id)).size).toBe(20);
    expect(lm.peak).toBeLessThanOrEqual(3);
    const failed = results.filter((r) => !r.ok);
    expect(failed.map((r) => r.id).sort()).toEqual(["t0", "t10", "t15", "t5"]);
    expect(failed[0].error).toMatchObject({ code: "server_error" });
    expect(results.filter((r) => r.ok).every((r) => r.score === 1)).toBe(true);
  });

  it("records traces by predictor path for bootstrapping", async () => {
    configure({ lm: new ArithLM() });
    const tasks: Task[] = [{ id: "x", program: "p", example: { question: "1+1?", answer: "2" }, inputKeys: ["question"], trace: true }];
    const [r] = await collect(new LocalExecutor().run({ programs: { p: new Predict("question -> answer") }, tasks }));
    expect(r.trace).toEqual([{ predictor: "self", inputs: { question: "1+1?" }, outputs: { answer: "2" } }]);
  });

  it("stops pulling tasks when cancelled", async () => {
    const lm = new ArithLM({ delayMs: 5 });
    configure({ lm });
    const ac = new AbortController();
    let pulled = 0;
    function* tasks(): Generator<Task> {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield { id: String(i), program: "p", example: { question: `${i}+1?` }, inputKeys: ["question"] };
      }
    }
    let seen = 0;
    await expect(
      (async () => {
        for await (const _ of new LocalExecutor({ concurrency: 4 }).run({ programs: { p: new Predict("question -> answer") }, tasks: tasks() }, { signal: ac.signal })) {
          if (++seen === 10) ac.abort();
        }
      })(),
    ).rejects.toThrow(/cancelled/);
    expect(pulled).toBeLessThan(20);
  });
});

describe("Evaluate", () => {
  it("scores, counts errors with failureScore and sums usage", async () => {
    const lm = new ArithLM({ wrongEvery: 4, failEvery: 10 });
    configure({ lm });
    const ev = new Evaluate({ devset: devset(40), metric: "exact_match", concurrency: 8, progress: false, failureScore: 0 });
    const r = await ev.run(new Predict("question -> answer"));
    // 40 examples: 4 fail (0,10,20,30), of the rest every 4th is wrong (4,8,12,16,24,28,32,36)
    expect(r.total).toBe(40);
    expect(r.errors).toBe(4);
    expect(r.sum).toBe(28);
    expect(r.score).toBe(70);
    expect(r.usage.totalTokens).toBe(36 * 4);
    expect(r.usage.costUsd).toBe(18);
  });

  it("stops once errors exceed maxErrors, naming the first error", async () => {
    configure({ lm: new ArithLM({ failEvery: 1 }) });
    const ev = new Evaluate({ devset: devset(50), metric: "exact_match", maxErrors: 2, concurrency: 1, progress: false });
    await expect(ev.run(new Predict("question -> answer"))).rejects.toThrow(/evaluation stopped: 3 examples failed \(maxErrors 2\); first error: \[server_error\] LM failed on 0/);
  });

  it("streams per-example results to a callback and a JSONL file, from an async iterable devset", async () => {
    configure({ lm: new ArithLM({ wrongEvery: 2 }) });
    const dir = mkdtempSync(join(tmpdir(), "dspex-eval-"));
    const file = join(dir, "results.jsonl");
    async function* stream() {
      for (let i = 1; i <= 10; i++) yield { question: `${i}+1?`, answer: String(i + 1) };
    }
    const seen: number[] = [];
    const r = await new Evaluate({ devset: stream(), metric: "exact_match", progress: false, resultsFile: file, onResult: (x) => void seen.push(x.index) }).run(
      new Predict("question -> answer"),
    );
    expect(r.total).toBe(10);
    expect(r.sum).toBe(5);
    expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(10);
    expect(lines.find((l) => l.index === 0)).toMatchObject({ example: { question: "1+1?", answer: "2" }, prediction: { answer: "2" }, score: 1 });
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
