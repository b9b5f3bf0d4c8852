// `dspex demo` (= `npm run demo`): the main job end to end on this machine: start the
// built-in sim-lm, score a ChainOfThought program on arithmetic questions, compile it,
// and show the before/after score, usage and time. Everything stops by itself.
import { Command } from "commander";
import { Evaluate } from "../../engine/evaluate/evaluate.js";
import { LocalExecutor } from "../../engine/evaluate/executor.js";
import { Example } from "../../engine/example.js";
import { createLM } from "../../engine/lm/index.js";
import { addUsage, zeroUsage } from "../../engine/lm/types.js";
import { ChainOfThought } from "../../engine/modules/chain_of_thought.js";
import { withSettings } from "../../engine/settings.js";
import { saveProgram } from "../../engine/state.js";
import { BootstrapFewShotWithRandomSearch } from "../../engine/teleprompt/random_search.js";
import { PyRandom } from "../../engine/teleprompt/pyrandom.js";
import { startSimLm } from "../../simlm/index.js";
import { intFlag } from "../lm_options.js";

/** Deterministic arithmetic questions that sim-lm understands. */
export function arithmeticSet(n: number, seed: number): Example[] {
  const r = new PyRandom(seed);
  const ops = ["+", "-", "*"] as const;
  return Array.from({ length: n }, () => {
    const op = ops[r.randbelow(3)];
    const a = r.randint(2, op === "*" ? 20 : 99);
    const b = r.randint(2, op === "*" ? 20 : 99);
    const answer = op === "+" ? a + b : op === "-" ? a - b : a * b;
    return new Example({ question: `What is ${a} ${op} ${b}?`, answer: String(answer) }).withInputs("question");
  });
}

export function demoCommand(): Command {
  return new Command("demo")
    .description("compile a sample program against the built-in sim-lm and show before/after scores")
    .option("--train <n>", "training examples", "60")
    .option("--dev <n>", "dev examples", "200")
    .option("--latency <ms>", "sim-lm latency per call", "40")
    .option("--concurrency <n>", "LM calls in flight", "32")
    .option("--out <file>", "save the compiled program here")
    .option("--json", "print a machine-readable summary")
    .action(async (flags: { train: string; dev: string; latency: string; concurrency: string; out?: string; json?: boolean }) => {
      const nTrain = intFlag("train", flags.train, 60, 1);
      const nDev = intFlag("dev", flags.dev, 200, 1);
      const concurrency = intFlag("concurrency", flags.concurrency, 32, 1);
      const say = (s: string) => {
        if (!flags.json) process.stderr.write(s + "\n");
      };
      const sim = await startSimLm({ port: 0, latencyMs: intFlag("latency", flags.latency, 40), capacity: 64, seed: 7 });
      say(`sim-lm listening on ${sim.url} (OpenAI, Anthropic and Gemini wire formats; ${flags.latency} ms per call)`);
      try {
        const lm = createLM("openai/sim-1", { baseUrl: `${sim.url}/v1`, apiKey: "sim", cache: false });
        const trainset = arithmeticSet(nTrain, 1);
        const devset = arithmeticSet(nDev, 2);
        const executor = new LocalExecutor({ concurrency });
        const progress = flags.json ? false : true;
        const started = performance.now();
        const result = await withSettings({ lm }, async () => {
          const program = new ChainOfThought("question -> answer");
          say(`\nProgram: ChainOfThought("question -> answer"); ${nTrain} training and ${nDev} dev questions.`);
          const before = await new Evaluate({ devset, metric: "exact_match", executor, progress }).run(program);
          say(`Before compiling: ${before.score}% on dev.\n`);
          const optimizer = new BootstrapFewShotWithRandomSearch({ metric: "exact_match", numCandidatePrograms: 4, maxBootstrappedDemos: 4, maxLabeledDemos: 4 });
          const compiled = await optimizer.compile(program, { trainset, executor, progress });
          const after = await new Evaluate({ devset, metric: "exact_match", executor, progress }).run(compiled);
          return { before, after, compiled, candidates: optimizer.candidates };
        });
        if (flags.out) await saveProgram(result.compiled, flags.out);
        const stats = sim.stats();
        const usage = addUsage(addUsage(zeroUsage(), result.before.usage), result.after.usage);
        const summary = {
          before: result.before.score,
          after: result.after.score,
          demos: result.compiled.predictors().map((p) => p.demos.length),
          candidates: result.candidates.map((c) => ({ seed: c.seed, score: c.score })),
          lmCalls: stats.completions,
          tokens: stats.tokens,
          evalTokens: usage.totalTokens,
          wallSeconds: Math.round((performance.now() - started) / 100) / 10,
          ...(flags.out ? { saved: flags.out } : {}),
        };
        if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
        else {
          say(`\nCandidates (seed: score on the training set): ${summary.candidates.map((c) => `${c.seed}: ${c.score}%`).join(", ")}`);
          say(`After compiling:  ${summary.after}% on dev (was ${summary.before}%), ${summary.demos.join("/")} demos.`);
          say(`LM calls: ${summary.lmCalls}, tokens: ${stats.tokens.prompt} prompt + ${stats.tokens.completion} completion, wall time ${summary.wallSeconds} s.`);
          if (flags.out) say(`Saved the compiled program to ${flags.out} (load it with loadProgram or 'dspex program show').`);
        }
      } finally {
        await sim.close();
      }
    });
}
