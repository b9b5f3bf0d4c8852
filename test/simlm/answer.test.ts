import { describe, expect, it } from "vitest";
import { analyze, answer, parseArithmetic, type SimPrompt } from "../../src/simlm/answer.js";
import type { ChatMessage } from "../../src/engine/lm/types.js";
import { arithmeticQuestions, chatField, chatPrompt, chatSystem, jsonUser } from "./prompts.js";

function toSim(messages: ChatMessage[], extra: Partial<SimPrompt> = {}): SimPrompt {
  const system = messages.filter((m) => m.role === "system").map((m) => m.content).join("\n\n");
  const turns = messages.filter((m) => m.role !== "system").map((m) => ({ role: m.role as "user" | "assistant", content: m.content }));
  return { system, turns, ...extra };
}

function accuracyOf(seed: number, qs: { question: string; answer: number }[], build: (q: string) => ChatMessage[]): { acc: number; right: boolean[] } {
  const right = qs.map(({ question, answer: expected }) => {
    const reply = answer(toSim(build(question)), seed).texts[0];
    return Number(chatField(reply, "answer")) === expected;
  });
  return { acc: right.filter(Boolean).length / qs.length, right };
}

describe("arithmetic parsing", () => {
  it.each([
    ["What is 12 + 30?", 42],
    ["What is 12 - 30?", -18],
    ["What is 7 * 6?", 42],
    ["What is 7 x 6?", 42],
    ["Compute 9 times 9.", 81],
    ["What is 10 minus -5?", 15],
    ["What is the sum of 3 and 4?", 7],
    ["Find the product of 5 and 6", 30],
    ["What is the difference between 10 and 4?", 6],
    ["Subtract 4 from 10", 6],
    ["What is 7 divided by 2?", 3.5],
    ["What is 1.5 plus 2.25?", 3.75],
  ])("%s -> %d", (q, expected) => {
    expect(parseArithmetic(q)?.value).toBe(expected);
  });

  it("ignores text without arithmetic and long passages", () => {
    expect(parseArithmetic("Who wrote Hamlet?")).toBeUndefined();
    expect(parseArithmetic(`${"word ".repeat(60)} 1 + 2`)).toBeUndefined();
    expect(parseArithmetic("What is 5 / 0?")).toBeUndefined();
  });
});

