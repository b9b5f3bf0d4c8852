import { describe, expect, it } from "vitest";
import { AdapterParseError, ChatAdapter, Signature } from "../../src/index.js";

const adapter = new ChatAdapter();

describe("ChatAdapter.format (DSPy 3.x text)", () => {
  it("matches the example in DSPy's adapter docs byte for byte", () => {
    // From DSPy's docs (learn/programming/adapters): Signature("question -> answer"), one demo.
    const messages = adapter.format(Signature.parse("question -> answer"), [{ question: "What is 1+1?", answer: "2" }], {
      question: "What is 2+2?",
    });
    expect(messages).toEqual([
      {
        role: "system",
        content:
          "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str):\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Given the fields `question`, produce the fields `answer`.",
      },
      { role: "user", content: "[[ ## question ## ]]\nWhat is 1+1?" },
      { role: "assistant", content: "[[ ## answer ## ]]\n2\n\n[[ ## completed ## ]]\n" },
      {
        role: "user",
        content:
          "[[ ## question ## ]]\nWhat is 2+2?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.",
      },
    ]);
  });

  it("shows field descriptions (DSPy test with memory/query/response)", () => {
    const sig = Signature.parse("memory, query -> response", {
      descriptions: { memory: "The memory of the AI assistant about the user", query: "The query", response: "The response to the query" },
    });
    const messages = adapter.format(sig, [], { memory: "The user likes cats.", query: "What pet should I get?" });
    expect(messages).toEqual([
      {
        role: "system",
        content:
          "Your input fields are:\n1. `memory` (str): The memory of the AI assistant about the user\n2. `query` (str): The query\nYour output fields are:\n1. `response` (str): The response to the query\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n[[ ## memory ## ]]\n{memory}\n\n[[ ## query ## ]]\n{query}\n\n[[ ## response ## ]]\n{response}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Given the fields `memory`, `query`, produce the fields `response`.",
      },
      {
        role: "user",
        content:
          "[[ ## memory ## ]]\nThe user likes cats.\n\n[[ ## query ## ]]\nWhat pet should I get?\n\nRespond with the corresponding output fields, starting with the field `[[ ## response ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.",
      },
    ]);
  });

  it("adds type notes for typed outputs and keeps the trailing space of undescribed fields", () => {
    const sig = Signature.parse("question, context: list[str] -> answer: Literal['yes', 'no'], confidence: float, ok: bool, tags: list[str]");
    const [system, user] = adapter.format(sig, [], { question: "Is it?", context: ["one", "two\nlines"] });
    expect(system.content).toBe(
      [
        "Your input fields are:",
        "1. `question` (str): ",
        "2. `context` (list[str]):",
        "Your output fields are:",
        "1. `answer` (Literal['yes', 'no']): ",
        "2. `confidence` (float): ",
        "3. `ok` (bool): ",
        "4. `tags` (list[str]):",
        "All interactions will be structured in the following way, with the appropriate values filled in.",
        "",
        "[[ ## question ## ]]",
        "{question}",
        "",
        "[[ ## context ## ]]",
        "{context}",
        "",
        "[[ ## answer ## ]]",
        "{answer}        # note: the value you produce must exactly match (no extra characters) one of: yes; no",
        "",
        "[[ ## confidence ## ]]",
        "{confidence}        # note: the value you produce must be a single float value",
        "",
        "[[ ## ok ## ]]",
        "{ok}        # note: the value you produce must be True or False",
        "",
        "[[ ## tags ## ]]",
        '{tags}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string"}}',
        "",
        "[[ ## completed ## ]]",
        "In adhering to this structure, your objective is: ",
        "        Given the fields `question`, `context`, produce the fields `answer`, `confidence`, `ok`, `tags`.",
      ].join("\n"),
    );
    expect(user.content).toBe(
      [
        "[[ ## question ## ]]",
        "Is it?",
        "",
        "[[ ## context ## ]]",
        '["one", "two\\nlines"]',
        "",
        "Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]` (must be formatted as a valid Python Literal['yes', 'no']), then `[[ ## confidence ## ]]` (must be formatted as a valid Python float), then `[[ ## ok ## ]]` (must be formatted as a valid Python bool), then `[[ ## tags ## ]]` (must be formatted as a valid Python list[str]), and then ending with the marker for `[[ ## completed ## ]]`.",
      ].join("\n"),
    );
  });

  it("renders lists given to str fields as numbered «» blobs", () => {
    const sig = Signature.parse("context -> answer");
    const one = adapter.format(sig, [], { context: ["only"] })[1].content;
    expect(one.startsWith("[[ ## context ## ]]\n«only»\n\n")).toBe(true);
    const many = adapter.format(sig, [], { context: ["a", "b\nc"] })[1].content;
    expect(many.startsWith("[[ ## context ## ]]\n[1] «a»\n[2] «««\n    b\n    c\n»»»\n\n")).toBe(true);
    const none = adapter.format(sig, [], { context: [] })[1].content;
    expect(none.startsWith("[[ ## context ## ]]\nN/A\n\n")).toBe(true);
  });

  it("puts incomplete demos first with DSPy's prefix and missing-field text", () => {
    const sig = Signature.parse("question -> reasoning, answer: int");
    const msgs = adapter.format(
      sig,
      [
        { question: "1+1?", reasoning: "one and one", answer: 2 },
        { question: "2+2?", answer: 4 },
        { question: "only input" }, // dropped: no output field
      ],
      { question: "3+3?" },
    );
    expect(msgs.map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "assistant", "user"]);
    expect(msgs[1].content).toBe("This is an example of the task, though some input or output fields are not supplied.\n\n[[ ## question ## ]]\n2+2?");
    expect(msgs[2].content).toBe("[[ ## reasoning ## ]]\nNot supplied for this particular example. \n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]\n");
    expect(msgs[3].content).toBe("[[ ## question ## ]]\n1+1?");
    expect(msgs[4].content).toBe("[[ ## reasoning ## ]]\none and one\n\n[[ ## answer ## ]]\n2\n\n[[ ## completed ## ]]\n");
  });

  it("indents multi-line instructions under the objective", () => {
    const sig = Signature.parse("q -> a", { instructions: "    Line one.\n    Line two." });
    const system = adapter.format(sig, [], { q: "x" })[0].content;
    expect(system.endsWith("In adhering to this structure, your objective is: \n        Line one.\n        Line two.")).toBe(true);
  });

  it("prints values with Python spelling (True, None, 1.0, json.dumps for dicts)", () => {
    const sig = Signature.parse("flag: bool, n: float, d: dict[str, Any], nothing -> a");
    const user = adapter.format(sig, [], { flag: true, n: 2, d: { k: [1, "é"] }, nothing: null })[1].content;
    expect(user).toContain("[[ ## flag ## ]]\nTrue\n\n[[ ## n ## ]]\n2.0\n\n[[ ## d ## ]]\n{\"k\": [1, \"é\"]}\n\n[[ ## nothing ## ]]\nNone\n\n");
  });
});

