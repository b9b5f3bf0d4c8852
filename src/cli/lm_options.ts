// LM selection shared by commands: --lm <provider/model> [--base-url URL], or `--lm sim`
// for an in-process sim-lm (the built-in simulator; no network beyond 127.0.0.1).
import { Command, Option } from "commander";
import { createLM } from "../engine/lm/index.js";
import type { LM } from "../engine/lm/types.js";
import { startSimLm, type SimLm } from "../simlm/index.js";
import { CliError } from "./errors.js";

export interface LMFlags {
  lm?: string;
  baseUrl?: string;
  simLatency?: string;
  simSeed?: string;
  simCapacity?: string;
  lmCache?: string;
  maxConcurrency?: string;
}

export function addLMOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--lm <model>", 'model: "openai/<model>", "anthropic/<model>", "gemini/<model>", or "sim" for the built-in sim-lm').env("DSPEX_LM"))
    .option("--base-url <url>", "base URL of an OpenAI-compatible server (vLLM, Ollama, sim-lm): e.g. http://127.0.0.1:8787/v1")
    .option("--sim-latency <ms>", "with --lm sim: reply latency in ms", "20")
    .option("--sim-seed <n>", "with --lm sim: seed of its answers", "0")
    .option("--sim-capacity <n>", "with --lm sim: requests it serves at once (more queue); 0 = unlimited", "0")
    .option("--lm-cache <on|off>", "cache LM replies in memory (off: every call reaches the LM)", "on");
}

export interface OpenedLM {
  lm: LM;
  sim?: SimLm;
  close(): Promise<void>;
}

export function intFlag(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

export async function openLM(flags: LMFlags): Promise<OpenedLM> {
  const model = flags.lm;
  if (!model) {
    throw new CliError('no LM chosen: pass --lm openai/gpt-4o-mini (or anthropic/..., gemini/...), or --lm sim for the built-in simulator (also settable as DSPEX_LM)');
  }
  if (flags.lmCache !== undefined && !["on", "off"].includes(flags.lmCache)) throw new CliError(`--lm-cache must be on or off, got '${flags.lmCache}'`);
  const cache = flags.lmCache === "off" ? { cache: false } : {};
  if (model === "sim" || model.startsWith("sim/")) {
    const capacity = intFlag("sim-capacity", flags.simCapacity, 0);
    const sim = await startSimLm({ port: 0, latencyMs: intFlag("sim-latency", flags.simLatency, 20), seed: intFlag("sim-seed", flags.simSeed, 0), ...(capacity > 0 ? { capacity } : {}) });
    const lm = createLM(`openai/${model === "sim" ? "sim-1" : model.slice(4)}`, { baseUrl: `${sim.url}/v1`, apiKey: "sim", ...cache });
    return { lm, sim, close: () => sim.close() };
  }
  try {
    const lm = createLM(model, { ...(flags.baseUrl ? { baseUrl: flags.baseUrl } : {}), ...cache });
    return { lm, close: async () => {} };
  } catch (e) {
    throw new CliError(`--lm ${model}: ${(e as Error).message}`);
  }
}
