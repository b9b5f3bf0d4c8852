import { describe, expect, it } from "vitest";
import {
  createRng,
  fromStep,
  randomFaultPlan,
  SimLimitError,
  SimProtocolError,
  Simulator,
  type NodeEvent,
  type ProtocolNode,
  type SimMetrics,
  type StepNode,
} from "../../src/sim/index.js";
import { expectFor, seedIt, Flood, inversions, Pinger, Ponger, ringNeighbours, type FloodMsg, type PingMsg } from "./helpers.js";

/** A lossy, faulty flood scenario; returns everything that should be reproducible. */
function floodScenario(seed: number): { metrics: Omit<SimMetrics, "wallTimeMs">; seen: number[]; trace: string[] } {
  const violations: string[] = [];
  const trace: string[] = [];
  const sim = new Simulator<FloodMsg>({
    seed,
    network: { minLatencyMs: 2, maxLatencyMs: 40, lossRate: 0.05, duplicateRate: 0.02, reorderRate: 0.1, reorderDelayMs: 30 },
    trace: (r) => {
      if (trace.length < 2000) trace.push(`${r.kind}@${r.time}:${r.kind === "event" ? `${String(r.node)}/${r.event.type}` : r.kind === "drop" ? r.cause : r.fault.type}`);
    },
  });
  const n = 40;
  const rumors = Array.from({ length: 20 }, (_, k) => ({ at: 500 * k + 100, id: k, origin: k % n }));
  for (let i = 0; i < n; i++) sim.addNode(i, () => new Flood(ringNeighbours(n, i), violations, rumors.filter((r) => r.origin === i)));
  sim.schedule(randomFaultPlan(seed, { nodes: sim.ids(), durationMs: 8000, crashes: 6, partitions: 2, degradations: 1 }));
  sim.run({ until: 12_000 });
  const { wallTimeMs: _wall, ...metrics } = sim.metrics();
  const seen = sim.ids().map((id) => sim.node<Flood>(id)?.seen.size ?? -1);
  expectFor(seed, "violations")(violations).toEqual([]);
  return { metrics, seen, trace };
}

describe("determinism", () => {
  it("same seed gives the same event hash, metrics and trace", () => {
    for (const seed of [1, 2, 99]) {
      const a = floodScenario(seed);
      const b = floodScenario(seed);
      const ex = expectFor(seed);
      ex(a.metrics.hash).toBe(b.metrics.hash);
      ex(a.metrics).toEqual(b.metrics);
      ex(a.seen).toEqual(b.seen);
      ex(a.trace).toEqual(b.trace);
      ex(a.metrics.handlerCalls).toBeGreaterThan(1000);
    }
  });

  seedIt("different seeds give different runs", "10..15", () => {
    const hashes = new Set<string>();
    for (let seed = 10; seed < 16; seed++) hashes.add(floodScenario(seed).metrics.hash);
    expect(hashes.size).toBe(6);
  });

  seedIt("string seeds work and differ from numeric ones", "x/1", () => {
    const run = (seed: number | string): string => {
      const sim = new Simulator<PingMsg>({ seed, connectionless: true });
      sim.addNode("a", () => new Pinger("b", 50, 10));
      sim.addNode("b", () => new Ponger());
      sim.run({ until: 1000 });
      return sim.hash;
    };
    expect(run("x")).toBe(run("x"));
    expect(run("1")).not.toBe(run(1));
  });

  seedIt("the rng is reproducible and roughly uniform", "5/buckets", () => {
    const a = createRng(5);
    const b = createRng(5);
    const xs = Array.from({ length: 10_000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 10_000 }, () => b.next()));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.49);
    expect(mean).toBeLessThan(0.51);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const buckets = new Array(10).fill(0);
    const r = createRng("buckets");
    for (let i = 0; i < 100_000; i++) buckets[r.int(10)]++;
    for (const c of buckets) expect(Math.abs(c - 10_000)).toBeLessThan(500);
  });
});

