// `dspex demo` (= `npm run demo`): the main job end to end on this machine: start the
// built-in sim-lm and a local cluster of three `dspex peer` processes, score a
// ChainOfThought program on arithmetic questions on the cluster, compile it there, and show
// the before/after score, usage and each peer's share of the work. Everything stops by
// itself. `--local` runs the same job in this process instead (no cluster).
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
import { startLocalCluster, type LocalCluster } from "../../cluster/local_cluster.js";
import { ClusterJobs } from "../../cluster/jobs/client.js";
import { jobProgress, shareOfWork } from "../cluster_run.js";

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

interface DemoFlags {
  train: string;
  dev: string;
  latency: string;
  concurrency: string;
  peers: string;
  local?: boolean;
  out?: string;
  json?: boolean;
}

export function demoCommand(): Command {
  return new Command("demo")
    .description("compile a sample program against the built-in sim-lm and show before/after scores")
    .option("--train <n>", "training examples", "60")
    .option("--dev <n>", "dev examples", "200")
    .option("--latency <ms>", "sim-lm latency per call", "40")
    .option("--concurrency <n>", "LM calls in flight", "32")
    .option("--out <file>", "save the compiled program here")
    .option("--peers <n>", "peers in the local cluster", "3")
    .option("--local", "run in this process instead of on a local cluster")
    .option("--json", "print a machine-readable summary")
    .action(async (flags: DemoFlags) => {
      if (!flags.local) return await clusterDemo(flags);
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

async function clusterDemo(flags: DemoFlags): Promise<void> {
  const nTrain = intFlag("train", flags.train, 60, 1);
  const nDev = intFlag("dev", flags.dev, 200, 1);
  const nPeers = intFlag("peers", flags.peers, 3, 1);
  const latency = intFlag("latency", flags.latency, 40);
  const say = (s: string) => {
    if (!flags.json) process.stderr.write(s + "\n");
  };
  const started = performance.now();
  const sim = await startSimLm({ port: 0, latencyMs: latency, capacity: 64, seed: 7 });
  say(`sim-lm listening on ${sim.url} (OpenAI, Anthropic and Gemini wire formats; ${latency} ms per call)`);
  let cluster: LocalCluster | undefined;
  let jobs: Awaited<ReturnType<typeof ClusterJobs.connect>> | undefined;
  const stopAll = async () => {
    await jobs?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await sim.close().catch(() => undefined);
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  try {
    say(`starting a local cluster of ${nPeers} dspex peers (Raft voters; each runs tasks with its own LM client, capacity 8)...`);
    cluster = await startLocalCluster({ size: nPeers, peerArgs: () => ["--lm", "openai/sim-1", "--base-url", `${sim.url}/v1`, "--lm-cache", "off", "--capacity", "8"] });
    const leader = await cluster.leader();
    for (const p of cluster.peers) say(`  peer …${p.id.slice(-6)}${p.id === leader ? "  (coordinator: Raft leader)" : ""}  ${p.addr}`);
    jobs = await ClusterJobs.connect(cluster.peers[0].addr, cluster.key);
    const trainset = arithmeticSet(nTrain, 1);
    const devset = arithmeticSet(nDev, 2);
    const program = new ChainOfThought("question -> answer");
    say(`\nProgram: ChainOfThought("question -> answer"); ${nTrain} training and ${nDev} dev questions.`);
    const bar = (label: string) => jobProgress(label, !!flags.json, true);
    const b1 = bar("Evaluating (cluster)");
    const before = await jobs.evaluate(program, devset, { metric: "exact_match", onProgress: b1.onProgress }).finally(() => b1.stop());
    say(`Before compiling: ${before.score}% on dev. Work: ${shareOfWork(before.stats)}\n`);
    const b2 = bar("Compiling (cluster)");
    const compiled = await jobs
      .compile(program, { optimizer: "random-search", optimizerOptions: { numCandidates: 4, maxBootstrappedDemos: 4, maxLabeledDemos: 4 }, trainset, metric: "exact_match", onProgress: b2.onProgress })
      .finally(() => b2.stop());
    say(`Compiled with BootstrapFewShotWithRandomSearch. Work: ${shareOfWork(compiled.stats)}\n`);
    const b3 = bar("Evaluating (cluster)");
    const after = await jobs.evaluate(compiled.json, devset, { metric: "exact_match", onProgress: b3.onProgress }).finally(() => b3.stop());
    if (flags.out) await saveProgram(compiled.program, flags.out);
    const stats = sim.stats();
    const summary = {
      peers: nPeers,
      before: before.score,
      after: after.score,
      demos: compiled.program.predictors().map((p) => p.demos.length),
      share: { before: before.stats.perPeer, compile: compiled.stats.perPeer, after: after.stats.perPeer },
      lmCalls: stats.completions,
      tokens: stats.tokens,
      wallSeconds: Math.round((performance.now() - started) / 100) / 10,
      ...(flags.out ? { saved: flags.out } : {}),
    };
    if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
    else {
      say(`After compiling:  ${after.score}% on dev (was ${before.score}%), ${summary.demos.join("/")} demos. Work: ${shareOfWork(after.stats)}`);
      say(`LM calls: ${stats.completions}, tokens: ${stats.tokens.prompt} prompt + ${stats.tokens.completion} completion, wall time ${summary.wallSeconds} s (incl. starting the peers).`);
      if (flags.out) say(`Saved the compiled program to ${flags.out} (load it with loadProgram or 'dspex program show').`);
    }
  } finally {
    process.removeListener("SIGINT", onSignal);
    await stopAll();
  }
}
