// The CLI as a user runs it: real processes, the built-in sim-lm on 127.0.0.1.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { ChainOfThought } from "../../src/index.js";
import { arithmeticSet } from "../../src/cli/commands/demo.js";

const run = promisify(execFile);
const bin = join(__dirname, "../../bin/dspex.js");
async function dspex(args: string[]) {
  try {
    const r = await run(process.execPath, [bin, ...args], { timeout: 60_000, env: { ...process.env, DSPEX_LM: "" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const dir = mkdtempSync(join(tmpdir(), "dspex-cli-"));
const prog = join(dir, "prog.json");
const train = join(dir, "train.jsonl");
const dev = join(dir, "dev.csv");

beforeAll(async () => {
  await new ChainOfThought("question -> answer").save(prog);
  writeFileSync(train, arithmeticSet(30, 11).map((e) => JSON.stringify(e.toDict())).join("\n") + "\n");
  writeFileSync(dev, "question,answer\n" + arithmeticSet(40, 12).map((e) => `"${e.get("question")}",${e.get("answer")}`).join("\n") + "\n");
});

describe("dspex eval / compile", () => {
  it("eval prints a JSON summary and writes per-example results", async () => {
    const results = join(dir, "res.jsonl");
    const r = await dspex(["eval", "--program", prog, "--data", dev, "--metric", "exact_match", "--lm", "sim", "--sim-latency", "0", "--results", results, "--json"]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ metric: "exact_match", total: 40, errors: 0 });
    expect(s.score).toBeGreaterThan(0);
    expect(readFileSync(results, "utf8").trim().split("\n")).toHaveLength(40);
    expect(existsSync(`${results}.partial`)).toBe(false);
  });

  it("compile (bootstrap) saves a program that scores higher than the original", async () => {
    const out = join(dir, "compiled.json");
    const c = await dspex(["compile", "--program", prog, "--data", train, "--metric", "exact_match", "--optimizer", "bootstrap", "--lm", "sim", "--sim-latency", "0", "--out", out, "--json"]);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout).demos.predict).toBeGreaterThan(0);
    const score = async (p: string) => JSON.parse((await dspex(["eval", "--program", p, "--data", dev, "--metric", "exact_match", "--lm", "sim", "--sim-latency", "0", "--json"])).stdout).score;
    expect(await score(out)).toBeGreaterThan(await score(prog));
  });

  it.each([
    [["eval", "--program", "PROG", "--data", "DEV", "--metric", "nope", "--lm", "sim"], /unknown metric 'nope'; known: .*exact_match/],
    [["compile", "--program", "PROG", "--data", "TRAIN", "--metric", "exact_match", "--optimizer", "magic", "--lm", "sim"], /unknown optimizer 'magic'; valid: labeled, bootstrap, random-search, mipro/],
    [["eval", "--program", "PROG", "--data", "DEV", "--metric", "exact_match"], /no LM chosen: pass --lm/],
    [["eval", "--program", "PROG", "--data", "DEV", "--metric", "exact_match", "--lm", "sim", "--concurrency", "0"], /--concurrency must be an integer >= 1/],
    [["eval", "--program", "PROG", "--data", "EMPTY", "--metric", "exact_match", "--lm", "sim"], /empty\.jsonl: no examples/],
    [["eval", "--program", "PROG", "--data", "WRONG", "--metric", "exact_match", "--lm", "sim"], /wrong\.jsonl:1: missing input field\(s\) 'question'/],
    [["eval", "--program", "BADPROG", "--data", "DEV", "--metric", "exact_match", "--lm", "sim"], /bad\.json: not valid JSON/],
  ])("bad input %j exits 2 with a clear message", async (args, msg) => {
    writeFileSync(join(dir, "empty.jsonl"), "");
    writeFileSync(join(dir, "wrong.jsonl"), '{"q": "What is 1 + 1?", "answer": "2"}\n');
    writeFileSync(join(dir, "bad.json"), "{");
    const map: Record<string, string> = { PROG: prog, DEV: dev, TRAIN: train, EMPTY: join(dir, "empty.jsonl"), WRONG: join(dir, "wrong.jsonl"), BADPROG: join(dir, "bad.json") };
    const r = await dspex(args.map((a) => map[a] ?? a));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(msg);
  });
});
