// BootstrapFewShotWithRandomSearch: DSPy's candidate schedule (seed -3 zero-shot, -2
// labeled only, -1 unshuffled bootstrap, then seeds 0.. with a shuffled trainset and a
// random demo count), each scored on the valset; the best program wins. All candidate
// evaluations run as one batch through the Executor.
import { DspexError } from "../errors.js";
import type { Example, Record_ } from "../example.js";
import type { Module } from "../modules/module.js";
import { chooseProgress } from "../evaluate/progress.js";
import { BootstrapFewShot, type BootstrapFewShotOptions } from "./bootstrap.js";
import type { Executor } from "../evaluate/executor.js";
import { LabeledFewShot } from "./labeled.js";
import { PyRandom } from "./pyrandom.js";
import { executorOf, markCompiled, toExamples, type CompileOptions, type Teleprompter } from "./teleprompter.js";

export interface RandomSearchOptions {
  metric: string;
  metricThreshold?: number;
  maxBootstrappedDemos?: number;
  maxLabeledDemos?: number;
  maxRounds?: number;
  numCandidatePrograms?: number;
  maxErrors?: number;
  /** Stop at the first candidate reaching this score (percentage); candidates then run in order. */
  stopAtScore?: number;
}

/**
 * DSPy's candidate schedule (create_n_fewshot_demo_sets): seed -3 zero-shot, -2 labeled
 * demos only, -1 bootstrapped from the trainset in order, seed >= 0 bootstrapped from a
 * trainset shuffled with Random(rngSeed) and a demo count drawn from Random(rngSeed).
 */
export async function candidateProgram(
  seed: number,
  student: Module,
  trainset: Example[],
  bootstrap: BootstrapFewShotOptions & { maxBootstrappedDemos: number; maxLabeledDemos: number },
  options: CompileOptions & { executor: Executor },
  rngSeed: number = seed,
): Promise<Module> {
  if (seed === -3) return student.resetCopy();
  if (seed === -2) return new LabeledFewShot({ k: bootstrap.maxLabeledDemos }).compileSync(student, { trainset });
  if (seed === -1) return new BootstrapFewShot(bootstrap).compile(student, { ...options, trainset });
  const shuffled: Example[] = new PyRandom(rngSeed).shuffle([...trainset]);
  const size = new PyRandom(rngSeed).randint(1, bootstrap.maxBootstrappedDemos);
  return new BootstrapFewShot({ ...bootstrap, maxBootstrappedDemos: size }).compile(student, { ...options, trainset: shuffled });
}

export interface Candidate {
  seed: number;
  score: number;
  program: Module;
}

export class BootstrapFewShotWithRandomSearch implements Teleprompter {
  readonly o: Required<Omit<RandomSearchOptions, "metricThreshold" | "stopAtScore">> & Pick<RandomSearchOptions, "metricThreshold" | "stopAtScore">;
  /** Every candidate of the last compile, best first. */
  candidates: Candidate[] = [];

  constructor(options: RandomSearchOptions) {
    if (!options || typeof options.metric !== "string") throw new DspexError("config", "BootstrapFewShotWithRandomSearch needs { metric } (a registered metric name)");
    this.o = {
      maxBootstrappedDemos: 4,
      maxLabeledDemos: 16,
      maxRounds: 1,
      numCandidatePrograms: 16,
      maxErrors: 10,
      ...options,
    };
  }

  async compile(student: Module, options: CompileOptions): Promise<Module> {
    const trainset = toExamples(options.trainset, student, options.inputKeys);
    const valset = options.valset ? toExamples(options.valset, student, options.inputKeys) : trainset;
    const executor = executorOf(options);
    const quiet = { ...options, progress: false as const };
    const bootstrapOpts = { metric: this.o.metric, metricThreshold: this.o.metricThreshold, maxLabeledDemos: this.o.maxLabeledDemos, maxRounds: this.o.maxRounds, maxErrors: this.o.maxErrors };

    const candidates: { seed: number; program: Module }[] = [];
    const progress = chooseProgress(options.progress ?? "auto");
    progress.start(this.o.numCandidatePrograms + 3, "Building candidates");
    for (let seed = -3; seed < this.o.numCandidatePrograms; seed++) {
      const program = await candidateProgram(seed, student, trainset, { ...bootstrapOpts, maxBootstrappedDemos: this.o.maxBootstrappedDemos }, { ...quiet, executor });
      candidates.push({ seed, program });
      progress.update(candidates.length, {});
    }
    progress.stop();

    const scores = await this.scoreAll(candidates, valset, executor, options);
    // Ties keep the earliest candidate, as DSPy's strict '>' does.
    let best = 0;
    scores.forEach((s, i) => {
      if (s > scores[best]) best = i;
    });
    this.candidates = candidates.map((c, i) => ({ ...c, score: scores[i] })).sort((a, b) => b.score - a.score);
    return markCompiled(candidates[best].program);
  }

  /** Scores (percentages) of all candidates on the valset, evaluated in one executor batch. */
  private async scoreAll(candidates: { seed: number; program: Module }[], valset: Example[], executor: ReturnType<typeof executorOf>, options: CompileOptions): Promise<number[]> {
    const programs: Record<string, Module> = {};
    candidates.forEach((c, i) => (programs[`c${i}`] = c.program));
    const sums = new Array(candidates.length).fill(0);
    const limit = this.o.stopAtScore;
    const metric = this.o.metric;
    function* tasks() {
      for (let c = 0; c < candidates.length; c++) {
        for (let j = 0; j < valset.length; j++) {
          yield { id: `${c}:${j}`, program: `c${c}`, example: valset[j].toDict() as Record_, inputKeys: [...valset[j].inputKeys!], metric };
        }
      }
    }
    const progress = chooseProgress(options.progress ?? "auto");
    progress.start(candidates.length * valset.length, "Scoring candidates");
    let done = 0;
    let errors = 0;
    try {
      for await (const r of executor.run({ programs, tasks: tasks() }, { signal: options.signal })) {
        const c = Number(r.id.split(":")[0]);
        if (r.ok) sums[c] += r.score ?? 0;
        else if (++errors > this.o.maxErrors * candidates.length) {
          throw new DspexError("input", `candidate scoring stopped after ${errors} failed examples; first: [${r.error?.code}] ${r.error?.message}`);
        }
        progress.update(++done, { errors });
      }
    } finally {
      progress.stop();
    }
    const scores = sums.map((s) => (valset.length ? Math.round((s / valset.length) * 10000) / 100 : 0));
    if (limit !== undefined) {
      // Honour stop_at_score: candidates after the first one reaching it are not chosen.
      const stop = scores.findIndex((s) => s >= limit);
      if (stop >= 0) return scores.map((s, i) => (i <= stop ? s : -Infinity));
    }
    return scores;
  }
}
