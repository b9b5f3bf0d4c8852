// `dspex sim-lm` as a process: prints its URL (and JSON), serves, stops on SIGTERM; bad flags exit 2.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { request } from "undici";
import { parseSimLmFlags } from "../../src/cli/commands/sim-lm.js";
import { CliError } from "../../src/cli/errors.js";

const runner = fileURLToPath(new URL("./fixtures/run-cli.ts", import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", runner, "sim-lm", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const firstLine = new Promise<string>((resolve, reject) => {
    const onData = () => {
      const i = out.indexOf("\n");
      if (i >= 0) {
        child.stdout.off("data", onData);
        resolve(out.slice(0, i));
      }
    };
    child.stdout.on("data", onData);
    void exited.then(() => reject(new Error(`exited before printing: ${err}`)));
  });
  firstLine.catch(() => undefined); // tests of failing runs never read it
  return { child, exited, firstLine, output: () => ({ out, err }) };
}

describe("dspex sim-lm", () => {
  it("serves until SIGTERM, printing a JSON line with the URL", async () => {
    const p = run(["--port", "0", "--json", "--seed", "3", "--latency", "1", "--base-accuracy", "1"]);
    const line = JSON.parse(await p.firstLine);
    expect(line).toMatchObject({ event: "listening", url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    expect(line.options).toMatchObject({ seed: 3, latencyMs: 1, baseAccuracy: 1, host: "127.0.0.1" });
    const r = await request(`${line.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "What is 20 + 22?" }] }),
    });
    const body = (await r.body.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0].message.content).toBe("42");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.output().out).toContain('"event":"closed"');
  });

  it("prints a plain URL line without --json", async () => {
    const p = run(["--port", "0"]);
    expect(await p.firstLine).toMatch(/^sim-lm listening on http:\/\/127\.0\.0\.1:\d+ /);
    p.child.kill("SIGINT");
    expect(await p.exited).toBe(0);
  });

  it("exits 2 naming the flag on a bad value", async () => {
    const p = run(["--latency", "abc"]);
    expect(await p.exited).toBe(2);
    expect(p.output().err).toContain("--latency must be a number of milliseconds >= 0, e.g. --latency 50");
  });

  it("validates every flag with an actionable message", () => {
    const bad = (flags: Record<string, string>, re: RegExp) => {
      try {
        parseSimLmFlags(flags);
        throw new Error("expected a CliError");
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        expect((e as CliError).exitCode).toBe(2);
        expect((e as CliError).message).toMatch(re);
      }
    };
    bad({ errorRate: "1.5" }, /--error-rate must be a probability from 0 to 1, e.g. --error-rate 0.2/);
    bad({ port: "70000" }, /--port must be an integer from 0 to 65535/);
    bad({ capacity: "2.5" }, /--capacity must be an integer/);
    bad({ seed: "x" }, /--seed must be an integer/);
    bad({ faultMix: "rate_limit=1,boom=2" }, /--fault-mix must be .* \(got "boom=2"\)/);
    const ok = parseSimLmFlags({ port: "0", latency: "5", capacity: "4", errorRate: "0.2", faultMix: "rate_limit=3, drop=1", instructionKeywords: "a, b" });
    expect(ok.options).toEqual({
      port: 0,
      host: "127.0.0.1",
      latencyMs: 5,
      capacity: 4,
      errorRate: 0.2,
      faultMix: { rate_limit: 3, drop: 1 },
      instructionKeywords: ["a", "b"],
    });
  });
});
