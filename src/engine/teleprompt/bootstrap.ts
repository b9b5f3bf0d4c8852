// BootstrapFewShot: run a teacher over the trainset, keep the traces of examples the
// metric accepts as demos. Examples run concurrently through the Executor, yet the
// demos are the ones a sequential pass in trainset order picks: the first K successes
// by index (later results are ignored), so results do not depend on concurrency.
import { DspexError } from "../errors.js";
import type { Example, Record_ } from "../example.js";
import type { Task, TaskResult, TraceRecord } from "../evaluate/executor.js";
import { chooseProgress } from "../evaluate/progress.js";
import type { Module } from "../modules/module.js";
import { LabeledFewShot } from "./labeled.js";
import { PyRandom } from "./pyrandom.js";
import { executorOf, isCompiled, markCompiled, toExamples, type CompileOptions, type Teleprompter } from "./teleprompter.js";

export interface BootstrapFewShotOptions {
  /** Registered metric name. Without one, every trace that runs is accepted. */
  metric?: string;
  metricThreshold?: number;
  maxBootstrappedDemos?: number;
  maxLabeledDemos?: number;
  maxRounds?: number;
  /** Failed examples tolerated before giving up (DSPy's max_errors; default 10). */
  maxErrors?: number;
}

export interface BootstrapReport {
  /** Trainset indices whose traces became demos, in order. */
  bootstrapped: number[];
  attempts: number;
  errors: number;
}

export class BootstrapFewShot implements Teleprompter {
  readonly metric: string | undefined;
  readonly metricThreshold: number | undefined;
  readonly maxBootstrappedDemos: number;
  readonly maxLabeledDemos: number;
  readonly maxRounds: number;
  readonly maxErrors: number;
  /** Details of the last compile(). */
  report: BootstrapReport | undefined;

  constructor(options: BootstrapFewShotOptions = {}) {
    this.metric = options.metric;
    this.metricThreshold = options.metricThreshold;
    this.maxBootstrappedDemos = options.maxBootstrappedDemos ?? 4;
    this.maxLabeledDemos = options.maxLabeledDemos ?? 16;
    this.maxRounds = options.maxRounds ?? 1;
    this.maxErrors = options.maxErrors ?? 10;
    for (const [k, v] of Object.entries({ maxBootstrappedDemos: this.maxBootstrappedDemos, maxLabeledDemos: this.maxLabeledDemos, maxRounds: this.maxRounds })) {
      if (!Number.isInteger(v) || v < 0 || (k === "maxRounds" && v < 1)) throw new DspexError("config", `${k} must be a non-negative integer${k === "maxRounds" ? " >= 1" : ""}, got ${v}`);
    }
  }

  async compile(student: Module, options: CompileOptions): Promise<Module> {
    if (isCompiled(student)) throw new DspexError("config", "the student is already compiled; pass an uncompiled program (or its resetCopy())");
    const trainset = toExamples(options.trainset, student, options.inputKeys);
    const program = student.resetCopy();
    let teacher = (options.teacher ?? student).clone();
    if (this.maxLabeledDemos && !isCompiled(teacher)) {
      teacher = new LabeledFewShot({ k: this.maxLabeledDemos }).compileSync(teacher.resetCopy(), { trainset });
    }
    const traces = await this.bootstrap(teacher, trainset, options);
    this.train(program, trainset, traces);
    return markCompiled(program);
  }

