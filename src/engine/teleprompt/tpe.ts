// Tree-structured Parzen Estimator over categorical parameters (Optuna's independent
// TPE sampler, simplified to categoricals): after a few random start-up trials, split
// past trials into the best gamma fraction ("below") and the rest ("above"), model each
// parameter's choices in both groups with smoothed counts, draw candidates from the
// "below" model and keep the one maximising l(x) / g(x).
import { PyRandom } from "./pyrandom.js";

export interface TPEOptions {
  seed?: number;
  /** Random trials before the model is used (Optuna default 10). */
  startupTrials?: number;
  /** Candidates drawn from l(x) per parameter (Optuna default 24). */
  eiCandidates?: number;
  priorWeight?: number;
}

export class CategoricalTPE {
  private readonly rng: PyRandom;
  private readonly trials: { params: number[]; score: number }[] = [];
  private readonly startup: number;
  private readonly nEi: number;
  private readonly prior: number;

  /** `sizes[i]` = number of choices of parameter i. */
  constructor(
    readonly sizes: number[],
    options: TPEOptions = {},
  ) {
    this.rng = new PyRandom(options.seed ?? 0);
    this.startup = options.startupTrials ?? 10;
    this.nEi = options.eiCandidates ?? 24;
    this.prior = options.priorWeight ?? 1.0;
  }

  /** Next parameter choice to try. */
  ask(): number[] {
    if (this.trials.length < this.startup) return this.sizes.map((k) => this.rng.randbelow(k));
    const n = this.trials.length;
    const nBelow = Math.min(Math.ceil(0.1 * n), 25);
    const sorted = [...this.trials].sort((a, b) => b.score - a.score);
    const below = sorted.slice(0, nBelow);
    const above = sorted.slice(nBelow);
    return this.sizes.map((k, p) => {
      const l = this.density(below, p, k);
      const g = this.density(above, p, k);
      let best = 0;
      let bestRatio = -Infinity;
      for (let c = 0; c < this.nEi; c++) {
        const x = this.sampleFrom(l);
        const ratio = Math.log(l[x]) - Math.log(g[x]);
        if (ratio > bestRatio) {
          bestRatio = ratio;
          best = x;
        }
      }
      return best;
    });
  }

  tell(params: number[], score: number): void {
    this.trials.push({ params: [...params], score });
  }

  private density(group: { params: number[] }[], p: number, k: number): number[] {
    const w = new Array(k).fill(this.prior / k);
    for (const t of group) w[t.params[p]] += 1;
    const total = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / total);
  }

  private sampleFrom(probs: number[]): number {
    const u = this.rng.random();
    let acc = 0;
    for (let i = 0; i < probs.length; i++) {
      acc += probs[i];
      if (u < acc) return i;
    }
    return probs.length - 1;
  }
}
