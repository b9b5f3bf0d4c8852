// MIPROv2-style optimizer: bootstrap candidate demo sets, let the LM propose candidate
// instructions per predictor, then search the (instruction, demo set) combinations with a
// TPE sampler on minibatches, periodically scoring the best-looking combination on the
// full validation set. All LM work (bootstrapping, proposals, evaluation) goes through
// the Executor.
import { DspexError } from "../errors.js";
import type { Example, Record_ } from "../example.js";
import type { Executor, Task } from "../evaluate/executor.js";
import { chooseProgress } from "../evaluate/progress.js";
import type { Module } from "../modules/module.js";
import { Predict } from "../modules/predict.js";
import { InputField, OutputField, Signature } from "../signature/signature.js";
import { candidateProgram } from "./random_search.js";
import { PyRandom } from "./pyrandom.js";
import { executorOf, markCompiled, toExamples, type CompileOptions, type Teleprompter } from "./teleprompter.js";
import { CategoricalTPE } from "./tpe.js";

/** Proposal tips, as DSPy's GroundedProposer uses them. */
export const TIPS: Record<string, string> = {
  none: "",
  creative: "Don't be afraid to be creative when creating the new instruction!",
  simple: "Keep the instruction clear and concise.",
  description: "Make sure your instruction is very informative and descriptive.",
  high_stakes: "The instruction should include a high stakes scenario in which the LM must solve the task!",
  persona: 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
};

export function proposeInstructionSignature(): Signature {
  return Signature.define(
    {
      program_description: InputField({ desc: "Summary of the program and the module being improved." }),
      task_demos: InputField({ desc: "Example inputs/outputs of the module." }),
      basic_instruction: InputField({ desc: "Basic instruction." }),
      tip: InputField({ desc: "A suggestion for how to go about generating the new instruction." }),
      proposed_instruction: OutputField({ desc: "Propose an instruction that will be used to prompt a Language Model to perform this task." }),
    },
    "Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task.",
  );
}

export interface MIPROOptions {
  metric: string;
  /** Candidates per predictor, for instructions and for demo sets (DSPy "light": 6). */
  numCandidates?: number;
  numTrials?: number;
  maxBootstrappedDemos?: number;
  maxLabeledDemos?: number;
  minibatchSize?: number;
  /** Score the best-averaged combination on the full valset every this many trials. */
  minibatchFullEvalSteps?: number;
  seed?: number;
  initTemperature?: number;
  maxErrors?: number;
}

export interface MIPROTrial {
  trial: number;
  params: number[];
  score: number;
  full: boolean;
}

export class MIPROv2 implements Teleprompter {
  readonly o: Required<Omit<MIPROOptions, "numTrials">> & { numTrials?: number };
  trials: MIPROTrial[] = [];
  instructionCandidates: string[][] = [];

  constructor(options: MIPROOptions) {
    if (!options || typeof options.metric !== "string") throw new DspexError("config", "MIPROv2 needs { metric } (a registered metric name)");
    this.o = {
      numCandidates: 6,
      maxBootstrappedDemos: 4,
      maxLabeledDemos: 4,
      minibatchSize: 35,
      minibatchFullEvalSteps: 5,
      seed: 9,
      initTemperature: 0.5,
      maxErrors: 10,
      ...options,
    };
  }

