// Program files saved by DSPy itself load into DSPEx programs of the same shape and
// produce the prompts DSPy would send (fixtures: test/fixtures/dspy/saved, see README there).
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ChainOfThought, ChatAdapter, Module, Predict, ReAct, Signature, loadProgram, type Record_ } from "../../src/index.js";

const saved = (f: string) => join(__dirname, "../fixtures/dspy/saved", f);

describe("files saved by DSPy", () => {
  it("DSPy's own cross-version fixture: ReAct (dspy 3.0.0)", async () => {
    const react = new ReAct("question -> answer", []);
    await react.load(saved("dspy_tests_react_saved_program.json"));
    expect(react.react.signature.instructions).toContain("Imagine you are a detective racing against time to solve a high-profile");
    expect(react.extract.predict.signature.instructions).toContain("Given the very verbose fields `question`");
    expect(react.react.demos).toHaveLength(2);
    expect(react.extract.predict.demos).toHaveLength(2);
    expect(react.extract.predict.signature.fields[2].prefix).toBe("Reasoning: Let's think step by step in order to");
    expect(react.react.lm).toBeUndefined();
    // The loaded program formats: instructions from the file, demos with raw keys ignored.
    const msgs = new ChatAdapter().format(react.react.signature, react.react.demos, { question: "Q?", trajectory: "" });
    expect(msgs[0].content).toContain("In adhering to this structure, your objective is: \n        Imagine you are a detective");
    // Demo #2 is a raw trainset example (question, answer) with none of react's outputs:
    // DSPy drops such demos, and so do we.
    expect(msgs.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
  });

  it("a top-level ChainOfThought whose signature already has `reasoning` (dspy 3.0.3)", async () => {
    const sig = Signature.parse(
      "claim: str, quote: str -> relationship: Literal['SUPPORTS', 'RELATED', 'NEUTRAL', 'CONTRADICTS'], reasoning: str, confidence: float",
      { descriptions: { reasoning: "Brief explanation of the relationship" } },
    );
    const cot = new ChainOfThought(sig);
    // DSPy moves the user's reasoning field to the front and keeps its definition.
    expect(cot.predict.signature.fields.map((f) => f.name)).toEqual(["claim", "quote", "reasoning", "relationship", "confidence"]);
    expect(cot.predict.signature.field("reasoning")!.desc).toBe("Brief explanation of the relationship");
    await cot.load(saved("entailment_validator_v1.json"));
    expect(cot.predict.demos).toHaveLength(4);
    expect(cot.predict.signature.fields[2].prefix).toBe("Reasoning:");
    expect(cot.predict.signature.instructions.startsWith("Validate whether a quote supports a claim.")).toBe(true);
  });

  it("a custom module with one ChainOfThought at `predictor` (dspy 3.0.3)", async () => {
    class AdClassifier extends Module {
      predictor = new ChainOfThought("claim_text: str -> is_advertisement: str, confidence: str");
      forward(i: Record_) {
        return this.predictor.call(i);
      }
    }
    const prog = await new AdClassifier().load(saved("ad_classifier_v1.json"));
    expect(prog.predictor.predict.demos).toHaveLength(4);
    expect(prog.predictor.predict.demos[0].augmented).toBe(true);
    expect(prog.predictor.predict.signature.fields[1].prefix).toBe("Reasoning: Let's think step by step in order to");
    expect(prog.predictor.predict.signature.field("claim_text")!.desc).toBe("The claim to classify");
  });

  it("a flat top-level Predict with an LM entry (synthetic, DSPy layout)", async () => {
    const p = new Predict("question: str, context: list[str] -> answer: str, confidence: float");
    await p.load(saved("synthetic_predict_flat.json"));
    expect(p.demos).toHaveLength(2);
    expect(p.signature.instructions).toBe("Answer the question using the context.\nCite sources as title/section.");
    expect(p.signature.field("context")!.desc).toBe("Retrieved passages");
    // The `lm` entry rebuilds a client (keys come from the environment, never the file)
    // and saves back with the same settings.
    expect(p.lm?.model).toBe("openai/gpt-4o-mini");
    expect(p.dumpState().lm).toMatchObject({ model: "openai/gpt-4o-mini", temperature: 0.7, max_tokens: 1000 });
    await expect(loadProgram(saved("synthetic_predict_flat.json"))).rejects.toThrow(/no 'dspex' section/);
  });

  it("a file from a different program is refused with a clear message", async () => {
    const wrong = new ChainOfThought("a -> b");
    await expect(wrong.load(saved("ad_classifier_v1.json"))).rejects.toThrow(/no entry for predictor 'predict' \(it has: predictor\.predict\)/);
  });
});
