import { describe, expect, it } from "vitest";
import { dedent, pyFloatRepr, pyJsonDumps, pyRepr, pyStr } from "../../src/engine/python.js";
import { T } from "../../src/index.js";

describe("Python spellings", () => {
  it.each([
    [1, "1.0"],
    [0.1, "0.1"],
    [1e16, "1e+16"],
    [1.5e-7, "1.5e-07"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [123456.789, "123456.789"],
    [-2.5, "-2.5"],
    [1e15, "1000000000000000.0"],
  ])("float repr of %d is %s", (x, s) => {
    expect(pyFloatRepr(x)).toBe(s);
  });

  it("str() of scalars", () => {
    expect(pyStr(true)).toBe("True");
    expect(pyStr(null)).toBe("None");
    expect(pyStr(3)).toBe("3");
    expect(pyStr(3, T.float())).toBe("3.0");
  });

  it("repr() of containers", () => {
    expect(pyRepr({ query: { type: "string" }, n: 1, ok: true, none: null, s: "it's" })).toBe(
      `{'query': {'type': 'string'}, 'n': 1, 'ok': True, 'none': None, 's': "it's"}`,
    );
  });

  it("json.dumps separators, indent and ensure_ascii", () => {
    expect(pyJsonDumps({ a: [1, 2], b: "é" })).toBe('{"a": [1, 2], "b": "\\u00e9"}');
    expect(pyJsonDumps({ a: [1, 2], b: "é" }, { ensureAscii: false })).toBe('{"a": [1, 2], "b": "é"}');
    expect(pyJsonDumps({ a: [1], b: {} }, { indent: 2 })).toBe('{\n  "a": [\n    1\n  ],\n  "b": {}\n}');
    expect(pyJsonDumps([1, 2.5], {}, T.list(T.float()))).toBe("[1.0, 2.5]");
  });

  it("textwrap.dedent", () => {
    expect(dedent("    a\n      b\n\n    c")).toBe("a\n  b\n\nc");
    expect(dedent("a\n  b")).toBe("a\n  b");
  });
});
