import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  BestOfN,
  ChainOfThought,
  ChatAdapter,
  Module,
  Predict,
  ProgramStateError,
  ReAct,
  loadProgram,
  programFromJSON,
  programToJSON,
  registerModule,
  registerReward,
  registerTool,
  getRegistry,
  type Record_,
  type ModuleSpec,
} from "../../src/index.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";

afterEach(() => resetSettingsForTests());
const dir = mkdtempSync(join(tmpdir(), "dspex-state-"));

describe("save/load round trip", () => {
  it("keeps demos, instructions and descriptions, and rebuilds from the file alone", async () => {
    const cot = new ChainOfThought("question -> answer: int");
    cot.predict.demos = [{ question: "1+1?", reasoning: "add", answer: 2, augmented: true }];
    cot.predict.signature = cot.predict.signature.withInstructions("Solve carefully.").withUpdatedField("answer", { desc: "a number" });
    const path = join(dir, "cot.json");
    await cot.save(path);

    const json = JSON.parse(readFileSync(path, "utf8"));
    expect(Object.keys(json)).toEqual(["predict", "metadata", "dspex"]);
    expect(json.predict).toEqual({
      traces: [],
      train: [],
      demos: [{ question: "1+1?", reasoning: "add", answer: 2, augmented: true }],
      signature: {
        instructions: "Solve carefully.",
        fields: [
          { prefix: "Question:", description: "${question}" },
          { prefix: "Reasoning: Let's think step by step in order to", description: "${reasoning}" },
          { prefix: "Answer:", description: "a number" },
        ],
      },
      lm: null,
    });
    expect(json.metadata.dependency_versions).toEqual({});
    expect(json.dspex.program.kind).toBe("ChainOfThought");

    const rebuilt = (await loadProgram(path)) as ChainOfThought;
    expect(rebuilt).toBeInstanceOf(ChainOfThought);
    const adapter = new ChatAdapter();
    const inputs = { question: "2+2?" };
    expect(adapter.format(rebuilt.predict.signature, rebuilt.predict.demos, inputs)).toEqual(
      adapter.format(cot.predict.signature, cot.predict.demos, inputs),
    );

    const into = await new ChainOfThought("question -> answer: int").load(path);
    expect(into.predict.demos).toEqual(cot.predict.demos);
  });

  it("a lone Predict saves flat, like DSPy", () => {
    const json = programToJSON(new Predict("q -> a"));
    expect(Object.keys(json)).toEqual(["traces", "train", "demos", "signature", "lm", "metadata", "dspex"]);
    const back = programFromJSON(JSON.parse(JSON.stringify(json)));
    expect(back).toBeInstanceOf(Predict);
  });

  it("plugin modules rebuild by kind; BestOfN/ReAct save registered names", () => {
    class TwoStep extends Module {
      first = new Predict("q -> draft");
      second = new ChainOfThought("q, draft -> a");
      async forward(i: Record_) {
        const d = await this.first.call(i);
        return this.second.call({ ...i, draft: d.get("draft") });
      }
      override toSpec(): ModuleSpec {
        return { kind: "TwoStep", config: {} };
      }
    }
    registerModule("TwoStep", () => new TwoStep(), { replace: true });
    registerReward("always1", () => 1, { replace: true });
    registerTool({ name: "lookup", args: { k: { type: "string" } }, fn: () => "v" }, { replace: true });

    const prog = new TwoStep();
    prog.second.predict.demos = [{ q: "a", draft: "b", reasoning: "c", a: "d" }];
    const back = programFromJSON(JSON.parse(JSON.stringify(programToJSON(prog)))) as TwoStep;
    expect(back.second.predict.demos).toEqual(prog.second.predict.demos);

    const best = new BestOfN({ module: new Predict("q -> a"), N: 2, rewardFn: "always1", threshold: 1 });
    expect(programFromJSON(JSON.parse(JSON.stringify(programToJSON(best))))).toBeInstanceOf(BestOfN);
    const agent = new ReAct("q -> a", ["lookup"]);
    const agentBack = programFromJSON(JSON.parse(JSON.stringify(programToJSON(agent)))) as ReAct;
    expect(agentBack.namedPredictors().map(([n]) => n)).toEqual(["react", "extract.predict"]);
  });

  it("inline reward functions save without a dspex section (DSPy part still written)", () => {
    const best = new BestOfN({ module: new Predict("q -> a"), N: 2, rewardFn: () => 1, threshold: 1 });
    const json = programToJSON(best);
    expect(json.dspex).toBeUndefined();
    expect(json["module"]).toBeDefined();
    expect(() => programFromJSON(json)).toThrow(/no 'dspex' section/);
  });
});

