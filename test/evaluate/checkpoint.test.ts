import { appendFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Example, Predict, configure, type LM, type LMRequest } from "../../src/index.js";
import { CheckpointExecutor } from "../../src/engine/evaluate/checkpoint.js";
import { Evaluate } from "../../src/engine/evaluate/evaluate.js";
import { LocalExecutor } from "../../src/engine/evaluate/executor.js";
import { BootstrapFewShot } from "../../src/engine/teleprompt/bootstrap.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";

afterEach(() => resetSettingsForTests());

class CountingLM implements LM {
  readonly model = "test/count";
  readonly questions: string[] = [];
  async call(req: LMRequest) {
    const q = /\[\[ ## question ## \]\]\n(\d+)\+(\d+)\?/.exec(req.messages.at(-1)!.content)!;
    this.questions.push(q[0]);
    await new Promise((r) => setTimeout(r, 1));
    return { outputs: [`[[ ## answer ## ]]\n${Number(q[1]) + Number(q[2])}`], model: this.model, usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2, costUsd: 0 } };
  }
}

const data = (n: number) => Array.from({ length: n }, (_, i) => new Example({ question: `${i}+1?`, answer: String(i + 1) }).withInputs("question"));

describe("CheckpointExecutor", () => {
  it("resumes an interrupted evaluation without repeating finished LM calls", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "dspex-ckpt-")), "eval.jsonl");
    const lm = new CountingLM();
    configure({ lm });
    const program = new Predict("question -> answer");
    // First run: "crash" (cancel) after 25 results.
    const ac = new AbortController();
    let seen = 0;
    const first = new Evaluate({
      devset: data(60),
      metric: "exact_match",
      progress: false,
      executor: new CheckpointExecutor(new LocalExecutor({ concurrency: 4 }), file),
      signal: ac.signal,
      onResult: () => {
        if (++seen === 25) ac.abort();
      },
    });
    await expect(first.run(program)).rejects.toThrow(/cancelled/);
    const callsBefore = lm.questions.length;
    expect(callsBefore).toBeGreaterThanOrEqual(25);
    expect(callsBefore).toBeLessThan(60);
    appendFileSync(file, '{"key": "torn'); // a crash can leave half a line

    const resumed = new CheckpointExecutor(new LocalExecutor({ concurrency: 4 }), file);
    expect(resumed.skippedLines).toBe(1);
    const r = await new Evaluate({ devset: data(60), metric: "exact_match", progress: false, executor: resumed }).run(program);
    expect(r.total).toBe(60);
    expect(r.score).toBe(100);
    // Every question was asked of the LM exactly once across both runs.
    expect(lm.questions).toHaveLength(60);
    expect(new Set(lm.questions).size).toBe(60);
    expect(resumed.hits).toBe(callsBefore);
  });

  it("a resumed BootstrapFewShot makes no LM calls and picks the same demos", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "dspex-ckpt-")), "boot.jsonl");
    const lm = new CountingLM();
    configure({ lm });
    const compile = () =>
      new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: 3, maxLabeledDemos: 3 }).compile(new Predict("question -> answer"), {
        trainset: data(20),
        executor: new CheckpointExecutor(new LocalExecutor({ concurrency: 8 }), file),
        progress: false,
      });
    const a = (await compile()) as Predict;
    const calls = lm.questions.length;
    const b = (await compile()) as Predict;
    expect(lm.questions.length).toBe(calls);
    expect(b.demos).toEqual(a.demos);
  });

  it("a changed program is not served from the checkpoint", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "dspex-ckpt-")), "eval.jsonl");
    const lm = new CountingLM();
    configure({ lm });
    const ev = () => new Evaluate({ devset: data(5), metric: "exact_match", progress: false, executor: new CheckpointExecutor(new LocalExecutor(), file) });
    const p = new Predict("question -> answer");
    await ev().run(p);
    p.signature = p.signature.withInstructions("Add the numbers.");
    await ev().run(p);
    expect(lm.questions).toHaveLength(10);
  });
});
