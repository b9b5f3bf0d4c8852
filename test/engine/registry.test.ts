import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DspexError, Registry, getRegistry, programFromJSON } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "dspex-plugin-"));

describe("plugins", () => {
  it("a local ES module registers modules, tools and metrics by name", async () => {
    const path = join(dir, "plugin.mjs");
    writeFileSync(
      path,
      `export function register(registry) {
        registry.metrics.set("len_match", (ex, pred) => String(pred.get("a")).length === String(ex.get("a")).length);
        registry.tools.set("echo", { name: "echo", args: { text: { type: "string" } }, fn: ({ text }) => text });
        registry.modules.set("EchoPredict", (config, r) => r.buildModule({ kind: "Predict", config }));
      }`,
    );
    const r = getRegistry();
    await r.loadPlugin(path);
    await r.loadPlugin(path); // loading twice is a no-op, not a conflict
    expect(r.metrics.has("len_match")).toBe(true);
    expect(r.tools.get("echo").name).toBe("echo");
    const m = programFromJSON({
      metadata: { dependency_versions: {} },
      dspex: { version: 1, program: { kind: "EchoPredict", config: { signature: "q -> a" } } },
      traces: [],
      train: [],
      demos: [],
      signature: { instructions: "x", fields: [{ prefix: "Q:", description: "q" }, { prefix: "A:", description: "a" }] },
      lm: null,
    });
    expect(m.namedPredictors()).toHaveLength(1);
  });

  it.each([
    ["https://example.com/p.js", /not a local file/],
    ["/nonexistent/plugin.mjs", /could not load plugin/],
  ])("rejects %s", async (p, msg) => {
    await expect(new Registry().loadPlugin(p)).rejects.toThrow(msg);
  });

  it("requires a register function and reports its failures", async () => {
    const noFn = join(dir, "nofn.mjs");
    writeFileSync(noFn, "export const x = 1;");
    await expect(new Registry().loadPlugin(noFn)).rejects.toThrow(/must export a function 'register/);
    const throws = join(dir, "throws.mjs");
    writeFileSync(throws, "export default function () { throw new Error('kaput'); }");
    const err = await new Registry().loadPlugin(throws).catch((e) => e);
    expect(err).toBeInstanceOf(DspexError);
    expect(err.message).toMatch(/failed while registering: kaput/);
  });

  it("refuses silent overwrites and lists known names on lookup errors", () => {
    const r = new Registry();
    r.metrics.set("m", () => 1);
    expect(() => r.metrics.set("m", () => 0)).toThrow(/already registered/);
    expect(() => r.metrics.get("x")).toThrow(/unknown metric 'x'; known: m/);
  });
});