  /** Runs the teacher; returns, per predictor path, demos in trainset order. */
  private async bootstrap(teacher: Module, trainset: Example[], options: CompileOptions): Promise<{ byPath: Map<string, Record_[]>; bootstrapped: Set<number> }> {
    const K = this.maxBootstrappedDemos;
    const n = trainset.length;
    const executor = executorOf(options);
    const progress = chooseProgress(options.progress ?? "auto");
    // Per example: undefined = not started; "running"; or the outcome of its rounds.
    type Outcome = { status: "running"; round: number } | { status: "retry"; round: number } | { status: "ok"; trace: TraceRecord[] } | { status: "failed"; error?: TaskResult["error"] };
    const state: (Outcome | undefined)[] = new Array(n);
    let nextNew = 0;
    let attempts = 0;
    let inFlight = 0;
    let changed: (() => void) | undefined;

    // A sequential pass stops after the K-th success: examples past it are never needed.
    const cutoff = (): number => {
      let successes = 0;
      for (let i = 0; i < n; i++) {
        const s = state[i];
        if (!s || s.status === "running" || s.status === "retry") return -1;
        if (s.status === "ok" && ++successes >= K) return i + 1;
      }
      return n;
    };
    const needed = (i: number): boolean => {
      let successes = 0;
      for (let j = 0; j < i; j++) if (state[j]?.status === "ok") successes++;
      return successes < K;
    };
    const task = (i: number, round: number): Task => ({
      id: `${i}:${round}`,
      program: "teacher",
      example: trainset[i].toDict(),
      inputKeys: [...trainset[i].inputKeys!],
      ...(this.metric ? { metric: this.metric } : {}),
      // Later rounds sample afresh: a new rollout id at temperature 1 bypasses the cache.
      ...(round > 0 ? { config: { rolloutId: round, temperature: 1.0 } } : {}),
      trace: true,
      excludeExampleFromDemos: true,
    });
    const self = this;
    async function* tasks(): AsyncIterable<Task> {
      while (K > 0 && cutoff() < 0) {
        let next: Task | undefined;
        for (let i = 0; i < nextNew && !next; i++) {
          const s = state[i];
          if (s?.status === "retry" && needed(i)) {
            state[i] = { status: "running", round: s.round };
            next = task(i, s.round);
          }
        }
        if (!next && nextNew < n && needed(nextNew)) {
          state[nextNew] = { status: "running", round: 0 };
          next = task(nextNew++, 0);
        }
        if (next) {
          attempts++;
          inFlight++;
          yield next;
          continue;
        }
        if (inFlight === 0) return;
        await new Promise<void>((res) => (changed = res));
      }
    }

    let errors = 0;
    let firstError: TaskResult["error"];
    progress.start(n, "Bootstrapping");
    try {
      for await (const r of executor.run({ programs: { teacher }, tasks: tasks() }, { signal: options.signal })) {
        inFlight--;
        const [i, round] = r.id.split(":").map(Number);
        const success = r.ok && (this.metric === undefined || (this.metricThreshold !== undefined ? (r.score ?? 0) >= this.metricThreshold : (r.score ?? 0) !== 0));
        if (!r.ok) {
          errors++;
          firstError ??= r.error;
        }
        if (success) state[i] = { status: "ok", trace: r.trace ?? [] };
        else if (round + 1 < this.maxRounds) state[i] = { status: "retry", round: round + 1 };
        else state[i] = { status: "failed", error: r.error };
        const c = cutoff();
        const countedErrors = state.slice(0, c < 0 ? nextNew : c).filter((s) => s?.status === "failed" && s.error).length;
        if (countedErrors >= self.maxErrors) {
          throw new DspexError("input", `bootstrapping stopped: ${countedErrors} examples failed (maxErrors ${self.maxErrors}); first error: [${firstError?.code}] ${firstError?.message}`);
        }
        progress.update(state.filter((s) => s && s.status !== "running" && s.status !== "retry").length, { errors });
        const wake = changed;
        changed = undefined;
        wake?.();
      }
    } finally {
      progress.stop();
    }

    const end = K > 0 ? cutoff() : 0;
    const bootstrapped = new Set<number>();
    const byPath = new Map<string, Record_[]>(teacher.namedPredictors().map(([p]) => [p, []]));
    for (let i = 0; i < Math.max(0, end); i++) {
      const s = state[i];
      if (s?.status !== "ok") continue;
      bootstrapped.add(i);
      const perPath = new Map<string, Record_[]>();
      for (const step of s.trace) {
        if (!byPath.has(step.predictor)) continue;
        const demo = { augmented: true, ...step.inputs, ...step.outputs };
        perPath.set(step.predictor, [...(perPath.get(step.predictor) ?? []), demo]);
      }
      for (const [path, demos] of perPath) {
        let chosen = demos;
        if (demos.length > 1) {
          // Several calls of one predictor: keep one, 50/50 the last or one of the others.
          const rng = new PyRandom(hash32(JSON.stringify(demos)));
          chosen = [rng.random() < 0.5 ? rng.choice(demos.slice(0, -1)) : demos[demos.length - 1]];
        }
        byPath.get(path)!.push(...chosen);
      }
    }
    this.report = { bootstrapped: [...bootstrapped], attempts, errors };
    return { byPath, bootstrapped };
  }

  /** DSPy's _train: bootstrapped demos first, then labeled examples not bootstrapped. */
  private train(program: Module, trainset: Example[], traces: { byPath: Map<string, Record_[]>; bootstrapped: Set<number> }): void {
    let raw = trainset.filter((_, i) => !traces.bootstrapped.has(i));
    new PyRandom(0).shuffle(raw);
    const rng = new PyRandom(0);
    for (const [path, p] of program.namedPredictors()) {
      const augmented = (traces.byPath.get(path) ?? []).slice(0, this.maxBootstrappedDemos);
      const size = Math.max(0, Math.min(this.maxLabeledDemos - augmented.length, raw.length));
      raw = rng.sample(raw, size);
      p.demos = [...augmented, ...raw.map((e) => e.toDict())];
    }
  }
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
