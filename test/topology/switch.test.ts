// Runtime topology switch: hyparview -> full-mesh -> hyparview on a running cluster while
// acknowledged broadcasts flow over a lossy network. Failures start with the seed.
import { describe, it } from "vitest";
import { createRng } from "../../src/sim/index.js";
import type { FullMesh } from "../../topology/full-mesh.js";
import { expectFor, withSeed } from "../sim/helpers.js";
import { cluster, delivery, hv, hyparviewProblems, runUntil } from "./harness.js";

describe("setTopology at run time", () => {
  it("hyparview -> full-mesh -> hyparview under 1% loss loses no acknowledged broadcast", () => {
    const seed = 701;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const n = 120;
      const c = cluster({
        seed,
        n,
        topology: "hyparview",
        options: () => ({ expectedSize: n }),
        startSpreadMs: 3000,
        bootstrap: (i) => (i === 0 ? [] : [(Math.imul(i, 2654435761) >>> 0) % i]),
        network: { minLatencyMs: 2, maxLatencyMs: 20 },
        node: { reliable: true },
      });
      c.sim.run({ until: 5000 });
      runUntil(c, () => hyparviewProblems(c).length === 0, 500, 5000);
      ex(hyparviewProblems(c)).toEqual([]);
      // 1% message loss while broadcasts flow and both switches happen.
      c.sim.at(10_000, () => c.sim.setNetwork({ lossRate: 0.01 }));
      c.sim.at(50_000, () => c.sim.setNetwork(null));
      // Broadcasts every 100 ms from random nodes, for 40 s, across both switches.
      const rng = createRng(seed);
      const ids: string[] = [];
      for (let t = 10_000; t < 50_000; t += 100) c.sim.at(t, () => ids.push(c.broadcast(rng.int(n), { t })));
      // Every node switches to full-mesh within [15 s, 17 s), back to hyparview within [30 s, 32 s).
      for (let i = 0; i < n; i++) {
        c.sim.at(15_000 + rng.int(2000), () => c.node(i)!.setTopology("full-mesh"));
        c.sim.at(30_000 + rng.int(2000), () => c.node(i)!.setTopology("hyparview", { expectedSize: n }));
      }
      c.sim.run({ until: 27_000 });
      // Full mesh reached: everyone knows and is connected to everyone.
      for (let i = 0; i < n; i++) {
        ex(c.node(i)!.name).toBe("full-mesh");
        ex((c.node(i)!.manager as FullMesh).members().length, `members of ${i}`).toBe(n - 1);
        ex(c.sim.degree(i), `connections of ${i}`).toBe(n - 1);
      }
      c.sim.run({ until: 50_000 });
      const t = runUntil(c, () => hyparviewProblems(c).length === 0, 1000, 20_000);
      ex(hyparviewProblems(c).slice(0, 5)).toEqual([]);
      ex(t).toBeLessThanOrEqual(70_000);
      c.sim.run({ until: Math.max(c.sim.now, 65_000) });
      // Unwanted full-mesh connections were closed by the transient GC.
      // (Shuffle replies and repair probes open short-lived connections too.)
      let sum = 0;
      for (let i = 0; i < n; i++) {
        sum += c.sim.degree(i);
        ex(c.sim.degree(i), `connections of ${i} back on hyparview`).toBeLessThanOrEqual(3 * hv(c, i).cfg.activeSize);
      }
      ex(sum / n).toBeLessThanOrEqual(1.5 * hv(c, 0).cfg.activeSize);
      ex(ids.length).toBe(400);
      let acked = 0;
      for (const id of ids) {
        const d = delivery(c, id);
        if (c.acked.has(id)) acked++;
        // Stronger than "no acknowledged message lost": every broadcast reached every node, once.
        ex(d.missing, `broadcast ${id} (acked: ${c.acked.has(id)})`).toEqual([]);
        ex(d.duplicates, `duplicates of ${id}`).toBe(0);
      }
      ex(acked).toBe(ids.length);
    });
  });
});
