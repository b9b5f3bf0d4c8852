// HyParView + Plumtree in the simulator. Every failure message starts with the seed.
import { describe, it } from "vitest";
import { expectFor, withSeed } from "../sim/helpers.js";
import { activeStats, broadcastMessages, cluster, components, crashFraction, delivery, hv, hyparviewProblems, runUntil, type Cluster } from "./harness.js";

/** Bootstrap through a pseudo-random earlier node. */
const randomEarlier = (i: number): number[] => (i === 0 ? [] : [(Math.imul(i, 2654435761) >>> 0) % i]);

function hyparviewCluster(seed: number, n: number, extra: Partial<Parameters<typeof cluster>[0]> = {}): Cluster {
  return cluster({ seed, n, topology: "hyparview", options: () => ({ expectedSize: n }), startSpreadMs: 10_000, bootstrap: randomEarlier, ...extra });
}

/** Converge (joins over 10 s), then check views, then broadcast. Bound: 25 s virtual from the first start. */
function converge(c: Cluster, seed: number): void {
  const ex = expectFor(seed);
  c.sim.run({ until: 15_000 });
  const t = runUntil(c, () => hyparviewProblems(c).length === 0, 1000, 10_000);
  ex(hyparviewProblems(c).slice(0, 5), `not converged by t=25s`).toEqual([]);
  ex(t).toBeLessThanOrEqual(25_000);
}

function broadcastCheck(c: Cluster, seed: number, from: number, min: number): void {
  const ex = expectFor(seed);
  const id = c.broadcast(from, { hello: from });
  c.sim.run({ duration: 3000 });
  const d = delivery(c, id);
  ex(d.ratio, `broadcast from ${from} missed ${d.missing.slice(0, 10).join(",")}`).toBeGreaterThanOrEqual(min);
  ex(d.duplicates, "duplicate deliveries").toBe(0);
}

/**
 * Converge n nodes; views bounded and connections ~ the active view; broadcasts reach
 * everyone; crash half at once: one overlay again within 5 s, broadcasts reach >= 99%.
 */
function largeOverlay(seed: number, n: number, sizes: { activeSize: number; passiveSize: number }): void {
  withSeed(seed, () => {
    const ex = expectFor(seed);
    const c = hyparviewCluster(seed, n);
    converge(c, seed);
    const cfg = hv(c, 0).cfg;
    ex(cfg.activeSize).toBe(sizes.activeSize);
    ex(cfg.passiveSize).toBe(sizes.passiveSize);
    for (const i of c.live()) ex(hv(c, i).active.size).toBeLessThanOrEqual(cfg.activeSize);
    ex(activeStats(c).mean, "open connections per node").toBeLessThanOrEqual(2 * cfg.activeSize);
    broadcastCheck(c, seed, 17, 1);
    broadcastCheck(c, seed, n - 1, 1);
    // Crash half the nodes at once (connection loss is seen after one link latency).
    const victims = crashFraction(c, 0.5, seed);
    ex(victims.length).toBe(n / 2);
    const t0 = c.sim.now;
    const t = runUntil(c, () => hyparviewProblems(c).length === 0, 250, 5000);
    ex(hyparviewProblems(c).slice(0, 5), "not reconnected within 5 s of the crash").toEqual([]);
    ex(t! - t0).toBeLessThanOrEqual(5000);
    broadcastCheck(c, seed, c.live()[3]!, 0.99);
    broadcastCheck(c, seed, c.live()[Math.floor(n * 0.4)]!, 0.99);
  });
}

