// Hot-path shortcuts must not change behaviour: remembered JSON / digests of recurring
// message texts (texts.ts) never change a byte of the request body or merge distinct texts
// in cache keys, the OpenAI reply fast path accepts exactly what its zod schema accepts, and
// ChatAdapter.parse still reads replies exactly like DSPy's line-based algorithm.
import { describe, expect, it } from "vitest";
import { jsonText, messagesJson, textDigest } from "../../src/engine/lm/texts.js";
import { OpenAIProvider } from "../../src/engine/lm/openai.js";
import { LMError } from "../../src/engine/lm/errors.js";
import { cacheKey } from "../../src/engine/lm/cache.js";
import { ChatAdapter } from "../../src/engine/adapters/chat.js";
import { parseValue } from "../../src/engine/adapters/values.js";
import { AdapterParseError } from "../../src/engine/errors.js";
import { pyStrip, splitLines } from "../../src/engine/python.js";
import { Signature } from "../../src/engine/signature/signature.js";

const long = (s: string) => s.repeat(200);

describe("recurring message texts", () => {
  it("messagesJson equals JSON.stringify for plain and unusual messages", () => {
    const cases: unknown[][] = [
      [],
      [{ role: "system", content: long("You are\n\"helpful\" ☃\t") }, { role: "user", content: "q\u0000\u2028" }],
      [{ role: "system", content: long("x") }, { role: "system", content: long("x") }, { role: "user", content: "" }],
      [{ content: "c", role: "user" }], // key order
      [{ role: "user", content: "c", name: "bob" }], // extra key
      [{ role: "user", content: "c", extra: undefined }],
      [{ role: "user", content: ["part"] }], // non-string content
      [{ role: "tool", content: long("t") }, { role: "user", content: "u" }],
      [{ role: "user", content: "c", toJSON: () => ({ replaced: true }) }],
      [Object.assign(Object.create({ inherited: 1 }), { role: "user", content: "c" })],
      [undefined, null, { role: "user", content: long("\ud800 lone") }, { role: "user", content: "😀" }],
      // eslint-disable-next-line no-sparse-arrays
      [, { role: "user", content: "after a hole" }],
    ];
    for (const messages of cases) {
      // Twice: the second call reads remembered texts.
      expect(messagesJson(messages)).toBe(JSON.stringify(messages));
      expect(messagesJson(messages)).toBe(JSON.stringify(messages));
    }
  });

  it("the OpenAI body is byte-identical to JSON.stringify of the same object", () => {
    const p = new OpenAIProvider({ model: "gpt-4o-mini" });
    const messages = [
      { role: "system" as const, content: long("Your input fields are:\n1. `question` (str)\n") },
      { role: "user" as const, content: "[[ ## question ## ]]\nWhat is 1 + 1?" },
    ];
    const rf = { type: "json_schema" as const, name: "O", schema: { type: "object" } };
    for (const extra of [{}, { temperature: 0.5, maxTokens: 10, n: 3, stop: ["\n"], topP: 0.9, responseFormat: rf }, { n: 1, stop: [] }]) {
      const body = p.encode({ model: "gpt-4o-mini", messages, ...extra });
      const parsed = JSON.parse(body) as Record<string, unknown>;
      expect(body).toBe(JSON.stringify(parsed));
      expect(parsed.messages).toEqual(messages);
      expect(Object.keys(parsed).slice(0, 2)).toEqual(["model", "messages"]);
    }
  });

  it("jsonText and textDigest give the same answer remembered or not", () => {
    const t = long("abc\n");
    expect(jsonText(t, true)).toBe(JSON.stringify(t));
    expect(jsonText(t, true)).toBe(jsonText(t, false));
    expect(textDigest(t, true)).toBe(textDigest(t, false));
    expect(textDigest(long("\ud800"), true)).not.toBe(textDigest(long("\ud801"), true));
  });

  it("cache keys do not depend on what is remembered, even after the table starts over", () => {
    const msgs = (i: number) => [
      { role: "system" as const, content: long(`system ${i % 3}\n`) },
      { role: "user" as const, content: `q${i}` },
    ];
    const first = Array.from({ length: 30 }, (_, i) => cacheKey({ model: "openai/m", messages: msgs(i) }));
    // Fill the table past its bounds with other recurring texts.
    for (let i = 0; i < 1500; i++) textDigest(long(`filler ${i} `), true);
    const again = Array.from({ length: 30 }, (_, i) => cacheKey({ model: "openai/m", messages: msgs(i) }));
    expect(again).toEqual(first);
    expect(new Set(first).size).toBe(30);
  });
});