describe("ChatAdapter.parse", () => {
  const sig = Signature.parse("question -> reasoning, answer: int");

  it("parses sections and coerces types", () => {
    expect(adapter.parse(sig, "[[ ## reasoning ## ]]\nThink.\n\n[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]")).toEqual({
      reasoning: "Think.",
      answer: 42,
    });
  });

  it("takes content written on the header line", () => {
    expect(adapter.parse(sig, "[[ ## reasoning ## ]] quick\n[[ ## answer ## ]] 7")).toEqual({ reasoning: "quick", answer: 7 });
  });

  it("keeps the first occurrence of a repeated field", () => {
    expect(adapter.parse(sig, "[[ ## reasoning ## ]]\nfirst\n[[ ## answer ## ]]\n1\n[[ ## answer ## ]]\n2")).toEqual({ reasoning: "first", answer: 1 });
  });

  it("ignores text before the first marker and unknown fields", () => {
    expect(adapter.parse(sig, "Sure!\n[[ ## other ## ]]\nx\n[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\n3")).toEqual({ reasoning: "r", answer: 3 });
  });

  it("reports missing fields with DSPy's AdapterParseError text", () => {
    let err: unknown;
    try {
      adapter.parse(sig, "[[ ## reasoning ## ]]\nonly this");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AdapterParseError);
    const e = err as AdapterParseError;
    expect(e.code).toBe("adapter_parse");
    expect(e.message).toBe(
      "Adapter ChatAdapter failed to parse the LM response. \n\nLM Response: [[ ## reasoning ## ]]\nonly this \n\nExpected to find output fields in the LM response: [reasoning, answer] \n\nActual output fields parsed from the LM response: [reasoning] \n\n",
    );
  });

  it("reports values that do not fit the type, naming the field", () => {
    expect(() => adapter.parse(sig, "[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\nforty-two")).toThrow(
      /Failed to parse field answer with value forty-two from the LM response\. Error message: expected an integer/,
    );
  });

  it("coerces JSON, Python literals, Literal wrappers and booleans", () => {
    const s = Signature.parse("q -> tags: list[str], label: Literal['yes', 'no'], ok: bool, score: float, maybe: Optional[str]");
    const reply = [
      "[[ ## tags ## ]]",
      "['a', 'b']",
      "[[ ## label ## ]]",
      "Literal['no']",
      "[[ ## ok ## ]]",
      "True",
      "[[ ## score ## ]]",
      "0.75",
      "[[ ## maybe ## ]]",
      "some text",
    ].join("\n");
    expect(adapter.parse(s, reply)).toEqual({ tags: ["a", "b"], label: "no", ok: true, score: 0.75, maybe: "some text" });
    expect(adapter.parse(s, reply.replace("Literal['no']", "'yes'").replace("True", "false"))).toMatchObject({ label: "yes", ok: false });
  });

  it("repairs slightly broken JSON lists", () => {
    const s = Signature.parse("q -> nums: list[int]");
    expect(adapter.parse(s, '[[ ## nums ## ]]\n```json\n[1, 2, 3,]\n```')).toEqual({ nums: [1, 2, 3] });
    expect(adapter.parse(s, "[[ ## nums ## ]]\n[1, 2")).toEqual({ nums: [1, 2] });
    expect(() => adapter.parse(s, "[[ ## nums ## ]]\n[1, 'x']")).toThrow(/expected an integer at \[1\]/);
  });

  it("rejects Literal values outside the allowed set", () => {
    const s = Signature.parse("q -> label: Literal['yes', 'no']");
    expect(() => adapter.parse(s, "[[ ## label ## ]]\nmaybe")).toThrow(AdapterParseError);
  });
});
