import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  annotationName,
  InputField,
  inferPrefix,
  jsonSchema,
  OutputField,
  Signature,
  SignatureError,
  T,
  registerType,
} from "../../src/index.js";

describe("Signature.parse", () => {
  it("parses untyped and typed fields in order", () => {
    const s = Signature.parse("question, context: list[str] -> answer, confidence: float");
    expect(s.inputNames).toEqual(["question", "context"]);
    expect(s.outputNames).toEqual(["answer", "confidence"]);
    expect(annotationName(s.field("question")!.type)).toBe("str");
    expect(annotationName(s.field("context")!.type)).toBe("list[str]");
    expect(annotationName(s.field("confidence")!.type)).toBe("float");
  });

  it("uses DSPy's default instructions text", () => {
    expect(Signature.parse("question -> answer").instructions).toBe("Given the fields `question`, produce the fields `answer`.");
    expect(Signature.parse("a, b -> c, d").instructions).toBe("Given the fields `a`, `b`, produce the fields `c`, `d`.");
  });

  it("understands the DSPy type names", () => {
    const s = Signature.parse(
      "a: int, b: bool, c: dict[str, Any], d: Literal['x', 'y'], e: Optional[int], f: list[list[int]], g: Dict[str, int], h: str | None -> o",
    );
    const names = s.inputFields.map((f) => annotationName(f.type));
    expect(names).toEqual([
      "int",
      "bool",
      "dict[str, Any]",
      "Literal['x', 'y']",
      "Union[int, NoneType]",
      "list[list[int]]",
      "dict[str, int]",
      "UnionType[str, NoneType]",
    ]);
  });

  it("quotes Literal values the way Python prints them", () => {
    const s = Signature.parse(`x -> a: Literal["it's", 'say "hi"', 3, True]`);
    expect(annotationName(s.field("a")!.type)).toBe(`Literal["it's", 'say "hi"', 3, True]`);
  });

  it("round-trips through toString and toJSON", () => {
    const s = Signature.parse("q: str, ctx: list[str] -> a: Literal['yes', 'no'], score: Optional[float]", {
      instructions: "Judge.",
      descriptions: { q: "the question" },
    });
    expect(Signature.parse(s.toString()).sameShape(s)).toBe(true);
    const back = Signature.fromJSON(s.toJSON());
    expect(back.toJSON()).toEqual(s.toJSON());
    expect(back.instructions).toBe("Judge.");
    expect(back.field("q")!.desc).toBe("the question");
  });

  it.each([
    ["question answer", /exactly one '->'/],
    ["a -> b -> c", /exactly one '->'/],
    ["1abc -> b", /invalid input field name '1abc'/],
    ["a, , b -> c", /empty input field #2/],
    ["a -> b: Foo", /unknown type 'Foo'/],
    ["a -> b: list[str", /expected '\]'/],
    ["a -> b:", /has ':' but no type/],
    ["a -> a", /defined more than once/],
    ["a -> b: dict[str]", /takes two types/],
    ["a -> b: Literal[]", /at least one value/],
  ])("rejects %j with a clear SignatureError", (spec, msg) => {
    let err: unknown;
    try {
      Signature.parse(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SignatureError);
    expect((err as Error).message).toMatch(msg);
    expect((err as SignatureError).code).toMatch(/^signature_/);
  });

  it("accepts registered custom types", () => {
    registerType("Point", T.object("Point", { type: "object", properties: { x: { type: "integer" } }, required: ["x"], title: "Point" }), {
      replace: true,
    });
    const s = Signature.parse("q -> p: Point");
    expect(annotationName(s.field("p")!.type)).toBe("Point");
  });
});

describe("signature editing", () => {
  const base = Signature.parse("question -> answer");

  it("prepend/append insert among inputs or outputs and keep instructions", () => {
    const s = base.prepend("reasoning", OutputField()).append("context", InputField());
    expect(s.inputNames).toEqual(["question", "context"]);
    expect(s.outputNames).toEqual(["reasoning", "answer"]);
    expect(s.instructions).toBe(base.instructions);
  });

  it("is immutable: edits return new signatures", () => {
    const s = base.withInstructions("New.");
    expect(base.instructions).not.toBe("New.");
    expect(s.instructions).toBe("New.");
    expect(() => (base.inputFields as unknown as unknown[]).push({})).toThrow();
  });

  it("dumpState/loadState follow DSPy's format", () => {
    const s = base.withUpdatedField("answer", { desc: "short" });
    expect(s.dumpState()).toEqual({
      instructions: "Given the fields `question`, produce the fields `answer`.",
      fields: [
        { prefix: "Question:", description: "${question}" },
        { prefix: "Answer:", description: "short" },
      ],
    });
    const loaded = base.loadState({ instructions: "Be brief.", fields: [{ prefix: "Q:", description: "q" }, { prefix: "A:", description: "a" }] });
    expect(loaded.instructions).toBe("Be brief.");
    expect(loaded.field("answer")!.prefix).toBe("A:");
  });
});

describe("typed builder", () => {
  it("maps zod schemas to DSPy types", () => {
    const s = Signature.define(
      {
        question: InputField({ type: z.string(), desc: "a question" }),
        tags: InputField({ type: z.array(z.string()) }),
        answer: OutputField({ type: z.number().int() }),
        score: OutputField({ type: z.number() }),
        label: OutputField({ type: z.enum(["pos", "neg"]) }),
        ok: OutputField({ type: z.boolean().optional() }),
        meta: OutputField({ type: z.record(z.string(), z.number()) }),
      },
      "Classify.",
    );
    expect(s.fields.map((f) => annotationName(f.type))).toEqual([
      "str",
      "list[str]",
      "int",
      "float",
      "Literal['pos', 'neg']",
      "Union[bool, NoneType]",
      "dict[str, float]",
    ]);
    expect(s.field("question")!.desc).toBe("a question");
    expect(s.instructions).toBe("Classify.");
  });

  it("turns zod objects into named object types with a pydantic-like schema", () => {
    const Person = z.object({ name: z.string(), age: z.int() }).meta({ title: "Person" });
    const s = Signature.define({ text: InputField(), person: OutputField({ type: Person }) });
    const t = s.field("person")!.type;
    expect(annotationName(t)).toBe("Person");
    expect(jsonSchema(t)).toEqual({
      type: "object",
      properties: { name: { type: "string", title: "Name" }, age: { type: "integer", title: "Age" } },
      required: ["name", "age"],
      title: "Person",
    });
  });

  it("rejects fields not declared with InputField/OutputField", () => {
    expect(() => Signature.define({ q: { type: "str" } as never })).toThrow(/InputField\(\) or OutputField\(\)/);
  });
});

describe("pydantic-style JSON schema", () => {
  it.each([
    ["list[str]", { type: "array", items: { type: "string" } }],
    ["dict[str, Any]", { type: "object", additionalProperties: true }],
    ["dict[str, int]", { type: "object", additionalProperties: { type: "integer" } }],
    ["Optional[str]", { anyOf: [{ type: "string" }, { type: "null" }] }],
    ["Literal['a', 'b']", { type: "string", enum: ["a", "b"] }],
    ["list[Literal[1, 2]]", { type: "array", items: { type: "integer", enum: [1, 2] } }],
  ])("%s", (spec, schema) => {
    const s = Signature.parse(`x -> y: ${spec}`);
    expect(jsonSchema(s.field("y")!.type)).toEqual(schema);
    // "type" comes first, like DSPy's move_type_to_front.
    const keys = Object.keys(jsonSchema(s.field("y")!.type));
    if (keys.includes("type")) expect(keys[0]).toBe("type");
  });
});

describe("inferPrefix (DSPy's infer_prefix)", () => {
  it.each([
    ["question", "Question"],
    ["camelCaseText", "Camel Case Text"],
    ["snake_case_text", "Snake Case Text"],
    ["text2number", "Text 2 Number"],
    ["HTMLParser", "HTML Parser"],
    ["reasoning_attempt_1", "Reasoning Attempt 1"],
  ])("%s -> %s", (name, prefix) => {
    expect(inferPrefix(name)).toBe(prefix);
  });
});
