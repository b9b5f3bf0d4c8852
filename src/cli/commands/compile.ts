// `dspex compile`: optimize a saved program on a training set and save the result.
import { Command } from "commander";
import { CheckpointExecutor } from "../../engine/evaluate/checkpoint.js";
import { readAll } from "../../engine/evaluate/data.js";
import { Evaluate } from "../../engine/evaluate/evaluate.js";
import { LocalExecutor, type Executor } from "../../engine/evaluate/executor.js";
import { resolveMetric } from "../../engine/evaluate/metrics.js";
import { Example } from "../../engine/example.js";
import { getRegistry } from "../../engine/registry.js";
import { withSettings } from "../../engine/settings.js";
import { loadProgram, saveProgram } from "../../engine/state.js";
import { createOptimizer, OPTIMIZERS } from "../../engine/teleprompt/by_name.js";
import { CliError } from "../errors.js";
import { addJoinOptions, connectJobs, jobProgress, shareOfWork, type JoinFlags } from "../cluster_run.js";
import type { Module } from "../../engine/modules/module.js";
import type { OptimizerName, OptimizerOptions } from "../../engine/teleprompt/by_name.js";
import { addLMOptions, intFlag, openLM, type LMFlags } from "../lm_options.js";
import { checkFields, parseInputKeys } from "../program_io.js";


interface CompileFlags extends LMFlags, JoinFlags {
  program: string;
  data: string;
  valset?: string;
  metric: string;
  optimizer: string;
  out?: string;
  concurrency?: string;
  maxBootstrappedDemos?: string;
  maxLabeledDemos?: string;
  maxRounds?: string;
  numCandidates?: string;
  numTrials?: string;
  seed?: string;
  checkpoint?: string;
  inputKeys?: string;
  plugin?: string[];
  json?: boolean;
}