  async compile(student: Module, options: CompileOptions): Promise<Module> {
    const trainset = toExamples(options.trainset, student, options.inputKeys);
    const valset = options.valset ? toExamples(options.valset, student, options.inputKeys) : trainset;
    if (trainset.length === 0 || valset.length === 0) throw new DspexError("input", "MIPROv2 needs a non-empty trainset (and valset)");
    const executor = executorOf(options);
    const quiet = { ...options, progress: false as const };
    const n = this.o.numCandidates;
    const predictors = student.namedPredictors();

    // 1. Demo-set candidates: DSPy's seed schedule (zero-shot, labeled, unshuffled, shuffled).
    const demoSets: Record_[][][] = predictors.map(() => []);
    const bootOpts = { metric: this.o.metric, maxLabeledDemos: this.o.maxLabeledDemos, maxErrors: this.o.maxErrors };
    for (let seed = -3; seed < n - 3; seed++) {
      const program = await candidateProgram(seed, student, trainset, { ...bootOpts, maxBootstrappedDemos: this.o.maxBootstrappedDemos }, { ...quiet, executor }, this.o.seed + seed);
      program.namedPredictors().forEach(([, p], i) => demoSets[i].push(p.demos.map((d) => ({ ...d }))));
    }

    // 2. Instruction candidates: the original plus LM proposals with varied tips.
    this.instructionCandidates = await this.proposeInstructions(student, demoSets, executor, options);

    // 3. Search.
    const sizes = predictors.flatMap((_, i) => [this.instructionCandidates[i].length, demoSets[i].length]);
    const vars = sizes.length;
    const numTrials = this.o.numTrials ?? Math.ceil(Math.max(2 * vars * Math.log2(n), 1.5 * n));
    const tpe = new CategoricalTPE(sizes, { seed: this.o.seed });
    const rng = new PyRandom(this.o.seed);
    const build = (params: number[]): Module => {
      const program = student.resetCopy();
      program.namedPredictors().forEach(([, p], i) => {
        const pred = p as unknown as Predict;
        pred.signature = pred.signature.withInstructions(this.instructionCandidates[i][params[2 * i]]);
        pred.demos = demoSets[i][params[2 * i + 1]].map((d) => ({ ...d }));
      });
      return program;
    };
    const key = (params: number[]) => params.join(",");
    const minibatchScores = new Map<string, number[]>();
    let bestFull = { score: -Infinity, params: sizes.map(() => 0) };
    const fullScored = new Set<string>();
    const progress = chooseProgress(options.progress ?? "auto");
    progress.start(numTrials, "MIPRO trials");
    this.trials = [];
    try {
      // The unoptimized program is the baseline, scored on the full valset first.
      const baseline = sizes.map(() => 0);
      bestFull = { score: await this.score(build(baseline), valset, executor, options), params: baseline };
      fullScored.add(key(baseline));
      this.trials.push({ trial: 0, params: baseline, score: bestFull.score, full: true });
      for (let t = 1; t <= numTrials; t++) {
        const params = tpe.ask();
        const batch = valset.length <= this.o.minibatchSize ? valset : rng.sample(valset, this.o.minibatchSize);
        const s = await this.score(build(params), batch, executor, options);
        tpe.tell(params, s);
        minibatchScores.set(key(params), [...(minibatchScores.get(key(params)) ?? []), s]);
        this.trials.push({ trial: t, params, score: s, full: false });
        if (t % this.o.minibatchFullEvalSteps === 0 || t === numTrials) {
          // Full evaluation of the combination with the best mean minibatch score.
          let bestKey = "";
          let bestMean = -Infinity;
          for (const [k, scores] of minibatchScores) {
            const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
            if (mean > bestMean && !fullScored.has(k)) {
              bestMean = mean;
              bestKey = k;
            }
          }
          if (bestKey) {
            const p = bestKey.split(",").map(Number);
            fullScored.add(bestKey);
            const full = await this.score(build(p), valset, executor, options);
            this.trials.push({ trial: t, params: p, score: full, full: true });
            if (full > bestFull.score) bestFull = { score: full, params: p };
          }
        }
        progress.update(t, { score: bestFull.score / 100 });
      }
    } finally {
      progress.stop();
    }
    return markCompiled(build(bestFull.params));
  }

  private async proposeInstructions(student: Module, demoSets: Record_[][][], executor: Executor, options: CompileOptions): Promise<string[][]> {
    const predictors = student.namedPredictors();
    const proposer = new Predict(proposeInstructionSignature());
    const tipNames = Object.keys(TIPS);
    const tasks: Task[] = [];
    predictors.forEach(([path, p], i) => {
      const pred = p as unknown as Predict;
      for (let c = 1; c < this.o.numCandidates; c++) {
        const demos = demoSets[i][c % demoSets[i].length].slice(0, 3);
        tasks.push({
          id: `${i}:${c}`,
          program: "proposer",
          example: {
            program_description: `Module '${path}' of a ${student.constructor.name} program; its signature is ${pred.signature.toString()}.`,
            task_demos: demos.length ? demos.map((d) => JSON.stringify(d)).join("\n") : "No task demos provided.",
            basic_instruction: pred.signature.instructions,
            tip: TIPS[tipNames[(c + this.o.seed) % tipNames.length]],
          },
          inputKeys: ["program_description", "task_demos", "basic_instruction", "tip"],
          config: { rolloutId: c, temperature: this.o.initTemperature + 0.1 * c },
        });
      }
    });
    const out: string[][] = predictors.map(([, p]) => [(p as unknown as Predict).signature.instructions]);
    const found: Map<string, string> = new Map();
    for await (const r of executor.run({ programs: { proposer }, tasks }, { signal: options.signal })) {
      const text = r.ok ? String(r.prediction?.proposed_instruction ?? "").trim() : "";
      if (text) found.set(r.id, text);
    }
    // Keep task order (not completion order) and drop duplicates, so runs are reproducible.
    for (const t of tasks) {
      const [i] = t.id.split(":").map(Number);
      const text = found.get(t.id);
      if (text && !out[i].includes(text)) out[i].push(text);
    }
    return out;
  }

  /** Percentage score of a program on a set of examples. */
  private async score(program: Module, examples: Example[], executor: Executor, options: CompileOptions): Promise<number> {
    const tasks = examples.map((e, j): Task => ({ id: String(j), program: "p", example: e.toDict(), inputKeys: [...e.inputKeys!], metric: this.o.metric }));
    let sum = 0;
    let errors = 0;
    for await (const r of executor.run({ programs: { p: program }, tasks }, { signal: options.signal })) {
      if (r.ok) sum += r.score ?? 0;
      else if (++errors > this.o.maxErrors) throw new DspexError("input", `MIPRO evaluation stopped after ${errors} failed examples; first: [${r.error?.code}] ${r.error?.message}`);
    }
    return examples.length ? Math.round((sum / examples.length) * 10000) / 100 : 0;
  }
}
