// ChainOfThought: Predict with a `reasoning` output field placed before the others.
import type { Prediction, Record_ } from "../example.js";
import { OutputField, Signature, type FieldOptions, type SignatureJSON } from "../signature/signature.js";
import { Module, type ModuleSpec } from "./module.js";
import { Predict, type PredictOptions } from "./predict.js";

export interface ChainOfThoughtOptions extends PredictOptions {
  /** Replace the reasoning field's description/prefix/type. */
  rationaleField?: FieldOptions;
}

export class ChainOfThought extends Module {
  predict: Predict;
  /** The signature as given, without the reasoning field (what the spec records). */
  private readonly _baseSignature: Signature;

  constructor(signature: string | Signature, options: ChainOfThoughtOptions = {}) {
    super();
    const { rationaleField, ...predictOptions } = options;
    this._baseSignature = Signature.from(signature);
    const extended = this._baseSignature.prepend(
      "reasoning",
      OutputField({
        prefix: "Reasoning: Let's think step by step in order to",
        desc: "${reasoning}",
        ...rationaleField,
      }),
    );
    this.predict = new Predict(extended, predictOptions);
  }

  override forward(inputs: Record_): Promise<Prediction> {
    return this.predict.call(inputs);
  }

  override toSpec(): ModuleSpec {
    return {
      kind: "ChainOfThought",
      config: {
        signature: this._baseSignature.toJSON(),
        ...(Object.keys(this.predict.config).length ? { lmConfig: this.predict.config } : {}),
      },
    };
  }

  static fromConfig(config: { signature: SignatureJSON; lmConfig?: PredictOptions }): ChainOfThought {
    return new ChainOfThought(Signature.fromJSON(config.signature), config.lmConfig ?? {});
  }
}