export function compileCommand(): Command {
  const cmd = new Command("compile")
    .description("optimize a saved program on a training set")
    .requiredOption("--program <file>", "program JSON to optimize")
    .requiredOption("--data <file>", "training set (.jsonl or .csv)")
    .option("--valset <file>", "validation set for scoring candidates (default: the training set)")
    .requiredOption("--metric <name>", "metric name (exact_match, f1, ... or a plugin's)")
    .requiredOption("--optimizer <name>", `one of: ${OPTIMIZERS.join(", ")}`)
    .option("--out <file>", "where to save the compiled program", "compiled.json")
    .option("--concurrency <n>", "tasks in flight at once", "16")
    .option("--max-bootstrapped-demos <n>", "bootstrapped demos per predictor", "4")
    .option("--max-labeled-demos <n>", "labeled demos per predictor (default 16; mipro 4)")
    .option("--max-rounds <n>", "bootstrap attempts per example", "1")
    .option("--num-candidates <n>", "random-search: candidate programs (default 16); mipro: candidates per predictor (default 6)")
    .option("--num-trials <n>", "mipro: search trials (default from the number of candidates)")
    .option("--seed <n>", "mipro: random seed", "9")
    .option("--checkpoint <file>", "append finished task results here and resume from them after a crash")
    .option("--input-keys <a,b>", "input fields (default: the program's inputs)")
    .option("--plugin <file...>", "local ES module(s) registering modules/metrics/tools")
    .option("--json", "print a machine-readable summary on stdout");
  addLMOptions(cmd);
  addJoinOptions(cmd);
  cmd.action(async (flags: CompileFlags) => {
    for (const p of flags.plugin ?? []) await getRegistry().loadPlugin(p);
    if (!(OPTIMIZERS as readonly string[]).includes(flags.optimizer)) {
      throw new CliError(`unknown optimizer '${flags.optimizer}'; valid: ${OPTIMIZERS.join(", ")}`);
    }
    if (!flags.join) resolveMetric(flags.metric); // on a cluster, the peers check it
    const concurrency = intFlag("concurrency", flags.concurrency, 16, 1);
    const maxBootstrappedDemos = intFlag("max-bootstrapped-demos", flags.maxBootstrappedDemos, 4);
    const maxLabeledDemos = intFlag("max-labeled-demos", flags.maxLabeledDemos, flags.optimizer === "mipro" ? 4 : 16);
    const maxRounds = intFlag("max-rounds", flags.maxRounds, 1, 1);
    const numCandidates = intFlag("num-candidates", flags.numCandidates, flags.optimizer === "mipro" ? 6 : 16, 0);
    const numTrials = flags.numTrials === undefined ? undefined : intFlag("num-trials", flags.numTrials, 0, 1);
    const seed = intFlag("seed", flags.seed, 9);
    const program = await loadProgram(flags.program);
    const train = await readAll(flags.data);
    const inputKeys = parseInputKeys(flags.inputKeys) ?? checkFields(program, train, flags.data);
    const val = flags.valset ? await readAll(flags.valset) : undefined;
    if (val && !flags.inputKeys) checkFields(program, val, flags.valset!);
    const trainset = train.map((r) => new Example(r).withInputs(...inputKeys));
    const valset = val?.map((r) => new Example(r).withInputs(...inputKeys));

    let executor: Executor = new LocalExecutor({ concurrency });
    if (flags.checkpoint) executor = new CheckpointExecutor(executor, flags.checkpoint);
    const optimizerOptions = { maxBootstrappedDemos, maxLabeledDemos, maxRounds, numCandidates, ...(numTrials !== undefined ? { numTrials } : {}), seed };
    if (flags.join) {
      if (flags.checkpoint) throw new CliError("--checkpoint is for local runs; a cluster job checkpoints through the cluster by itself");
      return await compileOnCluster(flags, program, trainset, valset, inputKeys, optimizerOptions);
    }
    const optimizer = createOptimizer(flags.optimizer, flags.metric, optimizerOptions);

    const opened = await openLM(flags);
    const started = performance.now();
    try {
      const progress = flags.json ? false : "auto";
      const compiled = await withSettings({ lm: opened.lm }, () => optimizer.compile(program, { trainset, valset, executor, progress }));
      // Saved atomically: a crash never leaves a half-written program under --out.
      await saveProgram(compiled, flags.out!);
      let score: number | undefined;
      if (valset) {
        const r = await withSettings({ lm: opened.lm }, () =>
          new Evaluate({ devset: valset, metric: flags.metric, executor, progress }).run(compiled),
        );
        score = r.score;
      }
      const demos = Object.fromEntries(compiled.namedPredictors().map(([p, m]) => [p, m.demos.length]));
      const summary = { optimizer: flags.optimizer, out: flags.out, demos, ...(score !== undefined ? { valScore: score } : {}), durationMs: performance.now() - started };
      if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
      else process.stdout.write(`saved ${flags.out} (${Object.entries(demos).map(([p, n]) => `${p}: ${n} demos`).join(", ")})${score !== undefined ? `; validation score ${score}%` : ""}\n`);
    } finally {
      await opened.close();
    }
  });
  return cmd;
}

async function compileOnCluster(flags: CompileFlags, program: Module, trainset: Example[], valset: Example[] | undefined, inputKeys: string[], options: OptimizerOptions): Promise<void> {
  const started = performance.now();
  const jobs = await connectJobs(flags);
  const bar = jobProgress("Compiling on the cluster", !!flags.json);
  try {
    const r = await jobs.compile(program, { optimizer: flags.optimizer as OptimizerName, optimizerOptions: options, trainset, ...(valset ? { valset } : {}), metric: flags.metric, inputKeys, onProgress: bar.onProgress });
    bar.stop();
    await saveProgram(r.program, flags.out!);
    let score: number | undefined;
    if (valset) {
      const bar2 = jobProgress("Validating on the cluster", !!flags.json);
      score = (await jobs.evaluate(r.json, valset, { metric: flags.metric, inputKeys, onProgress: bar2.onProgress }).finally(() => bar2.stop())).score;
    }
    const demos = Object.fromEntries(r.program.namedPredictors().map(([p, m]) => [p, m.demos.length]));
    const summary = { optimizer: flags.optimizer, out: flags.out, demos, ...(score !== undefined ? { valScore: score } : {}), jobId: r.jobId, stats: r.stats, durationMs: performance.now() - started };
    if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
    else {
      process.stdout.write(
        `saved ${flags.out} (${Object.entries(demos).map(([p, n]) => `${p}: ${n} demos`).join(", ")})${score !== undefined ? `; validation score ${score}%` : ""}; ` +
          `compiled on the cluster (job ${r.jobId})\nwork: ${shareOfWork(r.stats)}\n`,
      );
    }
  } finally {
    bar.stop();
    await jobs.close();
  }
}
