// MultiChainComparison: given M completed reasoning attempts, ask for a holistic,
// corrected answer (DSPy's prompt fields and prefixes).
import { DspexError } from "../errors.js";
import type { Prediction, Record_ } from "../example.js";
import { InputField, OutputField, Signature, type SignatureJSON } from "../signature/signature.js";
import { Module, type ModuleSpec } from "./module.js";
import { Predict } from "./predict.js";
import { pyStr, pyStrip } from "../python.js";

export interface MultiChainComparisonOptions {
  M?: number;
  temperature?: number;
  reasoningAttr?: string;
}

export class MultiChainComparison extends Module {
  predict: Predict;
  readonly M: number;
  readonly lastKey: string;
  readonly reasoningAttr: string;
  private readonly _baseSignature: Signature;
  private readonly _temperature: number;

  constructor(signature: string | Signature, options: MultiChainComparisonOptions = {}) {
    super();
    const base = Signature.from(signature);
    this._baseSignature = base;
    this.M = options.M ?? 3;
    this._temperature = options.temperature ?? 0.7;
    this.reasoningAttr = options.reasoningAttr ?? "reasoning";
    const outs = base.outputNames;
    if (outs.length === 0) throw new DspexError("input", "MultiChainComparison needs a signature with at least one output field");
    this.lastKey = outs[outs.length - 1];
    let sig = base;
    for (let i = 1; i <= this.M; i++) {
      sig = sig.append(`reasoning_attempt_${i}`, InputField({ prefix: `Student Attempt #${i}:`, desc: "${reasoning attempt}" }));
    }
    sig = sig.prepend(
      "rationale",
      OutputField({ prefix: "Accurate Reasoning: Thank you everyone. Let's now holistically", desc: "${corrected reasoning}" }),
    );
    this.predict = new Predict(sig, { temperature: this._temperature });
  }

  /** `inputs.completions`: the M attempts (records or predictions) to compare. */
  override forward(inputs: Record_): Promise<Prediction> {
    const { completions, ...rest } = inputs as Record_ & { completions?: unknown };
    if (!Array.isArray(completions) || completions.length !== this.M) {
      throw new DspexError(
        "input",
        `MultiChainComparison expects 'completions' with exactly M=${this.M} attempts, got ${Array.isArray(completions) ? completions.length : typeof completions}`,
      );
    }
    const attempts = completions.map((c) => {
      const rec = (c && typeof (c as { toDict?: unknown }).toDict === "function" ? (c as { toDict(): Record_ }).toDict() : c) as Record_;
      const rationale = firstLine(pyStr(rec[this.reasoningAttr] ?? ""));
      const answer = firstLine(pyStr(rec[this.lastKey]));
      return `«I'm trying to ${rationale} I'm not sure but my prediction is ${answer}»`;
    });
    const callInputs: Record_ = {};
    attempts.forEach((a, i) => (callInputs[`reasoning_attempt_${i + 1}`] = a));
    return this.predict.call({ ...callInputs, ...rest });
  }

  override toSpec(): ModuleSpec {
    return {
      kind: "MultiChainComparison",
      config: { signature: this._baseSignature.toJSON(), M: this.M, temperature: this._temperature, reasoningAttr: this.reasoningAttr },
    };
  }

  static fromConfig(c: { signature: SignatureJSON; M?: number; temperature?: number; reasoningAttr?: string }): MultiChainComparison {
    return new MultiChainComparison(Signature.fromJSON(c.signature), c);
  }
}

function firstLine(s: string): string {
  return pyStrip(pyStrip(s).split("\n")[0]);
}
