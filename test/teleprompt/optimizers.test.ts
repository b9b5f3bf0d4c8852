import { afterEach, describe, expect, it } from "vitest";
import { ChainOfThought, Example, Predict, configure, type LM, type LMRequest } from "../../src/index.js";
import { LocalExecutor } from "../../src/engine/evaluate/executor.js";
import { Evaluate } from "../../src/engine/evaluate/evaluate.js";
import { BootstrapFewShot } from "../../src/engine/teleprompt/bootstrap.js";
import { LabeledFewShot } from "../../src/engine/teleprompt/labeled.js";
import { BootstrapFewShotWithRandomSearch } from "../../src/engine/teleprompt/random_search.js";
import { PyRandom } from "../../src/engine/teleprompt/pyrandom.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";

afterEach(() => resetSettingsForTests());

/**
 * Deterministic arithmetic LM: answers "a+b?" correctly unless a % 3 === 0, in which case
 * it is right only with at least `demosNeeded` demos in the prompt, or on rollout 1+.
 * Latency is pseudo-random per call, so completion order differs from submission order.
 * It checks that a teacher never sees the current example among its demos.
 */
class ArithLM implements LM {
  readonly model = "test/arith";
  calls = 0;
  leaked = 0;
  private readonly rng = new PyRandom(42);
  constructor(private readonly demosNeeded = 99) {}
  async call(req: LMRequest) {
    this.calls++;
    await new Promise((r) => setTimeout(r, this.rng.randbelow(4)));
    const last = req.messages.at(-1)!.content;
    const [, a, b] = /\[\[ ## question ## \]\]\n(\d+)\+(\d+)\?/.exec(last)!.map(Number);
    const demoQuestions = req.messages.slice(1, -1).filter((m) => m.role === "user").map((m) => /\[\[ ## question ## \]\]\n(.*)/.exec(m.content)?.[1]);
    if (demoQuestions.includes(`${a}+${b}?`)) this.leaked++;
    const demos = demoQuestions.length;
    const right = a % 3 !== 0 || demos >= this.demosNeeded || (req.rolloutId ?? 0) > 0;
    const answer = right ? a + b : a + b + 1;
    const wantsReasoning = req.messages[0].content.includes("`reasoning`");
    const body = (wantsReasoning ? `[[ ## reasoning ## ]]\nadd ${a} and ${b}\n\n` : "") + `[[ ## answer ## ]]\n${answer}\n\n[[ ## completed ## ]]`;
    return { outputs: [body], model: this.model, usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2, costUsd: 0 } };
  }
}

const data = (n: number, offset = 0) =>
  Array.from({ length: n }, (_, i) => new Example({ question: `${i + offset}+2?`, answer: String(i + offset + 2) }).withInputs("question"));

describe("LabeledFewShot", () => {
  it("samples k demos with Python's Random(0), like DSPy", async () => {
    const train = data(30);
    const compiled = (await new LabeledFewShot({ k: 4 }).compile(new Predict("question -> answer"), { trainset: train })) as Predict;
    const expected = new PyRandom(0).sample(train, 4).map((e) => e.toDict());
    expect(compiled.demos).toEqual(expected);
    // CPython: random.Random(0).sample(range(30), 4) == [27, 12, 24, 28]
    expect(compiled.demos.map((d) => d.question)).toEqual(["27+2?", "12+2?", "24+2?", "28+2?"]);
  });
});

describe("BootstrapFewShot", () => {
  const run = async (concurrency: number, opts: ConstructorParameters<typeof BootstrapFewShot>[0] = {}) => {
    const lm = new ArithLM();
    configure({ lm });
    const bs = new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: 4, maxLabeledDemos: 6, ...opts });
    const compiled = (await bs.compile(new ChainOfThought("question -> answer"), {
      trainset: data(40),
      executor: new LocalExecutor({ concurrency }),
      progress: false,
    })) as ChainOfThought;
    return { demos: compiled.predict.demos, report: bs.report!, lm };
  };

  it("picks the first K successes by index, whatever the concurrency", async () => {
    const seq = await run(1);
    const par = await run(32);
    expect(par.demos).toEqual(seq.demos);
    // 0 and 3 fail (a % 3 === 0): the first four successes are 1, 2, 4, 5.
    expect(seq.report.bootstrapped).toEqual([1, 2, 4, 5]);
    expect(seq.demos.slice(0, 4).map((d) => d.question)).toEqual(["1+2?", "2+2?", "4+2?", "5+2?"]);
    expect(seq.demos[0]).toEqual({ augmented: true, question: "1+2?", reasoning: "add 1 and 2", answer: "3" });
    // Then up to maxLabeledDemos in total from the examples not bootstrapped.
    expect(seq.demos).toHaveLength(6);
    expect(seq.demos.slice(4).every((d) => !("augmented" in d) && !["1+2?", "2+2?", "4+2?", "5+2?"].includes(d.question as string))).toBe(true);
    expect(seq.lm.leaked).toBe(0);
    // A sequential pass runs exactly 6 examples; the concurrent one may speculate a little further.
    expect(seq.report.attempts).toBe(6);
    expect(par.report.attempts).toBeGreaterThanOrEqual(6);
  });

  it("later rounds retry failures with a fresh rollout at temperature 1", async () => {
    const r = await run(8, { maxRounds: 2 });
    expect(r.report.bootstrapped).toEqual([0, 1, 2, 3]);
    expect(r.demos[0].question).toBe("0+2?");
  });

  it("the metric threshold and the error budget apply", async () => {
    const lm = new ArithLM();
    configure({
      lm: {
        model: "x",
        call: async (req: LMRequest) => {
          if (req.messages.at(-1)!.content.includes("7+2?")) throw Object.assign(new Error("boom"), { code: "server_error" });
          return lm.call(req);
        },
      },
    });
    const bs = new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: 10, maxErrors: 1 });
    await expect(bs.compile(new Predict("question -> answer"), { trainset: data(20), progress: false })).rejects.toThrow(/bootstrapping stopped: 1 examples failed .*\[server_error\] boom/);
  });
});