describe("links", () => {
  it("respects latency bounds, including per-link overrides", () => {
    const seed = 3;
    const ex = expectFor(seed);
    const sim = new Simulator<PingMsg>({ seed, connectionless: true, network: { minLatencyMs: 5, maxLatencyMs: 25 } });
    for (let i = 0; i < 10; i++) {
      sim.addNode(`ping${i}`, () => new Pinger(`pong${i}`, 200, 7));
      sim.addNode(`pong${i}`, () => new Ponger());
    }
    sim.setLink("ping0", "pong0", { minLatencyMs: 100, maxLatencyMs: 120 });
    sim.setLink("ping1", "pong1", { minLatencyMs: 50, maxLatencyMs: 50 }, false); // one direction only
    sim.run({ until: 5000 });
    for (let i = 0; i < 10; i++) {
      const pong = sim.node<Ponger>(`pong${i}`)!;
      const ping = sim.node<Pinger>(`ping${i}`)!;
      ex(pong.delays.length).toBe(200);
      ex(ping.rtts.length).toBe(200);
      const [lo, hi] = i === 0 ? [100, 120] : i === 1 ? [50, 50] : [5, 25];
      for (const d of pong.delays) {
        ex(d).toBeGreaterThanOrEqual(lo);
        ex(d).toBeLessThanOrEqual(hi);
      }
      const [rlo, rhi] = i === 0 ? [200, 240] : i === 1 ? [55, 75] : [10, 50];
      for (const r of ping.rtts) {
        ex(r).toBeGreaterThanOrEqual(rlo);
        ex(r).toBeLessThanOrEqual(rhi);
      }
      if (i >= 2) ex(Math.max(...pong.delays) - Math.min(...pong.delays)).toBeGreaterThan(15); // actually spread
    }
  });

  it("loses and duplicates messages at roughly the configured rates", () => {
    for (const seed of [11, 12]) {
      const ex = expectFor(seed);
      const sim = new Simulator<PingMsg>({ seed, connectionless: true, network: { lossRate: 0.1, duplicateRate: 0.05 } });
      sim.addNode(0, () => new Pinger(1, 20_000, 1));
      sim.addNode(1, () => new Ponger());
      sim.run({ until: 30_000 });
      const m = sim.metrics();
      const pong = sim.node<Ponger>(1)!;
      // Pings: 20,000 sent. Binomial sd of the loss count is ~42, so +-1% (200) is > 4 sd.
      const lossRate = m.messages.dropped.loss / m.messages.sent;
      ex(lossRate).toBeGreaterThan(0.09);
      ex(lossRate).toBeLessThan(0.11);
      const dupRate = m.messages.duplicated / (m.messages.sent - m.messages.dropped.loss);
      ex(dupRate).toBeGreaterThan(0.04);
      ex(dupRate).toBeLessThan(0.06);
      // Accounting: every copy is delivered or dropped.
      ex(m.messages.delivered + m.messages.dropped.total).toBe(m.messages.sent + m.messages.duplicated);
      ex(new Set(pong.seqs).size).toBeLessThan(20_000);
      ex(pong.seqs.length).toBeGreaterThan(new Set(pong.seqs).size); // duplicates arrived
    }
  });

  it("reorders with random latency or reorderRate, and keeps FIFO order when asked", () => {
    const seed = 21;
    const ex = expectFor(seed);
    const datagrams = (network: object): number[] => {
      const sim = new Simulator<PingMsg>({ seed, connectionless: true, network });
      sim.addNode(0, () => new Pinger(1, 2000, 1));
      sim.addNode(1, () => new Ponger());
      sim.run({ until: 10_000 });
      return sim.node<Ponger>(1)!.seqs;
    };
    ex(inversions(datagrams({ minLatencyMs: 10, maxLatencyMs: 10 }))).toBe(0);
    ex(inversions(datagrams({ minLatencyMs: 1, maxLatencyMs: 30 }))).toBeGreaterThan(100);
    ex(inversions(datagrams({ minLatencyMs: 10, maxLatencyMs: 10, reorderRate: 0.2, reorderDelayMs: 20 }))).toBeGreaterThan(100);
    ex(inversions(streamOverConnection(seed, true, { minLatencyMs: 1, maxLatencyMs: 30 }))).toBe(0);
    ex(inversions(streamOverConnection(seed, false, { minLatencyMs: 1, maxLatencyMs: 30 }))).toBeGreaterThan(100);
  });

  seedIt("counts bytes with sizeOf", 1, () => {
    const sim = new Simulator<PingMsg>({ seed: 1, connectionless: true, sizeOf: (m) => (m.kind === "ping" ? 10 : 20) });
    sim.addNode(0, () => new Pinger(1, 100, 1));
    sim.addNode(1, () => new Ponger());
    sim.run({ until: 1000 });
    expect(sim.metrics().bytes).toEqual({ sent: 100 * 10 + 100 * 20, delivered: 100 * 10 + 100 * 20 });
  });
});

