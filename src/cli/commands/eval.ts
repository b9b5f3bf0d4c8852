// `dspex eval`: score a saved program on a dataset.
import { rename } from "node:fs/promises";
import { Command } from "commander";
import { Evaluate } from "../../engine/evaluate/evaluate.js";
import { LocalExecutor } from "../../engine/evaluate/executor.js";
import { resolveMetric } from "../../engine/evaluate/metrics.js";
import { getRegistry } from "../../engine/registry.js";
import { withSettings } from "../../engine/settings.js";
import { addLMOptions, intFlag, openLM, type LMFlags } from "../lm_options.js";
import { checkFields, parseInputKeys, peekRecords } from "../program_io.js";
import { loadProgram } from "../../engine/state.js";
import { readAll } from "../../engine/evaluate/data.js";
import { Example } from "../../engine/example.js";
import type { Module } from "../../engine/modules/module.js";
import { addJoinOptions, connectJobs, jobProgress, shareOfWork, type JoinFlags } from "../cluster_run.js";
import { writeFile } from "node:fs/promises";

interface EvalFlags extends LMFlags, JoinFlags {
  program: string;
  data: string;
  metric: string;
  concurrency?: string;
  maxErrors?: string;
  inputKeys?: string;
  results?: string;
  plugin?: string[];
  json?: boolean;
}

export function evalCommand(): Command {
  const cmd = new Command("eval")
    .description("evaluate a saved program on a JSONL/CSV dataset")
    .requiredOption("--program <file>", "program JSON (saved by module.save() with a dspex section)")
    .requiredOption("--data <file>", "dataset: .jsonl (one object per line) or .csv (header row)")
    .requiredOption("--metric <name>", "metric: exact_match, answer_exact_match, f1, contains, passage_match, numeric (':field' picks the field), or a plugin's")
    .option("--concurrency <n>", "examples in flight at once", "16")
    .option("--max-errors <n>", "stop after more than this many failed examples", "10")
    .option("--input-keys <a,b>", "input fields (default: the program's inputs)")
    .option("--results <file>", "write one JSON line per example here")
    .option("--plugin <file...>", "local ES module(s) registering modules/metrics/tools")
    .option("--json", "print a machine-readable summary on stdout");
  addLMOptions(cmd);
  addJoinOptions(cmd);
  cmd.action(async (flags: EvalFlags) => {
    for (const p of flags.plugin ?? []) await getRegistry().loadPlugin(p);
    if (!flags.join) resolveMetric(flags.metric); // unknown names fail before any work (peers check it on a cluster)
    const concurrency = intFlag("concurrency", flags.concurrency, 16, 1);
    const maxErrors = intFlag("max-errors", flags.maxErrors, 10);
    const program = await loadProgram(flags.program);
    const { records, all } = await peekRecords(flags.data);
    const inputKeys = parseInputKeys(flags.inputKeys) ?? checkFields(program, records, flags.data);
    if (flags.join) return await evalOnCluster(flags, program, inputKeys, maxErrors);
    const opened = await openLM(flags);
    const partial = flags.results ? `${flags.results}.partial` : undefined;
    try {
      const result = await withSettings({ lm: opened.lm }, () =>
        new Evaluate({
          devset: all(),
          metric: flags.metric,
          inputKeys,
          executor: new LocalExecutor({ concurrency }),
          maxErrors,
          progress: flags.json ? false : "auto",
          resultsFile: partial,
        }).run(program),
      );
      // Results appear under their final name only when the run completed.
      if (partial && flags.results) await rename(partial, flags.results);
      const summary = { program: flags.program, data: flags.data, metric: flags.metric, ...result };
      if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
      else {
        process.stdout.write(
          `score ${result.score}% on ${result.total} examples (${result.errors} errors) in ${(result.durationMs / 1000).toFixed(1)} s; ` +
            `tokens ${result.usage.totalTokens}, cost $${result.usage.costUsd.toFixed(4)}\n`,
        );
      }
    } finally {
      await opened.close();
    }
  });
  return cmd;
}

async function evalOnCluster(flags: EvalFlags, program: Module, inputKeys: string[], maxErrors: number): Promise<void> {
  const devset = (await readAll(flags.data)).map((r) => new Example(r).withInputs(...inputKeys));
  const jobs = await connectJobs(flags);
  const bar = jobProgress("Evaluating on the cluster", !!flags.json);
  try {
    const r = await jobs.evaluate(program, devset, { metric: flags.metric, inputKeys, maxErrors, onProgress: bar.onProgress });
    bar.stop();
    if (flags.results) {
      const partial = `${flags.results}.partial`;
      await writeFile(partial, r.results.map((x) => JSON.stringify(x)).join("\n") + "\n");
      await rename(partial, flags.results);
    }
    const { results: _r, ...summary } = r;
    if (flags.json) process.stdout.write(JSON.stringify({ program: flags.program, data: flags.data, metric: flags.metric, ...summary }) + "\n");
    else {
      process.stdout.write(
        `score ${r.score}% on ${r.total} examples (${r.errors} errors) in ${(r.durationMs / 1000).toFixed(1)} s on the cluster (job ${r.jobId}); ` +
          `tokens ${r.usage.totalTokens}, cost $${r.usage.costUsd.toFixed(4)}\nwork: ${shareOfWork(r.stats)}\n`,
      );
    }
  } finally {
    bar.stop();
    await jobs.close();
  }
}