describe("BootstrapFewShotWithRandomSearch", () => {
  it("evaluates DSPy's candidate schedule and returns the best, reproducibly", async () => {
    const search = async (concurrency: number) => {
      configure({ lm: new ArithLM(3) });
      const rs = new BootstrapFewShotWithRandomSearch({ metric: "exact_match", numCandidatePrograms: 3, maxBootstrappedDemos: 3, maxLabeledDemos: 3 });
      const best = (await rs.compile(new Predict("question -> answer"), {
        trainset: data(12),
        valset: data(12, 100),
        executor: new LocalExecutor({ concurrency }),
        progress: false,
      })) as Predict;
      return { best, rs };
    };
    const a = await search(1);
    const b = await search(16);
    expect(a.rs.candidates.map((c) => c.seed).sort((x, y) => x - y)).toEqual([-3, -2, -1, 0, 1, 2]);
    const zeroShot = a.rs.candidates.find((c) => c.seed === -3)!;
    // Zero-shot misses every a % 3 === 0 question (4 of 12); with >= 3 demos all are right.
    expect(zeroShot.score).toBeCloseTo(66.67, 2);
    expect(a.rs.candidates[0].score).toBe(100);
    expect(a.best.demos.length).toBeGreaterThanOrEqual(3);
    expect(b.best.demos).toEqual(a.best.demos);
    expect(b.rs.candidates.map((c) => [c.seed, c.score])).toEqual(a.rs.candidates.map((c) => [c.seed, c.score]));
    const ev = await new Evaluate({ devset: data(12, 200), metric: "exact_match", progress: false }).run(a.best);
    expect(ev.score).toBe(100);
  });
});
