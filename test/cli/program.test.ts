import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ChainOfThought } from "../../src/index.js";

const run = promisify(execFile);
const bin = join(__dirname, "../../bin/dspex.js");

async function dspex(args: string[]) {
  try {
    const r = await run(process.execPath, [bin, ...args], { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("dspex program show", () => {
  const dir = mkdtempSync(join(tmpdir(), "dspex-cli-"));

  it("summarises a saved program", async () => {
    const cot = new ChainOfThought("question -> answer: int");
    cot.predict.demos = [{ question: "1+1?", answer: 2 }];
    const path = join(dir, "p.json");
    await cot.save(path);
    const r = await dspex(["program", "show", path, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      file: path,
      kind: "ChainOfThought",
      rebuildable: true,
      predictors: [
        {
          path: "predict",
          signature: "question: str -> reasoning: str, answer: int",
          instructions: "Given the fields `question`, produce the fields `answer`.",
          demos: 1,
        },
      ],
    });
  });

  it("bad files and bad commands exit 2 with one clear line", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ nope");
    const r = await dspex(["program", "show", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.json: not valid JSON/);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
    expect((await dspex(["no-such-command"])).code).toBe(2);
  });
});