describe("OpenAI reply fast path", () => {
  it("accepts only what the zod schema accepts, and returns the same fields", async () => {
    const { ChatCompletion, plainCompletion } = await import("../../src/engine/lm/openai.js");
    const base = () => ({
      id: "x",
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "hi", refusal: null }, finish_reason: "stop" }],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    });
    const odd = [undefined, null, 0, -1, 1.5, "", "s", true, [], {}, [1], { a: 1 }, Number.NaN];
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
    const paths = ["model", "choices", "usage", "choices.0", "choices.0.index", "choices.0.message", "choices.0.message.content", "choices.0.message.refusal", "choices.0.finish_reason", "usage.prompt_tokens", "usage.completion_tokens", ""];
    let fast = 0;
    for (let t = 0; t < 5000; t++) {
      let body: unknown = base();
      for (let k = Math.floor(rnd() * 3); k > 0; k--) {
        const path = pick(paths).split(".").filter(Boolean);
        const value = pick(odd);
        if (path.length === 0) body = value;
        else {
          let o = body as Record<string, unknown>;
          for (const p of path.slice(0, -1)) o = (o?.[p] ?? {}) as Record<string, unknown>;
          if (o && typeof o === "object") {
            if (value === undefined && rnd() < 0.5) delete o[path[path.length - 1]];
            else o[path[path.length - 1]] = value;
          }
        }
      }
      if (rnd() < 0.2 && body && typeof body === "object" && Array.isArray((body as { choices?: unknown }).choices)) {
        (body as { choices: unknown[] }).choices.push({ index: 1, message: { content: null, refusal: "no" }, finish_reason: null });
      }
      const plain = plainCompletion(body);
      const zod = ChatCompletion.safeParse(body);
      if (plain !== undefined) {
        fast++;
        expect(zod.success).toBe(true);
        const z = zod.data!;
        expect(plain.model).toEqual(z.model);
        expect(plain.usage?.prompt_tokens).toEqual(z.usage?.prompt_tokens);
        expect(plain.usage?.completion_tokens).toEqual(z.usage?.completion_tokens);
        expect(plain.choices.map((c) => [c.index, c.message.content, c.message.refusal, c.finish_reason])).toEqual(
          z.choices.map((c) => [c.index, c.message.content, c.message.refusal, c.finish_reason]),
        );
      } else if (zod.success) {
        throw new Error(`the fast path refused a reply zod accepts: ${JSON.stringify(body)}`);
      }
    }
    expect(fast).toBeGreaterThan(500);
  });
});

describe("OpenAI replies of the wrong shape", () => {
  it("are a bad_response naming the offending field, never a crash", () => {
    const p = new OpenAIProvider({ model: "m" });
    const req = { model: "m", messages: [{ role: "user" as const, content: "q" }] };
    const ok = { index: 0, message: { content: "hi" }, finish_reason: "stop" };
    const cases: [unknown, string][] = [
      [null, "(root)"],
      [[ok], "(root)"],
      [{}, "choices"],
      [{ choices: [] }, "choices"],
      [{ choices: [null] }, "choices.0"],
      [{ choices: [{ index: 0, finish_reason: "stop" }] }, "choices.0.message"],
      [{ choices: [{ index: 0, message: { content: 42 } }] }, "choices.0.message.content"],
      [{ choices: [{ index: "0", message: { content: "hi" } }] }, "choices.0.index"],
      [{ choices: [ok], usage: { prompt_tokens: "1", completion_tokens: 2 } }, "usage.prompt_tokens"],
      [{ choices: [ok], usage: "lots" }, "usage"],
      [{ model: 7, choices: [ok] }, "model"],
    ];
    for (const [body, path] of cases) {
      let err: unknown;
      try {
        p.decode({ status: 200, headers: {}, text: JSON.stringify(body) }, req);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(body)).toBeInstanceOf(LMError);
      expect((err as LMError).code).toBe("bad_response");
      expect((err as LMError).message).toContain(`not a chat completion (${path}:`);
    }
  });
});