describe("loading DSPy-format files", () => {
  it("loads a file saved by DSPy (no dspex section) into a program of the same shape", async () => {
    // The shape DSPy 3 writes for `class QA(dspy.Module): self.generate = dspy.ChainOfThought("question -> answer")`.
    const dspyFile = {
      "generate.predict": {
        traces: [],
        train: [],
        demos: [
          { augmented: true, question: "What is 1+1?", reasoning: "Add one and one.", answer: "2" },
          { question: "Capital of France?", answer: "Paris" },
        ],
        signature: {
          instructions: "Answer questions with short factoid answers.",
          fields: [
            { prefix: "Question:", description: "${question}" },
            { prefix: "Reasoning: Let's think step by step in order to", description: "${reasoning}" },
            { prefix: "Answer:", description: "often between 1 and 5 words" },
          ],
        },
        lm: null,
      },
      metadata: { dependency_versions: { python: "3.11", dspy: "3.0.3", cloudpickle: "3.1" } },
    };
    const path = join(dir, "dspy.json");
    writeFileSync(path, JSON.stringify(dspyFile, null, 2));
    class QA extends Module {
      generate = new ChainOfThought("question -> answer");
      forward(i: Record_) {
        return this.generate.call(i);
      }
    }
    const qa = await new QA().load(path);
    const msgs = new ChatAdapter().format(qa.generate.predict.signature, qa.generate.predict.demos, { question: "2+3?" });
    expect(msgs[0].content).toContain("2. `answer` (str): often between 1 and 5 words");
    expect(msgs[0].content).toContain("your objective is: \n        Answer questions with short factoid answers.");
    expect(msgs[1].content).toBe("This is an example of the task, though some input or output fields are not supplied.\n\n[[ ## question ## ]]\nCapital of France?");
    expect(msgs[3].content).toBe("[[ ## question ## ]]\nWhat is 1+1?");
    await expect(loadProgram(path)).rejects.toThrow(/no 'dspex' section/);
  });
});

describe("bad program files give typed errors naming the file and the problem", () => {
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  it.each([
    ["missing.json", null, /file not found/],
    ["corrupt.json", '{"predict": {', /not valid JSON/],
    ["array.json", "[1,2]", /expected a JSON object keyed by predictor path/],
    ["badspec.json", JSON.stringify({ dspex: { version: 1, program: { kind: 5 } } }), /'dspex' section is malformed at dspex\.program\.kind/],
    ["unknownkind.json", JSON.stringify({ dspex: { version: 1, program: { kind: "Nope", config: {} } } }), /unknown module kind 'Nope'; known: .*ChainOfThought/],
    ["future.json", JSON.stringify({ dspex: { version: 99, program: { kind: "Predict", config: {} } } }), /format version 99/],
    [
      "wrongshape.json",
      JSON.stringify({ dspex: { version: 1, program: { kind: "ChainOfThought", config: { signature: "q -> a" } } }, other: {} }),
      /no entry for predictor 'predict'/,
    ],
    [
      "fieldcount.json",
      JSON.stringify({
        predict: { demos: [], signature: { instructions: "x", fields: [{ prefix: "a", description: "b" }] }, lm: null },
        dspex: { version: 1, program: { kind: "ChainOfThought", config: { signature: "q -> a" } } },
      }),
      /saved signature has 1 fields but this program's has 3/,
    ],
    [
      "baddemos.json",
      JSON.stringify({
        demos: "nope",
        signature: { instructions: "x", fields: [{ prefix: "a", description: "b" }, { prefix: "c", description: "d" }] },
        lm: null,
        dspex: { version: 1, program: { kind: "Predict", config: { signature: "q -> a" } } },
      }),
      /'demos' must be an array/,
    ],
  ])("%s", async (name, text, msg) => {
    const p = text === null ? join(dir, name) : write(name, text);
    const err = await loadProgram(p).catch((e) => e);
    expect(err).toBeInstanceOf(ProgramStateError);
    expect(err.message).toMatch(msg);
    expect(err.message.startsWith(p)).toBe(true);
  });

  it("the registry lists known kinds", () => {
    expect(getRegistry().modules.names()).toEqual(expect.arrayContaining(["Predict", "ChainOfThought", "ReAct", "BestOfN", "Refine", "MultiChainComparison"]));
  });
});
