// The `dspex` command. Each subcommand lives in ./commands; errors that come from user
// input print one clear line and exit 2, never a stack trace.
import "../util/polyfill.js";
import { Command, CommanderError } from "commander";
import { DspexError } from "../engine/errors.js";
import { CliError } from "./errors.js";
import { programCommand } from "./commands/program.js";
import { evalCommand } from "./commands/eval.js";
import { compileCommand } from "./commands/compile.js";
import { demoCommand } from "./commands/demo.js";
import { simLmCommand } from "./commands/sim-lm.js";
import { identityCommand, keygenCommand, limitsCommand, peerCommand, statusCommand, topologyCommand } from "./commands/peer.js";
import { DSPEX_VERSION } from "../engine/state.js";

export async function main(argv: string[]): Promise<number> {
  const program = new Command("dspex")
    .description("DSPy's declarative LM programming, distributed over a libp2p cluster")
    .version(DSPEX_VERSION)
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(programCommand());
  program.addCommand(evalCommand());
  program.addCommand(compileCommand());
  program.addCommand(demoCommand());
  program.addCommand(simLmCommand());
  program.addCommand(peerCommand());
  program.addCommand(keygenCommand());
  program.addCommand(statusCommand());
  program.addCommand(identityCommand());
  program.addCommand(topologyCommand());
  program.addCommand(limitsCommand());
  for (const load of optionalCommands) {
    const cmd = await load();
    if (cmd) program.addCommand(cmd);
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError || err instanceof DspexError) {
      process.stderr.write(`dspex: ${err.message}\n`);
      return err instanceof CliError ? err.exitCode : 2;
    }
    process.stderr.write(`dspex: internal error: ${(err as Error)?.stack ?? err}\n`);
    return 1;
  }
}

/** Subcommands added as their issues land; each module exports a Command factory. */
const optionalCommands: (() => Promise<Command | undefined>)[] = [];
