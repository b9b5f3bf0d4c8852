import { afterEach, describe, expect, it } from "vitest";
import { ChatAdapter, configure, Predict, settings, withSettings, JSONAdapter } from "../../src/index.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";
import { ScriptedLM } from "./helpers.js";

afterEach(() => resetSettingsForTests());

describe("configure and scoped overrides", () => {
  it("overrides are visible only inside their scope, even across awaits and interleaving", async () => {
    const global = new ScriptedLM(["[[ ## a ## ]]\nglobal"], "test/global");
    configure({ lm: global });
    const lms = Array.from({ length: 20 }, (_, i) => new ScriptedLM([`[[ ## a ## ]]\nlm${i}`], `test/lm${i}`));
    const p = new Predict("q -> a");
    // Each task yields at random points; a leaked override would answer with another task's LM.
    const results = await Promise.all(
      lms.map((lm, i) =>
        withSettings({ lm }, async () => {
          await new Promise((r) => setTimeout(r, (i * 7) % 5));
          const inner = settings().lm;
          const pred = await p.call({ q: String(i) });
          await new Promise((r) => setImmediate(r));
          return { i, model: inner?.model, after: settings().lm?.model, a: pred.get("a") };
        }),
      ),
    );
    for (const r of results) {
      expect(r.model).toBe(`test/lm${r.i}`);
      expect(r.after).toBe(`test/lm${r.i}`);
      expect(r.a).toBe(`lm${r.i}`);
    }
    expect(settings().lm?.model).toBe("test/global");
    expect((await p.call({ q: "x" })).get("a")).toBe("global");
    expect(global.requests).toHaveLength(1);
  });

  it("nested scopes layer and unwind; per-call options win over scopes", async () => {
    const a = new ScriptedLM(['{"a": "A"}'], "test/a");
    const b = new ScriptedLM(["[[ ## a ## ]]\nB"], "test/b");
    await withSettings({ lm: a, adapter: new JSONAdapter() }, async () => {
      expect(settings().adapter?.name).toBe("JSONAdapter");
      await withSettings({ lm: b }, async () => {
        expect(settings().lm).toBe(b);
        expect(settings().adapter?.name).toBe("JSONAdapter");
      });
      expect(settings().lm).toBe(a);
      const pred = await new Predict("q -> a").call({ q: "x" });
      expect(pred.get("a")).toBe("A");
      const pred2 = await new Predict("q -> a").call({ q: "x" }, { lm: b, adapter: new ChatAdapter() });
      expect(b.requests).toHaveLength(1);
      expect(pred2.get("a")).toBe("B");
      expect(settings().adapter?.name).toBe("JSONAdapter");
    });
    expect(settings().lm).toBeUndefined();
  });
});
