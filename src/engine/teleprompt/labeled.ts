// LabeledFewShot: every predictor gets k labeled examples as demos (sampled with
// Python's Random(0), so the same k examples DSPy picks).
import type { Module } from "../modules/module.js";
import { PyRandom } from "./pyrandom.js";
import { toExamples, type CompileOptions, type Teleprompter } from "./teleprompter.js";

export class LabeledFewShot implements Teleprompter {
  constructor(readonly options: { k?: number } = {}) {}

  async compile(student: Module, options: CompileOptions & { sample?: boolean }): Promise<Module> {
    return this.compileSync(student, options);
  }

  compileSync(student: Module, options: CompileOptions & { sample?: boolean }): Module {
    const k = this.options.k ?? 16;
    const program = student.resetCopy();
    const trainset = toExamples(options.trainset, student, options.inputKeys);
    if (trainset.length === 0) return program;
    const rng = new PyRandom(0);
    for (const p of program.predictors()) {
      const n = Math.min(k, trainset.length);
      const chosen = options.sample === false ? trainset.slice(0, n) : rng.sample(trainset, n);
      p.demos = chosen.map((e) => e.toDict());
    }
    return program;
  }
}