describe("hyparview", () => {
  it("1,000 nodes: connected, symmetric active views; 50% crash reconnects within 5 s and broadcast reaches >= 99%", () => {
    largeOverlay(101, 1000, { activeSize: 4, passiveSize: 24 }); // log10(1000) + 1, 6x that
  });

  it("10,000 nodes: connected, symmetric active views; 50% crash reconnects within 5 s and broadcast reaches >= 99%", { timeout: 300_000 }, () => {
    largeOverlay(10_001, 10_000, { activeSize: 5, passiveSize: 30 }); // the paper's defaults at this size
  });

  it("1,000 nodes, 50% crash, more seeds: no node is left with an empty active view; one overlay within 5 s", () => {
    // Regression: young nodes (started less than a shuffle period before the crash) had 1-2
    // passive entries; when all of them died the node stayed isolated for good (with the
    // simulator's hang-up fix, seeds 101-104 never reconnected). After the fix: 500-1000 ms
    // on seeds 101-112. The 5 s bound leaves room for a timed-out request (2 s) and a retry.
    for (const seed of [102, 103, 104, 105]) {
      withSeed(seed, () => {
        const ex = expectFor(seed);
        const c = hyparviewCluster(seed, 1000);
        converge(c, seed);
        crashFraction(c, 0.5, seed);
        const t0 = c.sim.now;
        const t = runUntil(c, () => hyparviewProblems(c).length === 0, 250, 5000);
        ex(hyparviewProblems(c).slice(0, 5), "not reconnected within 5 s of the crash").toEqual([]);
        ex(t! - t0).toBeLessThanOrEqual(5000);
      });
    }
  });

  it("2,000 nodes: connected, symmetric views, broadcast reaches every node; same seed replays", () => {
    const seed = 202;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = hyparviewCluster(seed, 2000);
      converge(c, seed);
      broadcastCheck(c, seed, 1234, 1);
      const before = broadcastMessages(c);
      broadcastCheck(c, seed, 5, 1);
      // Plumtree after the tree formed: ~N eager + batched IHAVEs per broadcast.
      ex(broadcastMessages(c) - before).toBeLessThan(2000 * 4);
      // Replay: the same seed and setup give the same event hash.
      const d = hyparviewCluster(seed, 300);
      const e = hyparviewCluster(seed, 300);
      d.sim.run({ until: 12_000 });
      e.sim.run({ until: 12_000 });
      ex(d.sim.hash).toBe(e.sim.hash);
    });
  });

  it("a dead node leaves every active view within 1 s (connection loss) and every passive view within passiveMaxAgeMs + 1 s", () => {
    const seed = 303;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = hyparviewCluster(seed, 300, { options: () => ({ expectedSize: 300, passiveMaxAgeMs: 30_000 }) });
      converge(c, seed);
      const dead = [7, 70, 170, 250, 299];
      for (const d of dead) c.sim.crash(d);
      const t0 = c.sim.now;
      c.sim.run({ until: t0 + 1000 });
      for (const i of c.live()) for (const d of dead) ex(hv(c, i).active.has(d), `${d} still in ${i}'s active view`).toBe(false);
      c.sim.run({ until: t0 + 31_000 });
      for (const i of c.live()) for (const d of dead) ex(hv(c, i).passive.has(d), `${d} still in ${i}'s passive view`).toBe(false);
      ex(hyparviewProblems(c)).toEqual([]);
    });
  });

  it("a silently dead node (no connection loss) is detected by ping / ping-req and leaves active views within 12 s", () => {
    const seed = 304;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      // Crashes are never signalled by the network: only the SWIM-style detector finds them.
      const c = hyparviewCluster(seed, 300, { crashDetectionMs: 3_600_000 });
      converge(c, seed);
      const dead = [11, 111, 211];
      const holders = c.live().filter((i) => dead.some((d) => hv(c, i).active.has(d)));
      ex(holders.length).toBeGreaterThan(0);
      for (const d of dead) c.sim.crash(d);
      const t0 = c.sim.now;
      // Bound: (2 (activeSize - 1) + 2) * probeMs (its turn in the round-robin, direct + indirect
      // probe) + suspicionMs + one tick of phase = (6 + 2) + 3 + 1 = 12 s for activeSize 4.
      const t = runUntil(c, () => c.live().every((i) => dead.every((d) => !hv(c, i).active.has(d))), 250, 12_000);
      ex(t, "dead node still in an active view after 12 s").toBeDefined();
      ex(t! - t0).toBeLessThanOrEqual(12_000);
      c.sim.run({ duration: 5000 });
      ex(hyparviewProblems(c)).toEqual([]);
    });
  });

  it("partition then heal: each side stays connected, and the overlay is one again within 20 s of the heal", () => {
    const seed = 305;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = hyparviewCluster(seed, 400);
      converge(c, seed);
      const a = c.live().filter((i) => i < 150);
      const b = c.live().filter((i) => i >= 150);
      c.sim.partition([a, b]);
      c.sim.run({ duration: 30_000 });
      // Each side repaired itself into a connected overlay.
      ex(components(a, (i) => hv(c, i).active), "side A").toBe(1);
      ex(components(b, (i) => hv(c, i).active), "side B").toBe(1);
      for (const i of a) for (const j of hv(c, i).active) ex(a.includes(j as number), `${i} -> ${String(j)} across the partition`).toBe(true);
      const id0 = c.broadcast(3);
      c.sim.run({ duration: 3000 });
      ex(delivery(c, id0).missing.length).toBe(b.length); // the other side did not get it
      c.sim.heal();
      const t0 = c.sim.now;
      const t = runUntil(c, () => hyparviewProblems(c).length === 0, 1000, 20_000);
      ex(hyparviewProblems(c).slice(0, 5), "not one overlay 20 s after heal").toEqual([]);
      ex(t! - t0).toBeLessThanOrEqual(20_000);
      broadcastCheck(c, seed, 3, 1);
      broadcastCheck(c, seed, 333, 1);
    });
  });

  it("an isolated node re-joins after the heal", () => {
    const seed = 306;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = hyparviewCluster(seed, 200);
      converge(c, seed);
      const lonely = 42;
      const joins0 = hv(c, lonely).stats.joins;
      c.sim.partition([[lonely]]);
      c.sim.run({ duration: 20_000 });
      ex(hv(c, lonely).active.size).toBe(0);
      // It keeps trying, with backoff (250 ms doubling to 8 s: ~7 JOINs in 20 s; without the
      // backoff it re-sent one per failed dial, i.e. hundreds).
      const joins = hv(c, lonely).stats.joins - joins0;
      ex(joins, "JOIN attempts while isolated").toBeGreaterThanOrEqual(4);
      ex(joins, "JOIN attempts while isolated").toBeLessThanOrEqual(12);
      c.sim.heal();
      const t0 = c.sim.now;
      const t = runUntil(c, () => hyparviewProblems(c).length === 0, 500, 15_000);
      ex(hyparviewProblems(c).slice(0, 5)).toEqual([]);
      ex(t! - t0).toBeLessThanOrEqual(15_000);
      broadcastCheck(c, seed, lonely, 1);
    });
  });

  it("acknowledged broadcast reaches every live node exactly once over a 5% lossy network, and the origin sees it acknowledged", () => {
    const seed = 307;
    withSeed(seed, () => {
      const ex = expectFor(seed);
      const c = hyparviewCluster(seed, 300, { network: { minLatencyMs: 2, maxLatencyMs: 20, lossRate: 0.05 } });
      c.sim.run({ until: 25_000 });
      ex(components(c.live(), (i) => hv(c, i).active)).toBe(1);
      const ids: string[] = [];
      for (let k = 0; k < 20; k++) {
        ids.push(c.broadcast((k * 37) % 300, { k }, true));
        c.sim.run({ duration: 100 });
      }
      c.sim.run({ duration: 10_000 });
      for (const id of ids) {
        const d = delivery(c, id);
        ex(d.missing, `reliable ${id}`).toEqual([]);
        ex(d.duplicates).toBe(0);
        ex(c.acked.has(id), `origin never saw ${id} acknowledged`).toBe(true);
      }
    });
  });
});
