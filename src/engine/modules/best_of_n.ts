// BestOfN and Refine: run a module up to N times with different rollout ids at
// temperature 1.0 and keep the first prediction whose reward reaches the threshold
// (else the best one). Refine also asks the LM for per-predictor advice between attempts.
import { DspexError } from "../errors.js";
import type { Prediction, Record_ } from "../example.js";
import { getRegistry, type RewardFn } from "../registry.js";
import { settings, withSettings, type TraceEntry } from "../settings.js";
import { InputField, OutputField, Signature } from "../signature/signature.js";
import { Module, type ModuleSpec } from "./module.js";
import { Predict } from "./predict.js";
import { pyJsonDumps } from "../python.js";

export interface BestOfNOptions {
  /** Module to run (any module; its spec is saved with this one). */
  module: Module;
  N: number;
  /** A function, or the name of a reward registered with registerReward() (needed to save). */
  rewardFn: RewardFn | string;
  threshold: number;
  /** Attempts allowed to throw before giving up (default N). */
  failCount?: number;
}

export class BestOfN extends Module {
  module: Module;
  readonly N: number;
  readonly threshold: number;
  failCount: number;
  private readonly _reward: RewardFn;
  private readonly _rewardName: string | undefined;

  constructor(options: BestOfNOptions) {
    super();
    if (!(options.module instanceof Module)) throw new DspexError("input", `${this.constructor.name} needs { module } to be a Module`);
    if (!Number.isInteger(options.N) || options.N < 1) throw new DspexError("input", `${this.constructor.name} needs N >= 1 (an integer), got ${options.N}`);
    if (typeof options.threshold !== "number" || Number.isNaN(options.threshold)) {
      throw new DspexError("input", `${this.constructor.name} needs a numeric threshold, got ${options.threshold}`);
    }
    this.module = options.module;
    this.N = options.N;
    this.threshold = options.threshold;
    this.failCount = options.failCount ?? options.N;
    if (typeof options.rewardFn === "string") {
      this._rewardName = options.rewardFn;
      this._reward = getRegistry().rewards.get(options.rewardFn);
    } else if (typeof options.rewardFn === "function") {
      this._reward = options.rewardFn;
      this._rewardName = undefined;
    } else {
      throw new DspexError("input", `${this.constructor.name} needs rewardFn: a function or the name of a registered reward`);
    }
  }

  protected get rewardDescription(): string {
    return this._rewardName ?? this._reward.toString();
  }

  protected reward(inputs: Record_, pred: Prediction): Promise<number> {
    return Promise.resolve(this._reward(inputs, pred));
  }

  override async forward(inputs: Record_): Promise<Prediction> {
    const ctx = settings();
    const start = ctx.lmOverrides?.rolloutId ?? 0;
    let best: { pred: Prediction; trace: TraceEntry[]; reward: number } | undefined;
    let failuresLeft = this.failCount;
    let lastError: unknown;
    for (let idx = 0; idx < this.N; idx++) {
      const rolloutId = start + idx;
      try {
        const trace: TraceEntry[] = [];
        const pred = await withSettings({ trace, lmOverrides: { ...ctx.lmOverrides, rolloutId, temperature: 1.0 }, ...this.attemptSettings() }, () =>
          this.module.call(inputs),
        );
        const reward = await this.reward(inputs, pred);
        if (typeof reward !== "number" || Number.isNaN(reward)) {
          throw new DspexError("input", `the reward function returned ${String(reward)}; it must return a number`);
        }
        if (!best || reward > best.reward) best = { pred, trace, reward };
        if (reward >= this.threshold) break;
        await this.afterAttempt(inputs, pred, trace, reward, idx);
      } catch (e) {
        lastError = e;
        if (failuresLeft <= 0) throw e;
        failuresLeft--;
      }
    }
    if (!best) {
      throw new DspexError("input", `${this.constructor.name}: all ${this.N} attempts failed; last error: ${(lastError as Error)?.message ?? lastError}`);
    }
    ctx.trace?.push(...best.trace);
    return best.pred;
  }

  /** Extra settings for each attempt (Refine injects hints). */
  protected attemptSettings(): { hints?: Map<object, string> } {
    return {};
  }