describe("ChatAdapter.parse walks the reply by index", () => {
  // The line-based parse it replaced (DSPy's algorithm, line for line), as the reference.
  function referenceParse(signature: Signature, completion: string): Record<string, unknown> {
    const sections: [string | null, string[]][] = [[null, []]];
    for (const line of splitLines(completion)) {
      const m = line.includes("[[ ## ") ? /^\[\[ ## (\w+) ## \]\]/.exec(pyStrip(line)) : null;
      if (m) {
        const rest = pyStrip(line.slice(m[0].length));
        sections.push([m[1], rest ? [rest] : []]);
      } else sections[sections.length - 1][1].push(line);
    }
    const fields: Record<string, unknown> = {};
    for (const [name, lines] of sections) {
      if (name === null || Object.prototype.hasOwnProperty.call(fields, name)) continue;
      const f = signature.outputFields.find((x) => x.name === name);
      if (!f) continue;
      const text = pyStrip(lines.join("\n"));
      try {
        fields[name] = parseValue(text, f.type);
      } catch (e) {
        throw new Error(`field ${name} value ${text}: ${(e as Error).message}`);
      }
    }
    const missing = signature.outputNames.filter((n) => !Object.prototype.hasOwnProperty.call(fields, n));
    if (missing.length > 0) throw new Error(`missing; parsed ${JSON.stringify(fields)}`);
    const ordered: Record<string, unknown> = {};
    for (const n of signature.outputNames) ordered[n] = fields[n];
    return ordered;
  }

  it("gives the same fields and errors as the line-based parse on random replies", () => {
    const sigs = [
      Signature.parse("question -> reasoning, answer: int"),
      Signature.parse("q -> a: float, b: bool, c: list[int], d: str"),
      Signature.parse("q -> x: dict[str, int], y: Literal['a', 'b']"),
    ];
    const adapter = new ChatAdapter();
    let seed = 11;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
    const names = ["reasoning", "answer", "a", "b", "c", "d", "x", "y", "completed", "bogus", "", "a b", "é", "answers", "ans"];
    const values = ["42", " 42 ", "4_2", "3.5", "True", "[1, 2]", "{'k': 1}", '{"k": 2}', "'a'", "```json\n[1]\n```", "", "  ", "text\nmore", "None", "x\u00a0", "[1,", "[[ ## answer ## ]]", "x [[ ## a ## ]] y", "\n", " [[ ## b ## ]] True"];
    const good: Record<string, string[]> = { answer: ["42", " 7", "1_000"], a: ["1.5", "2"], b: ["True", "false"], c: ["[1, 2]", "[]"], x: ['{"k": 1}'], y: ["a", "'b'"], reasoning: ["r", "multi\nline  "], d: ["s", ""] };
    const seps = ["\n", "\n", "\n", "\n\n", "\r\n", "\r", "\u2028", "\v", "\x1c", "\x1f", "\x85", "\n \n"];
    let ok = 0;
    for (let t = 0; t < 20000; t++) {
      const sig = sigs[t % 3];
      const order = [...sig.outputNames, ...(rnd() < 0.5 ? ["completed"] : [])];
      if (rnd() < 0.2) order.reverse();
      const count = rnd() < 0.7 ? order.length : Math.floor(rnd() * 6);
      let c = rnd() < 0.2 ? pick(values) + pick(seps) : "";
      for (let i = 0; i < count; i++) {
        const nm = count === order.length && rnd() < 0.9 ? order[i] : pick(names);
        const lead = rnd() < 0.85 ? "" : pick([" ", "\t", "\u00a0", "x"]);
        const hdr = rnd() < 0.9 ? `[[ ## ${nm} ## ]]` : pick(["[[ ##  x ## ]]", "[[ ## x ##]]", "text [[ ## answer ## ]]", "[[ ## answer ## ]][[ ## b ## ]]"]);
        c += lead + hdr + pick(["", "", " ", " " + pick(values), "]]", "  \t"]) + pick(seps);
        c += (good[nm] && rnd() < 0.8 ? pick(good[nm]) : pick(values)) + pick(seps) + (rnd() < 0.5 ? pick(values) + pick(seps) : "") + pick(["", "\n", "\n\n", "  \n"]);
      }
      if (rnd() < 0.1) c = c.trimEnd();
      let want: string;
      let got: string;
      try {
        want = JSON.stringify(referenceParse(sig, c));
        ok++;
      } catch (e) {
        want = `error ${(e as Error).message}`;
      }
      try {
        got = JSON.stringify(adapter.parse(sig, c));
      } catch (e) {
        const err = e as AdapterParseError;
        // Same failing field and value, or same fields parsed before the missing one.
        const m = /^Failed to parse field (\w+) with value ([\s\S]*) from the LM response\. Error message: ([\s\S]*?)\n\nAdapter ChatAdapter failed/.exec(err.message);
        got = m ? `error field ${m[1]} value ${m[2]}: ${m[3]}` : `error missing; parsed ${JSON.stringify(err.parsedResult)}`;
      }
      if (got !== want) throw new Error(`parse differs on ${JSON.stringify(c)}:\n  reference ${want}\n  ours      ${got}`);
    }
    expect(ok).toBeGreaterThan(300);
  });
});
