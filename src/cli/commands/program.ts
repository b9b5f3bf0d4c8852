// `dspex program show P.json`: what a saved program contains (module tree, predictors,
// signatures, demo counts), without calling any LM.
import { Command } from "commander";
import { loadProgram, parseProgramJSON } from "../../engine/state.js";
import { readFile } from "node:fs/promises";
import { Predict } from "../../engine/modules/predict.js";
import { CliError } from "../errors.js";

export function programCommand(): Command {
  const cmd = new Command("program").description("inspect saved program files");
  cmd
    .command("show")
    .description("print a saved program's module tree, predictors and demo counts")
    .argument("<file>", "program JSON written by module.save() or DSPy")
    .option("--json", "machine-readable output")
    .action(async (file: string, opts: { json?: boolean }) => {
      const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
        throw new CliError(`${file}: ${e.code === "ENOENT" ? "file not found" : e.message}`);
      });
      const json = parseProgramJSON(text, file);
      const program = json.dspex ? await loadProgram(file) : undefined;
      const predictors = program
        ? program.namedPredictors().map(([path, p]) => ({
            path,
            signature: (p as unknown as Predict).signature.toString(),
            instructions: (p as unknown as Predict).signature.instructions,
            demos: p.demos.length,
          }))
        : Object.entries(json)
            .filter(([k]) => k !== "metadata" && k !== "dspex")
            .map(([path, s]) => ({ path, demos: Array.isArray((s as { demos?: unknown[] }).demos) ? (s as { demos: unknown[] }).demos.length : 0 }));
      const summary = { file, kind: json.dspex?.program.kind ?? null, rebuildable: !!json.dspex, predictors };
      if (opts.json) {
        process.stdout.write(JSON.stringify(summary) + "\n");
        return;
      }
      process.stdout.write(`${file}: ${summary.kind ?? "DSPy-format file (no dspex section: load it into a program built in code)"}\n`);
      for (const p of predictors) {
        const sig = "signature" in p ? `  ${p.signature}` : "";
        process.stdout.write(`  ${p.path}${sig}  (${p.demos} demos)\n`);
      }
    });
  return cmd;
}