/** Node 0 dials node 1, then streams 2000 numbered messages over the connection. */
function streamOverConnection(seed: number, fifo: boolean, network: object): number[] {
  type M = { seq: number };
  const got: number[] = [];
  const sim = new Simulator<M>({ seed, fifo, network });
  let seq = 0;
  sim.addNode(0, () => ({
    handle(ev, ctx) {
      if (ev.type === "start") ctx.dial(1);
      else if (ev.type === "connected" || ev.type === "timer") {
        for (let i = 0; i < 10 && seq < 2000; i++) ctx.send(1, { seq: seq++ });
        if (seq < 2000) ctx.setTimer("more", 1);
      }
    },
  }));
  sim.addNode(1, () => ({
    handle(ev) {
      if (ev.type === "message") got.push(ev.msg.seq);
    },
  }));
  sim.run({ until: 10_000 });
  expectFor(seed)(got.length).toBe(2000);
  return got;
}

describe("connections", () => {
  it("delivers connected on both ends and only lets connected pairs talk", () => {
    const seed = 4;
    const ex = expectFor(seed);
    const events: string[] = [];
    const sim = new Simulator<string>({ seed, network: { minLatencyMs: 10, maxLatencyMs: 10 } });
    const log = (id: string): ProtocolNode<string> => ({
      handle(ev, ctx) {
        events.push(`${ctx.now} ${id} ${ev.type}${"peer" in ev ? " " + String(ev.peer) : ""}${ev.type === "connected" ? (ev.outbound ? " out" : " in") : ""}${ev.type === "message" ? " " + ev.msg : ""}`);
        if (id === "a" && ev.type === "start") {
          ctx.send("b", "too early"); // not connected yet: dropped
          ctx.dial("b");
        }
        if (id === "a" && ev.type === "connected") ctx.send("b", "hello");
        if (id === "b" && ev.type === "message") {
          ctx.send("a", "bye");
          ctx.hangUp("a");
          ctx.send("a", "after hangup"); // dropped: not connected
        }
      },
    });
    sim.addNode("a", () => log("a"));
    sim.addNode("b", () => log("b"));
    sim.run({ until: 1000 });
    ex(events).toEqual([
      "0 a start",
      "0 b start",
      "10 b connected a in",
      "20 a connected b out",
      "30 b message hello",
      // "bye" was sent before the hang-up, so it arrives with it (the FIN follows the data).
      "40 a message bye",
      "40 a disconnected b",
    ]);
    ex(sim.metrics().messages.dropped.notConnected).toBe(2);
    ex(sim.isConnected("a", "b")).toBe(false);
  });

  it("resolves crossing dials with one connection and no violations", () => {
    for (let seed = 0; seed < 20; seed++) {
      const violations: string[] = [];
      const sim = new Simulator<FloodMsg>({ seed, network: { minLatencyMs: 1, maxLatencyMs: 20 } });
      const n = 12;
      // Everyone dials everyone at t=0: every pair has crossing dials.
      for (let i = 0; i < n; i++) sim.addNode(i, () => new Flood([...Array(n).keys()].filter((j) => j !== i), violations));
      sim.run({ until: 2000 });
      const ex = expectFor(seed);
      ex(violations).toEqual([]);
      for (let i = 0; i < n; i++) ex(sim.degree(i)).toBe(n - 1);
      ex(sim.metrics().connections.opened).toBe((n * (n - 1)) / 2);
    }
  });
});