  protected async afterAttempt(_inputs: Record_, _pred: Prediction, _trace: TraceEntry[], _reward: number, _idx: number): Promise<void> {}

  override toSpec(): ModuleSpec {
    if (!this._rewardName) {
      throw new DspexError(
        "registry_unknown",
        `${this.constructor.name} with an inline reward function cannot be saved as data; register it with registerReward(name, fn) and pass the name`,
      );
    }
    return {
      kind: this.constructor.name,
      config: { module: this.module.toSpec(), N: this.N, rewardFn: this._rewardName, threshold: this.threshold, failCount: this.failCount },
    };
  }
}

/** DSPy's OfferFeedback signature (instructions and fields as in DSPy 3). */
export function offerFeedbackSignature(): Signature {
  return Signature.define(
    {
      program_code: InputField({ desc: "The code of the program that we are analyzing" }),
      modules_defn: InputField({ desc: "The definition of each module in the program, including its I/O" }),
      program_inputs: InputField({ desc: "The inputs to the program that we are analyzing" }),
      program_trajectory: InputField({ desc: "The trajectory of the program's execution, showing each module's I/O" }),
      program_outputs: InputField({ desc: "The outputs of the program that we are analyzing" }),
      reward_code: InputField({ desc: "The code of the reward function that we are analyzing" }),
      target_threshold: InputField({ type: "float", desc: "The target threshold for the reward function" }),
      reward_value: InputField({ type: "float", desc: "The reward value assigned to the program's outputs" }),
      module_names: InputField({ type: "list[str]", desc: "The names of the modules in the program, for which we seek advice" }),
      discussion: OutputField({ desc: "Discussing blame of where each module went wrong, if it did" }),
      advice: OutputField({
        type: "dict[str, str]",
        desc:
          "For each module, describe very concretely, in this order: the specific scenarios in which it has made " +
          "mistakes in the past and what each mistake was, followed by what it should do differently in that kind of" +
          "scenario in the future. If the module is not to blame, write N/A.",
      }),
    },
    [
      "In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if",
      "any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if",
      "it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.",
      "The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you",
      "to avoid the same mistake on the same or similar inputs.",
    ].join("\n"),
  );
}

export class Refine extends BestOfN {
  /** Advice per predictor, produced after a failed attempt and shown as `hint_` on the next. */
  private _hints = new Map<object, string>();
  private readonly _feedback = new Predict(offerFeedbackSignature());

  protected override attemptSettings(): { hints?: Map<object, string> } {
    return this._hints.size ? { hints: new Map(this._hints) } : {};
  }

  override async forward(inputs: Record_): Promise<Prediction> {
    this._hints = new Map();
    return super.forward(inputs);
  }

  protected override async afterAttempt(inputs: Record_, pred: Prediction, trace: TraceEntry[], reward: number, idx: number): Promise<void> {
    if (idx === this.N - 1) return;
    const named = this.module.namedPredictors();
    const nameOf = new Map<object, string>(named.map(([n, p]) => [p, n]));
    let spec = "";
    try {
      spec = pyJsonDumps(this.module.toSpec(), { indent: 2 });
    } catch {
      spec = this.module.constructor.name;
    }
    const modulesDefn = named.map(([n, p]) => `${n}: ${(p as unknown as Predict).signature.toString()}`).join("\n");
    const trajectory = trace.map((t) => ({
      module_name: nameOf.get(t.predictor) ?? "unknown",
      inputs: t.inputs,
      outputs: t.prediction.toDict(),
    }));
    try {
      const fb = await this._feedback.call({
        program_code: spec,
        modules_defn: modulesDefn,
        program_inputs: pyJsonDumps(inputs, { ensureAscii: false }),
        program_trajectory: pyJsonDumps(trajectory, { ensureAscii: false }),
        program_outputs: pyJsonDumps(pred.toDict(), { ensureAscii: false }),
        reward_code: this.rewardDescription,
        target_threshold: this.threshold,
        reward_value: reward,
        module_names: named.map(([n]) => n),
      });
      const advice = (fb.get("advice") ?? {}) as Record<string, string>;
      this._hints = new Map();
      for (const [n, p] of named) if (typeof advice[n] === "string") this._hints.set(p, advice[n]);
    } catch {
      // Feedback is best effort: without advice the next attempt simply samples again.
    }
  }
}
