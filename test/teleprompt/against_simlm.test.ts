// Every optimizer against sim-lm: the dev score improves or holds, and the compiled
// program is the same at concurrency 1 and 32.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainOfThought, createLM, Evaluate, LocalExecutor, withSettings, type Module, type Teleprompter, CheckpointExecutor } from "../../src/index.js";
import { BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot, MIPROv2 } from "../../src/index.js";
import { startSimLm, type SimLm } from "../../src/simlm/index.js";
import { arithmeticSet } from "../../src/cli/commands/demo.js";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";

let sim: SimLm;
beforeAll(async () => {
  sim = await startSimLm({ port: 0, latencyMs: 1, seed: 5 });
});
afterAll(() => sim.close());

const trainset = arithmeticSet(24, 21);
const devset = arithmeticSet(60, 22);

const optimizers: [string, () => Teleprompter][] = [
  ["LabeledFewShot", () => new LabeledFewShot({ k: 4 })],
  ["BootstrapFewShot", () => new BootstrapFewShot({ metric: "exact_match", maxBootstrappedDemos: 3, maxLabeledDemos: 4 })],
  ["BootstrapFewShotWithRandomSearch", () => new BootstrapFewShotWithRandomSearch({ metric: "exact_match", numCandidatePrograms: 3, maxBootstrappedDemos: 3, maxLabeledDemos: 4 })],
  ["MIPROv2", () => new MIPROv2({ metric: "exact_match", numCandidates: 3, numTrials: 5, minibatchSize: 10, seed: 1 })],
];

describe.each(optimizers)("%s against sim-lm", (_name, make) => {
  it("improves or keeps the dev score and compiles the same program at concurrency 1 and 32", async () => {
    const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "x", cache: false });
    const compile = (concurrency: number) =>
      withSettings({ lm }, () => make().compile(new ChainOfThought("question -> answer"), { trainset, executor: new LocalExecutor({ concurrency }), progress: false }));
    const score = (p: Module) => withSettings({ lm }, () => new Evaluate({ devset, metric: "exact_match", progress: false, concurrency: 16 }).run(p));
    const a = await compile(1);
    const b = await compile(32);
    expect(b.dumpState()).toEqual(a.dumpState());
    const before = await score(new ChainOfThought("question -> answer"));
    const after = await score(a);
    expect(after.score).toBeGreaterThanOrEqual(before.score);
  });
});

describe("checkpointed compile against sim-lm", () => {
  it("a resumed run makes no LM calls (counted by sim-lm)", async () => {
    const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "x", cache: false });
    const file = join(mkdtempSync(join(tmpdir(), "dspex-ckpt-")), "rs.jsonl");
    const compile = () =>
      withSettings({ lm }, () =>
        new BootstrapFewShotWithRandomSearch({ metric: "exact_match", numCandidatePrograms: 2, maxBootstrappedDemos: 2, maxLabeledDemos: 2 }).compile(
          new ChainOfThought("question -> answer"),
          { trainset, executor: new CheckpointExecutor(new LocalExecutor({ concurrency: 8 }), file), progress: false },
        ),
      );
    sim.resetStats();
    const first = await compile();
    const calls = sim.stats().completions;
    expect(calls).toBeGreaterThan(0);
    sim.resetStats();
    const second = await compile();
    expect(sim.stats().completions).toBe(0);
    expect(second.dumpState()).toEqual(first.dumpState());
  });
});
