import { describe, expect, it } from "vitest";
import { Example, Prediction } from "../../src/index.js";
import { f1Score, normalizeText, resolveMetric } from "../../src/engine/evaluate/metrics.js";

const ex = (d: Record<string, unknown>) => new Example(d).withInputs("question");
const pred = (d: Record<string, unknown>) => new Prediction(d);

describe("metrics", () => {
  it("normalises like DSPy (case, punctuation, articles, spaces)", () => {
    expect(normalizeText("  The  Eiffel-Tower, in PARIS! ")).toBe("eiffeltower in paris");
    expect(normalizeText("an apple a day")).toBe("apple day");
  });

  it("exact_match / answer_exact_match accept any of several gold answers", async () => {
    const em = resolveMetric("exact_match");
    expect(await em(ex({ question: "q", answer: "Paris" }), pred({ answer: "paris." }))).toBe(true);
    expect(await em(ex({ question: "q", answer: ["Lyon", "The Paris"] }), pred({ answer: "Paris" }))).toBe(true);
    expect(await em(ex({ question: "q", answer: "Paris" }), pred({ answer: "Paris, France" }))).toBe(false);
    expect(await resolveMetric("answer_exact_match")(ex({ question: "q", answer: "4" }), pred({ answer: "4" }))).toBe(true);
  });

  it("f1 is SQuAD token F1", async () => {
    expect(f1Score("the cat sat", "cat sat down")).toBeCloseTo(0.8, 10);
    expect(f1Score("dog", "cat")).toBe(0);
    expect(await resolveMetric("f1")(ex({ question: "q", answer: "cat sat down" }), pred({ answer: "cat sat" }))).toBeCloseTo(0.8, 10);
  });

  it("contains, passage_match and numeric", async () => {
    expect(await resolveMetric("contains")(ex({ question: "q", answer: "Paris" }), pred({ answer: "It is Paris." }))).toBe(true);
    expect(await resolveMetric("passage_match:context")(ex({ question: "q", context: "Paris" }), pred({ context: ["x", "in paris y"] }))).toBe(true);
    const num = resolveMetric("numeric");
    expect(await num(ex({ question: "q", answer: 42 }), pred({ answer: "42." }))).toBe(true);
    expect(await num(ex({ question: "q", answer: "1,000" }), pred({ answer: 1000 }))).toBe(true);
    expect(await num(ex({ question: "q", answer: 42 }), pred({ answer: "forty" }))).toBe(false);
  });

  it("picks the compared field: explicit, 'answer', or the single shared label", async () => {
    const em = resolveMetric("exact_match");
    expect(await em(ex({ question: "q", label: "pos" }), pred({ label: "pos" }))).toBe(true);
    expect(await resolveMetric("exact_match:label")(ex({ question: "q", answer: "x", label: "pos" }), pred({ answer: "y", label: "pos" }))).toBe(true);
    expect(() => em(ex({ question: "q", a: 1, b: 2 }), pred({ a: 1, b: 2 }))).toThrow(/cannot tell which field to score/);
  });

  it("unknown metric names list the known ones", () => {
    expect(() => resolveMetric("nope")).toThrow(/unknown metric 'nope'; known: .*exact_match.*f1/);
  });
});
