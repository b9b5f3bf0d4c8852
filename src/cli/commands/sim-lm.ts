// `dspex sim-lm`: run the OpenAI/Anthropic/Gemini-compatible simulated LM server until
// SIGINT/SIGTERM. Flags are validated with zod; a bad value throws CliError (exit 2) naming
// the flag and how to fix it.
import { Command } from "commander";
import { z } from "zod";
import { CliError } from "../errors.js";
import { FAULT_KINDS, startSimLm, type FaultKind, type SimLmOptions } from "../../simlm/server.js";

interface RawFlags {
  port?: string;
  host?: string;
  latency?: string;
  jitter?: string;
  capacity?: string;
  errorRate?: string;
  faultMix?: string;
  retryAfter?: string;
  slow?: string;
  seed?: string;
  baseAccuracy?: string;
  demoBoost?: string;
  maxBoostedDemos?: string;
  instructionBoost?: string;
  instructionKeywords?: string;
  reasoningBoost?: string;
  apiKey?: string;
  contextWindow?: string;
  json?: boolean;
}

/** A numeric flag: message names the flag, the rule and an example. */
function numberFlag(flag: string, rule: string, example: string, check: (n: number) => boolean) {
  const msg = `--${flag} must be ${rule}, e.g. --${flag} ${example}`;
  return z
    .string()
    .trim()
    .refine((s) => s !== "" && Number.isFinite(Number(s)) && check(Number(s)), { message: msg })
    .transform(Number);
}

const int = (n: number) => Number.isInteger(n);
const unitRange = (n: number) => n >= 0 && n <= 1;

const FaultMix = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const mix: Partial<Record<FaultKind, number>> = {};
    for (const part of s.split(",").filter(Boolean)) {
      const [k, v] = part.split("=").map((x) => x.trim());
      const w = Number(v);
      if (!(FAULT_KINDS as readonly string[]).includes(k) || v === undefined || !Number.isFinite(w) || w < 0) {
        ctx.addIssue({
          code: "custom",
          message: `--fault-mix must be comma-separated kind=weight pairs with kinds ${FAULT_KINDS.join(", ")} and weights >= 0, e.g. --fault-mix rate_limit=1,server_error=1 (got "${part}")`,
        });
        return z.NEVER;
      }
      mix[k as FaultKind] = w;
    }
    return mix;
  });

const FlagsSchema = z.object({
  port: numberFlag("port", "an integer from 0 to 65535 (0 = any free port)", "8787", (n) => int(n) && n >= 0 && n <= 65535).optional(),
  host: z.string().trim().min(1, "--host must be an interface address, e.g. --host 127.0.0.1").optional(),
  latency: numberFlag("latency", "a number of milliseconds >= 0", "50", (n) => n >= 0 && n <= 600_000).optional(),
  jitter: numberFlag("jitter", "a number of milliseconds >= 0", "10", (n) => n >= 0 && n <= 600_000).optional(),
  capacity: numberFlag("capacity", "an integer >= 0 (0 = unlimited)", "8", (n) => int(n) && n >= 0).optional(),
  errorRate: numberFlag("error-rate", "a probability from 0 to 1", "0.2", unitRange).optional(),
  faultMix: FaultMix.optional(),
  retryAfter: numberFlag("retry-after", "a number of milliseconds >= 0", "1000", (n) => n >= 0).optional(),
  slow: numberFlag("slow", "a number of milliseconds >= 0", "2000", (n) => n >= 0).optional(),
  seed: numberFlag("seed", "an integer", "42", (n) => int(n) && Math.abs(n) <= 2 ** 31).optional(),
  baseAccuracy: numberFlag("base-accuracy", "a probability from 0 to 1", "0.5", unitRange).optional(),
  demoBoost: numberFlag("demo-boost", "a number from 0 to 1", "0.08", unitRange).optional(),
  maxBoostedDemos: numberFlag("max-boosted-demos", "an integer >= 0", "4", (n) => int(n) && n >= 0).optional(),
  instructionBoost: numberFlag("instruction-boost", "a number from 0 to 1", "0.1", unitRange).optional(),
  instructionKeywords: z.string().optional(),
  reasoningBoost: numberFlag("reasoning-boost", "a number from 0 to 1", "0.05", unitRange).optional(),
  apiKey: z.string().optional(),
  contextWindow: numberFlag("context-window", "a positive integer number of tokens", "128000", (n) => int(n) && n > 0).optional(),
  json: z.boolean().optional(),
});