describe("sim-lm answers", () => {
  const qs = arithmeticQuestions(200);

  it("is deterministic: same seed and question give the same reply; seeds differ", () => {
    const p = toSim(chatPrompt("What is 12 + 30?", { outputs: [{ name: "reasoning" }, { name: "answer", type: "int" }] }));
    expect(answer(p, 7).texts).toEqual(answer(p, 7).texts);
    const bySeed = (seed: number) => qs.slice(0, 50).map((q) => answer(toSim(chatPrompt(q.question)), seed).texts[0]);
    expect(bySeed(1)).toEqual(bySeed(1));
    expect(bySeed(1)).not.toEqual(bySeed(2));
  });

  it("answers in ChatAdapter format with typed fields and the completed marker", () => {
    const p = toSim(chatPrompt("What is 12 + 30?", { outputs: [{ name: "reasoning" }, { name: "answer", type: "int" }] }));
    const [text] = answer(p, 1, { baseAccuracy: 1 }).texts;
    expect(text).toBe("[[ ## reasoning ## ]]\nWe need to compute 12 + 30. 12 + 30 = 42.\n\n[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]");
  });

  it("base accuracy is near baseAccuracy over 200 questions, and every wrong answer is a number", () => {
    const { acc } = accuracyOf(3, qs, (q) => chatPrompt(q));
    expect(acc).toBeGreaterThan(0.4);
    expect(acc).toBeLessThan(0.6);
    for (const q of qs.slice(0, 20)) {
      const v = chatField(answer(toSim(chatPrompt(q.question)), 3).texts[0], "answer");
      expect(Number.isInteger(Number(v))).toBe(true);
    }
  });

  it("correct worked demos raise accuracy (monotonically, per question); wrong demos do not", () => {
    const demos = arithmeticQuestions(4, 99).map((d) => ({ question: d.question, answer: String(d.answer) }));
    const wrongDemos = demos.map((d) => ({ ...d, answer: String(Number(d.answer) + 1) }));
    const base = accuracyOf(5, qs, (q) => chatPrompt(q));
    const boosted = accuracyOf(5, qs, (q) => chatPrompt(q, { demos }));
    const wrong = accuracyOf(5, qs, (q) => chatPrompt(q, { demos: wrongDemos }));
    // Default knobs: 0.5 + 4 * 0.08 = 0.82 expected accuracy with 4 correct demos.
    expect(boosted.acc - base.acc).toBeGreaterThan(0.2);
    expect(boosted.acc).toBeGreaterThan(0.72);
    expect(wrong.acc).toBe(base.acc);
    // The same hash decides correctness, so a question right without demos stays right.
    base.right.forEach((r, i) => {
      if (r) expect(boosted.right[i]).toBe(true);
    });
    const a = analyze(toSim(chatPrompt(qs[0].question, { demos: [...demos, ...demos] })));
    expect(a.correctDemos).toBe(8);
    expect(a.accuracy).toBeCloseTo(0.82, 10); // capped at maxBoostedDemos = 4
  });

  it("instruction keywords in the objective add instructionBoost; reasoning adds reasoningBoost", () => {
    const plain = analyze(toSim(chatPrompt("What is 1 + 2?")));
    const careful = analyze(toSim(chatPrompt("What is 1 + 2?", { instructions: "Think step by step, then answer." })));
    const cot = analyze(toSim(chatPrompt("What is 1 + 2?", { outputs: [{ name: "reasoning" }, { name: "answer", type: "int" }] })));
    expect(plain.accuracy).toBeCloseTo(0.5, 10);
    expect(careful.instructionMatched).toBe(true);
    expect(careful.accuracy).toBeCloseTo(0.6, 10);
    expect(cot.accuracy).toBeCloseTo(0.55, 10);
    const custom = analyze(toSim(chatPrompt("What is 1 + 2?", { instructions: "Be rigorous." })), {
      instructionKeywords: ["rigorous"],
      instructionBoost: 0.3,
    });
    expect(custom.accuracy).toBeCloseTo(0.8, 10);
  });

  it("answers JSON for the JSONAdapter prompt, json_object and json_schema", () => {
    const outputs = [{ name: "reasoning" }, { name: "answer", type: "int" }];
    const sys = chatSystem(outputs);
    const viaPrompt = answer({ system: sys, turns: [{ role: "user", content: jsonUser("What is 2 * 21?", outputs) }] }, 1, { baseAccuracy: 1 });
    expect(JSON.parse(viaPrompt.texts[0])).toEqual({ reasoning: "We need to compute 2 * 21. 2 * 21 = 42.", answer: 42 });

    const schema = {
      type: "object",
      properties: { answer: { type: "integer" }, confident: { type: "boolean" }, tags: { type: "array", items: { type: "string" } }, label: { enum: ["a", "b"] } },
      required: ["answer", "confident", "tags", "label"],
    };
    const viaSchema = answer(
      { system: "", turns: [{ role: "user", content: "What is 40 + 2?" }], responseFormat: { type: "json_schema", schema } },
      1,
      { baseAccuracy: 1 },
    );
    const obj = JSON.parse(viaSchema.texts[0]);
    expect(Object.keys(obj)).toEqual(["answer", "confident", "tags", "label"]);
    expect(obj.answer).toBe(42);
    expect(typeof obj.confident).toBe("boolean");
    expect(obj.tags).toHaveLength(1);
    expect(typeof obj.tags[0]).toBe("string");
    expect(["a", "b"]).toContain(obj.label);

    const viaObject = answer({ system: "", turns: [{ role: "user", content: "Say hi" }], responseFormat: { type: "json_object" } }, 1);
    expect(Object.keys(JSON.parse(viaObject.texts[0]))).toEqual(["answer"]);
  });

  it("plain prompts get plain text; arithmetic gets just the number", () => {
    const r = answer({ system: "", turns: [{ role: "user", content: "What is 20 + 22?" }] }, 1, { baseAccuracy: 1 });
    expect(r.texts[0]).toBe("42");
    const s = answer({ system: "", turns: [{ role: "user", content: "Write a haiku" }] }, 1);
    expect(s.texts[0]).toMatch(/^A [a-z]+ [a-z]+ about .+\(\d+\)\.$/);
  });

  it("typed output fields for a non-arithmetic task: bool, float, list, Literal", () => {
    const system =
      "Your input fields are:\n1. `text` (str): \nYour output fields are:\n1. `ok` (bool): \n2. `score` (float): \n3. `tags` (list[str]): \n4. `label` (Literal['pos', 'neg']): \n" +
      "All interactions will be structured in the following way, with the appropriate values filled in.\n\n[[ ## text ## ]]\n{text}\n\n" +
      "[[ ## ok ## ]]\n{ok}        # note: the value you produce must be True or False\n\n" +
      "[[ ## score ## ]]\n{score}        # note: the value you produce must be a single float value\n\n" +
      '[[ ## tags ## ]]\n{tags}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string"}}\n\n' +
      "[[ ## label ## ]]\n{label}        # note: the value you produce must exactly match (no extra characters) one of: pos; neg\n\n[[ ## completed ## ]]\n" +
      "In adhering to this structure, your objective is: \n        Classify.";
    const user =
      "[[ ## text ## ]]\nI loved it\n\nRespond with the corresponding output fields, starting with the field `[[ ## ok ## ]]` (must be formatted as a valid Python bool), then `[[ ## score ## ]]` (must be formatted as a valid Python float), then `[[ ## tags ## ]]` (must be formatted as a valid Python list[str]), then `[[ ## label ## ]]` (must be formatted as a valid Python Literal['pos', 'neg']), and then ending with the marker for `[[ ## completed ## ]]`.";
    const [text] = answer({ system, turns: [{ role: "user", content: user }] }, 4).texts;
    expect(chatField(text, "ok")).toMatch(/^(True|False)$/);
    expect(Number.isFinite(Number(chatField(text, "score")))).toBe(true);
    const tags = JSON.parse(chatField(text, "tags") ?? "null");
    expect(Array.isArray(tags) && tags.every((t: unknown) => typeof t === "string")).toBe(true);
    expect(["pos", "neg"]).toContain(chatField(text, "label"));
    expect(text.endsWith("[[ ## completed ## ]]")).toBe(true);
  });

  it("n > 1 gives n choices that vary deterministically by index", () => {
    const p = toSim(chatPrompt("What is 31 * 17?"), { n: 8 });
    const a = answer(p, 11);
    expect(a.texts).toHaveLength(8);
    expect(a.texts).toEqual(answer(p, 11).texts);
    expect(new Set(a.texts).size).toBeGreaterThan(1);
  });

  it("proposed instructions vary with temperature and some carry boost keywords", () => {
    const outputs = [{ name: "proposed_instruction" }];
    const seen = new Set<string>();
    for (let t = 0; t < 30; t++) {
      const msgs = chatPrompt("Propose an instruction for: What is 1 + 1? (task demos)", { outputs });
      const [text] = answer(toSim(msgs, { temperature: 0.7 + t * 0.01 }), 2).texts;
      seen.add(chatField(text, "proposed_instruction") ?? "");
    }
    expect(seen.size).toBeGreaterThan(3);
    expect([...seen].some((s) => /step by step|carefully|double-check/.test(s))).toBe(true);
    expect([...seen].some((s) => !/step by step|carefully|double-check/.test(s))).toBe(true);
  });
});
