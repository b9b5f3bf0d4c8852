import { describe, expect, it } from "vitest";
import { AdapterParseError, ChatAdapter, JSONAdapter, Predict, Signature, configure, structuredOutputFormat } from "../../src/index.js";
import { ScriptedLM } from "./helpers.js";

const adapter = new JSONAdapter();

describe("JSONAdapter.format", () => {
  it("describes outputs as a JSON object and asks for fields in order", () => {
    const sig = Signature.parse("question -> answer: int");
    const msgs = adapter.format(sig, [{ question: "1+1?", answer: 2 }], { question: "2+2?" });
    expect(msgs[0].content).toBe(
      "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (int):\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\nInputs will have the following structure:\n\n[[ ## question ## ]]\n{question}\n\nOutputs will be a JSON object with the following fields.\n\n{\n  \"answer\": \"{answer}        # note: the value you produce must be a single int value\"\n}\nIn adhering to this structure, your objective is: \n        Given the fields `question`, produce the fields `answer`.",
    );
    expect(msgs[1]).toEqual({ role: "user", content: "[[ ## question ## ]]\n1+1?" });
    expect(msgs[2]).toEqual({ role: "assistant", content: '{\n  "answer": 2\n}' });
    expect(msgs[3].content).toBe(
      "[[ ## question ## ]]\n2+2?\n\nRespond with a JSON object in the following order of fields: `answer` (must be formatted as a valid Python int).",
    );
  });
});

describe("JSONAdapter.parse", () => {
  const sig = Signature.parse("question -> answer: int, tags: list[str]");

  it("finds the JSON object inside surrounding text", () => {
    expect(adapter.parse(sig, 'Here you go: {"answer": "5", "tags": ["x"], "extra": 1} thanks')).toEqual({ answer: 5, tags: ["x"] });
  });

  it("reports non-objects and missing fields", () => {
    expect(() => adapter.parse(sig, "no json here")).toThrow(/cannot be serialized to a JSON object/);
    expect(() => adapter.parse(sig, '{"answer": 1}')).toThrow(AdapterParseError);
  });
});

describe("structured outputs", () => {
  it("sends a strict json_schema response format", () => {
    const sig = Signature.parse("q -> answer: int, label: Literal['a', 'b']");
    expect(structuredOutputFormat(sig)).toEqual({
      type: "json_schema",
      name: "DSPyProgramOutputs",
      strict: true,
      schema: {
        type: "object",
        properties: { answer: { type: "integer" }, label: { type: "string", enum: ["a", "b"] } },
        required: ["answer", "label"],
        additionalProperties: false,
      },
    });
  });

  it("ChatAdapter falls back to JSON mode when markers are missing", async () => {
    const lm = new ScriptedLM(["The answer is 4.", '{"answer": 4}']);
    configure({ lm, adapter: new ChatAdapter() });
    const pred = await new Predict("question -> answer: int").call({ question: "2+2?" });
    expect(pred.get("answer")).toBe(4);
    expect(lm.requests).toHaveLength(2);
    expect(lm.requests[0].responseFormat).toBeUndefined();
    expect(lm.requests[1].responseFormat).toMatchObject({ type: "json_schema", name: "DSPyProgramOutputs" });
    // Both calls spent tokens: the prediction accounts for the failed attempt too.
    expect(pred.usage.totalTokens).toBe(30);
  });

  it("JSONAdapter retries with json_object when structured output fails", async () => {
    const lm = new ScriptedLM(["not json", '{"answer": 9}']);
    const pred = await new Predict("question -> answer: int").call({ question: "?" }, { lm, adapter: new JSONAdapter() });
    expect(pred.get("answer")).toBe(9);
    expect(lm.requests[1].responseFormat).toEqual({ type: "json_object" });
  });

  it("uses json_object directly for open-ended dict outputs", async () => {
    const lm = new ScriptedLM(['{"meta": {"a": 1}}']);
    await new Predict("q -> meta: dict[str, Any]").call({ q: "?" }, { lm, adapter: new JSONAdapter() });
    expect(lm.requests[0].responseFormat).toEqual({ type: "json_object" });
  });
});
