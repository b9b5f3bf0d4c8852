// Byte-for-byte compatibility with DSPy 3.0.x, from cases in test/fixtures/dspy
// (expected strings from DSPy's own tests/docs, or derived from its source; see README there).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AdapterParseError, ChatAdapter, JSONAdapter, Signature } from "../../src/index.js";

const fixtures = join(__dirname, "../fixtures/dspy");
const load = <T>(name: string): T => JSON.parse(readFileSync(join(fixtures, name), "utf8")) as T;

interface SigSpec {
  spec: string;
  instructions?: string;
  descriptions?: Record<string, string>;
}
interface GoldenCase {
  id: string;
  signature: SigSpec;
  demos: Record<string, unknown>[];
  inputs: Record<string, unknown>;
  expected: { role: string; content: string }[];
}
interface ParseCase {
  id: string;
  adapter: "chat" | "json";
  signature: SigSpec;
  completion: string;
  expected?: Record<string, unknown>;
  error?: true;
  errorMessage?: string;
}

const sig = (s: SigSpec) => Signature.parse(s.spec, { instructions: s.instructions, descriptions: s.descriptions });

describe.each([
  ["ChatAdapter", "chat_adapter_golden.json", new ChatAdapter()],
  ["JSONAdapter", "json_adapter_golden.json", new JSONAdapter()],
] as const)("%s formats exactly like DSPy", (_name, file, adapter) => {
  const cases = load<GoldenCase[]>(file);
  it("has cases", () => expect(cases.length).toBeGreaterThan(4));
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    expect(adapter.format(sig(c.signature), c.demos, c.inputs)).toEqual(c.expected);
  });
});

describe("parsing replies like DSPy", () => {
  const cases = load<ParseCase[]>("parse_cases.json");
  const adapters = { chat: new ChatAdapter(), json: new JSONAdapter() };
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const run = () => adapters[c.adapter].parse(sig(c.signature), c.completion);
    if (c.error) {
      expect(run).toThrow(AdapterParseError);
      if (c.errorMessage && c.adapter === "chat") expect(() => run()).toThrow(c.errorMessage);
    } else {
      expect(run()).toEqual(c.expected);
    }
  });
});