/** Turn raw flag strings into server options, or throw CliError naming the bad flag. */
export function parseSimLmFlags(raw: RawFlags): { options: SimLmOptions; json: boolean } {
  const r = FlagsSchema.safeParse(raw);
  if (!r.success) throw new CliError(`sim-lm: ${r.error.issues.map((i) => i.message).join("; ")}`, 2);
  const f = r.data;
  const options: SimLmOptions = {
    port: f.port ?? 8787,
    host: f.host ?? "127.0.0.1",
    latencyMs: f.latency,
    jitterMs: f.jitter,
    capacity: f.capacity,
    errorRate: f.errorRate,
    faultMix: f.faultMix,
    retryAfterMs: f.retryAfter,
    slowMs: f.slow,
    seed: f.seed,
    baseAccuracy: f.baseAccuracy,
    demoBoost: f.demoBoost,
    maxBoostedDemos: f.maxBoostedDemos,
    instructionBoost: f.instructionBoost,
    instructionKeywords: f.instructionKeywords
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    reasoningBoost: f.reasoningBoost,
    apiKey: f.apiKey,
    contextWindow: f.contextWindow,
  };
  for (const k of Object.keys(options) as (keyof SimLmOptions)[]) if (options[k] === undefined) delete options[k];
  return { options, json: f.json === true };
}

export function simLmCommand(): Command {
  return new Command("sim-lm")
    .description("run a local OpenAI/Anthropic/Gemini-compatible LM simulator with deterministic task-aware answers")
    .option("--port <port>", "TCP port (0 = any free port)", "8787")
    .option("--host <host>", "interface to bind", "127.0.0.1")
    .option("--latency <ms>", "processing time per request in ms", "0")
    .option("--jitter <ms>", "extra deterministic latency in [0, ms)")
    .option("--capacity <n>", "requests processed at once; more queue FIFO (0 = unlimited)", "0")
    .option("--error-rate <r>", "probability of an injected fault per completion request", "0")
    .option("--fault-mix <kind=w,...>", `relative weights of ${FAULT_KINDS.join(", ")}`)
    .option("--retry-after <ms>", "wait that injected 429s ask for", "1000")
    .option("--slow <ms>", "extra delay of a slow-reply fault")
    .option("--seed <n>", "seed of answers and faults", "0")
    .option("--base-accuracy <p>", "probability of a right arithmetic answer without help")
    .option("--demo-boost <p>", "accuracy added per correct worked demo")
    .option("--max-boosted-demos <n>", "demos that count toward the boost")
    .option("--instruction-boost <p>", "accuracy added when the objective has a keyword")
    .option("--instruction-keywords <a,b>", "comma-separated keywords for the instruction boost")
    .option("--reasoning-boost <p>", "accuracy added when a reasoning output field is requested")
    .option("--api-key <key>", "require this API key on every request")
    .option("--context-window <tokens>", "prompt + max tokens limit")
    .option("--json", "print one JSON line with the URL and options")
    // Throw CommanderError (unknown flag: exit 2 in main) instead of exiting the process.
    .exitOverride()
    .action(async (raw: RawFlags) => {
      const { options, json } = parseSimLmFlags(raw);
      let sim;
      try {
        sim = await startSimLm(options);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "EADDRINUSE") throw new CliError(`sim-lm: port ${options.port} is in use; pick another with --port, or --port 0 for any free port`, 2);
        if (code === "EADDRNOTAVAIL") throw new CliError(`sim-lm: cannot bind ${options.host}; use a local address, e.g. --host 127.0.0.1`, 2);
        throw err;
      }
      // Handlers go in before the URL is printed: whoever reads it may signal at once.
      const stopped = new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      const { apiKey: _secret, ...shown } = options;
      if (json) {
        process.stdout.write(
          JSON.stringify({ event: "listening", url: sim.url, port: sim.port, openaiBaseUrl: `${sim.url}/v1`, options: shown }) + "\n",
        );
      } else {
        process.stdout.write(`sim-lm listening on ${sim.url} (OpenAI base URL ${sim.url}/v1; GET ${sim.url}/stats)\n`);
      }
      // Serve until SIGINT/SIGTERM, then close and let the process exit normally.
      await stopped;
      await sim.close();
      if (json) process.stdout.write(JSON.stringify({ event: "closed", stats: sim.stats() }) + "\n");
      else process.stdout.write("sim-lm stopped\n");
    });
}