describe("bounds and errors", () => {
  seedIt("stops a timer storm at maxEvents with an error naming the seed", 77, () => {
    const storm = (): ProtocolNode<never> => ({
      handle(ev, ctx) {
        if (ev.type === "start" || ev.type === "timer") {
          ctx.setTimer("a", 0);
          ctx.setTimer(`b${ctx.rng.int(1000)}`, 0);
        }
      },
    });
    const sim = new Simulator<never>({ seed: 77 });
    sim.addNode(0, storm);
    let err: unknown;
    try {
      sim.run({ until: 1000, maxEvents: 100_000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimLimitError);
    expect((err as Error).message).toMatch(/seed=77: simulation stopped by maxEvents=100000 after 100000 events at t=0\.000ms/);
    expect((err as SimLimitError).result.reason).toBe("maxEvents");
    expect(sim.now).toBe(0); // the storm never lets time advance

    const sim2 = new Simulator<never>({ seed: 77, maxEventsPerRun: 5000 });
    sim2.addNode(0, storm);
    const r = sim2.run({ until: 1000, onLimit: "return" });
    expect(r).toMatchObject({ reason: "maxEvents", events: 5000, now: 0 });
  });

  seedIt("can stop on wall time", 1, () => {
    const sim = new Simulator<never>({ seed: 1 });
    sim.addNode(0, () => ({
      handle(_ev, ctx) {
        ctx.setTimer("t", 0);
      },
    }));
    const r = sim.run({ maxWallMs: 50, onLimit: "return", maxEvents: 1e12 });
    expect(r.reason).toBe("maxWallMs");
  });

  it("stops when a predicate holds, or reports idle/until", () => {
    const seed = 5;
    const sim = new Simulator<PingMsg>({ seed, connectionless: true });
    sim.addNode(0, () => new Pinger(1, 100, 10));
    sim.addNode(1, () => new Ponger());
    const r = sim.run({ stopWhen: (s) => s.node<Pinger>(0)!.rtts.length >= 50 });
    expectFor(seed)(r.reason).toBe("predicate");
    expectFor(seed)(sim.node<Pinger>(0)!.rtts.length).toBe(50);
    expectFor(seed)(sim.run().reason).toBe("idle");
    const t = sim.now;
    expectFor(seed)(sim.run({ duration: 500 })).toMatchObject({ reason: "until", now: t + 500, events: 0 });
  });

  seedIt("wraps a throwing handler with seed, time and node", "boom", () => {
    const sim = new Simulator<string>({ seed: "boom", connectionless: true });
    sim.addNode("x", () => ({
      handle(ev, ctx) {
        if (ev.type === "start") ctx.setTimer("t", 5);
        if (ev.type === "timer") throw new Error("bad state");
      },
    }));
    let err: unknown;
    try {
      sim.run({ until: 100 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimProtocolError);
    expect((err as Error).message).toBe('seed=boom t=5.000ms node "x" failed handling timer: bad state');
    expect(((err as Error).cause as Error).message).toBe("bad state");
  });

  seedIt("freezeMessages catches a receiver that mutates a message", 1, () => {
    type M = { n: number };
    const make = (freezeMessages: boolean): Simulator<M> => {
      const sim = new Simulator<M>({ seed: 1, connectionless: true, freezeMessages });
      sim.addNode(0, () => ({ handle: (ev, ctx) => void (ev.type === "start" && ctx.send(1, { n: 1 })) }));
      sim.addNode(1, () => ({ handle: (ev) => void (ev.type === "message" && (ev.msg as { n: number }).n++) }));
      return sim;
    };
    expect(() => make(false).run()).not.toThrow();
    expect(() => make(true).run()).toThrow(/seed=1 .*node 1 failed handling message/);
  });

  seedIt("strict mode makes Math.random and Date.now throw inside a run", 3, () => {
    const sim = new Simulator<never>({ seed: 3, strict: true });
    sim.addNode("r", () => ({ handle: () => void Math.random() }));
    expect(() => sim.run()).toThrow(/seed=3 t=0.000ms node "r" failed handling start: Math.random called during a simulation run/);
    expect(typeof Math.random()).toBe("number"); // restored
    const sim2 = new Simulator<never>({ seed: 3, strict: true });
    sim2.addNode("d", () => ({ handle: () => void Date.now() }));
    expect(() => sim2.run()).toThrow(/Date.now called/);
    expect(Date.now()).toBeGreaterThan(0);
  });

  seedIt("hashMessage folds message contents into the hash", 1, () => {
    const run = (payload: number, hashMessage?: (m: number) => number): string => {
      const sim = new Simulator<number>({ seed: 1, connectionless: true, hashMessage });
      sim.addNode(0, () => ({ handle: (ev, ctx) => void (ev.type === "start" && ctx.send(1, payload)) }));
      sim.addNode(1, () => ({ handle() {} }));
      sim.run();
      return sim.hash;
    };
    expect(run(1)).toBe(run(2)); // timing only
    expect(run(1, (m) => m)).not.toBe(run(2, (m) => m));
  });

  seedIt("rejects bad configuration", 1, () => {
    expect(() => new Simulator({ seed: 1, network: { minLatencyMs: 10, maxLatencyMs: 5 } })).toThrow(RangeError);
    expect(() => new Simulator({ seed: 1, network: { lossRate: 2 } })).toThrow(RangeError);
    const sim = new Simulator({ seed: 1 });
    sim.addNode("a", () => ({ handle() {} }));
    expect(() => sim.addNode("a", () => ({ handle() {} }))).toThrow(/duplicate/);
    expect(() => sim.crash("nope")).toThrow(/seed=1: unknown node "nope"/);
  });
});

describe("adapters and storage", () => {
  seedIt("runs a step-style protocol through fromStep", 1, () => {
    type M = { hop: number };
    const hops: number[] = [];
    const node = (next: number): StepNode<M> => ({
      step(ev: NodeEvent<M>, env) {
        if (ev.type === "start" && env.id === 0) return [{ type: "send", to: next, msg: { hop: 0 } }, { type: "setTimer", name: "t", delayMs: 5 }];
        if (ev.type === "message") {
          hops.push(ev.msg.hop);
          return ev.msg.hop < 9 ? [{ type: "send", to: next, msg: { hop: ev.msg.hop + 1 } }] : [];
        }
        return undefined;
      },
    });
    const sim = new Simulator<M>({ seed: 1, connectionless: true });
    for (let i = 0; i < 3; i++) sim.addNode(i, () => fromStep(node((i + 1) % 3)));
    sim.run();
    expect(hops).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(sim.metrics().timers).toEqual({ set: 1, fired: 1 });
  });

  seedIt("durable storage is copied, so later mutation does not leak into it", 1, () => {
    const sim = new Simulator({ seed: 1 });
    const log = [1, 2];
    sim.addNode(0, ({ storage }) => {
      storage.set("log", log);
      return { handle() {} };
    });
    log.push(3);
    expect(sim.storage(0).get("log")).toEqual([1, 2]);
    sim.storage(0).get<number[]>("log")!.push(4);
    expect(sim.storage(0).get("log")).toEqual([1, 2]);
  });
});

describe("hang-up ordering", () => {
  it("messages sent just before hangUp still arrive before the close, with or without fifo", async () => {
    const { Simulator } = await import("../../src/sim/simulator.js");
    for (const fifo of [false, true]) {
      for (let seed = 1; seed <= 50; seed++) {
        const got: string[] = [];
        const sim = new Simulator<string>({ seed, fifo, network: { minLatencyMs: 1, maxLatencyMs: 30 } });
        sim.addNode("a", () => ({
          handle(ev, ctx) {
            if (ev.type === "start") ctx.dial("b");
            if (ev.type === "connected") {
              for (let i = 0; i < 5; i++) ctx.send("b", `m${i}`);
              ctx.hangUp("b");
            }
          },
        }));
        sim.addNode("b", () => ({
          handle(ev) {
            if (ev.type === "message") got.push(ev.msg);
            if (ev.type === "disconnected") got.push("closed");
          },
        }));
        sim.run({ until: 1000 });
        expect(got.length, `seed=${seed} fifo=${fifo}`).toBe(6);
        expect(got[5], `seed=${seed} fifo=${fifo}: ${got.join(",")}`).toBe("closed");
      }
    }
  });
});
