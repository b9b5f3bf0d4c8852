// Built-in module kinds, registered by name so saved programs can be rebuilt from data.
import { DspexError } from "../errors.js";
import { onRegistryInit, type Registry } from "../registry.js";
import { Signature, type SignatureJSON } from "../signature/signature.js";
import { BestOfN, Refine } from "./best_of_n.js";
import { ChainOfThought } from "./chain_of_thought.js";
import { MultiChainComparison } from "./multi_chain_comparison.js";
import { Predict, type PredictOptions } from "./predict.js";
import { ReAct } from "./react.js";
import type { ModuleSpec } from "./module.js";

function needSignature(kind: string, c: Record<string, unknown>): SignatureJSON {
  const s = c.signature;
  if (typeof s === "string") return Signature.parse(s).toJSON();
  if (!s || typeof s !== "object") throw new DspexError("program_state", `${kind} config needs 'signature' (a signature string or saved signature object)`);
  return s as SignatureJSON;
}

function needModule(kind: string, c: Record<string, unknown>, r: Registry) {
  const m = c.module as ModuleSpec | undefined;
  if (!m || typeof m !== "object") throw new DspexError("program_state", `${kind} config needs 'module': the spec of the module it wraps`);
  return r.buildModule(m);
}

onRegistryInit((r) => {
  r.modules.set("Predict", (c) => new Predict(Signature.fromJSON(needSignature("Predict", c)), (c.lmConfig ?? {}) as PredictOptions));
  r.modules.set("ChainOfThought", (c) =>
    ChainOfThought.fromConfig({ signature: needSignature("ChainOfThought", c), lmConfig: c.lmConfig as PredictOptions | undefined }),
  );
  r.modules.set("MultiChainComparison", (c) => MultiChainComparison.fromConfig({ ...c, signature: needSignature("MultiChainComparison", c) }));
  r.modules.set("ReAct", (c) => ReAct.fromConfig({ ...(c as { tools: string[]; maxIters?: number }), signature: needSignature("ReAct", c) }));
  for (const [kind, Ctor] of [
    ["BestOfN", BestOfN],
    ["Refine", Refine],
  ] as const) {
    r.modules.set(kind, (c, reg) => {
      if (typeof c.rewardFn !== "string") throw new DspexError("program_state", `${kind} config needs 'rewardFn': the name of a registered reward function`);
      return new Ctor({
        module: needModule(kind, c, reg),
        N: c.N as number,
        rewardFn: c.rewardFn,
        threshold: c.threshold as number,
        failCount: c.failCount as number | undefined,
      });
    });
  }
});
