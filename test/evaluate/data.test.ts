import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readAll } from "../../src/engine/evaluate/data.js";

const dir = mkdtempSync(join(tmpdir(), "dspex-data-"));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe("dataset files", () => {
  it("reads JSONL, skipping blank lines", async () => {
    expect(await readAll(file("a.jsonl", '{"q": "1"}\n\n{"q": "2", "a": 3}\n'))).toEqual([{ q: "1" }, { q: "2", a: 3 }]);
  });

  it("reads CSV with quotes, doubled quotes and multi-line fields", async () => {
    const p = file("a.csv", 'question,answer\n"What, really?",yes\n"He said ""hi""",no\n"two\nlines",x\n');
    expect(await readAll(p)).toEqual([
      { question: "What, really?", answer: "yes" },
      { question: 'He said "hi"', answer: "no" },
      { question: "two\nlines", answer: "x" },
    ]);
  });

  it.each([
    ["bad.jsonl", '{"q": 1}\n{"q": \n', /bad\.jsonl:2: not valid JSON/],
    ["arr.jsonl", '{"q": 1}\n[1]\n', /arr\.jsonl:2: expected a JSON object/],
    ["empty.jsonl", "\n\n", /empty\.jsonl: no examples/],
    ["short.csv", "a,b\n1,2\n3\n", /short\.csv:3: 1 values but the header has 2 columns/],
    ["open.csv", 'a,b\n"x,1\n', /open\.csv:2: unterminated quoted field/],
    ["dup.csv", "a,a\n1,2\n", /duplicate column 'a'/],
    ["data.txt", "x", /unknown data format/],
  ])("%s -> clear error with the line number", async (name, text, msg) => {
    await expect(readAll(file(name, text))).rejects.toThrow(msg);
  });

  it("missing files say so", async () => {
    await expect(readAll(join(dir, "nope.jsonl"))).rejects.toThrow(/nope\.jsonl: file not found/);
  });
});
