// Simulator speed benchmark: a heartbeat + push-gossip protocol over a random overlay.
// Usage: npx tsx bench/sim.ts [N ...] [--seconds S] [--seed X]
// Prints one JSON line per N.
import { Simulator, type NodeContext, type NodeEvent, type ProtocolNode } from "../src/sim/index.js";

type Msg = { readonly t: "hb" } | { readonly t: "rumor"; readonly id: number; readonly hops: number };

const HB: Msg = { t: "hb" };
const DEGREE = 4; // dial this many peers; inbound dials add more (average ~2x)
const FANOUT = 3;
const HEARTBEAT_MS = 1000;
const SUSPECT_MS = 3500;

class GossipNode implements ProtocolNode<Msg> {
  private readonly peers = new Map<number, number>(); // peer -> last heard (ms)
  private readonly seen = new Set<number>();
  private pending = 0;
  delivered = 0;

  constructor(
    private readonly n: number,
    private readonly rumorEveryMs: number,
  ) {}

  handle(ev: NodeEvent<Msg>, ctx: NodeContext<Msg>): void {
    switch (ev.type) {
      case "start":
        this.fill(ctx);
        ctx.setTimer("hb", ctx.rng.range(0, HEARTBEAT_MS));
        ctx.setTimer("rumor", ctx.rng.range(0, this.rumorEveryMs));
        return;
      case "connected":
        if (ev.outbound) this.pending--;
        this.peers.set(ev.peer as number, ctx.now);
        return;
      case "dialFailed":
        this.pending--;
        this.fill(ctx);
        return;
      case "disconnected":
        this.peers.delete(ev.peer as number);
        this.fill(ctx);
        return;
      case "timer":
        if (ev.name === "hb") {
          const now = ctx.now;
          for (const [p, last] of this.peers) {
            if (now - last > SUSPECT_MS) {
              this.peers.delete(p);
              ctx.hangUp(p);
            } else ctx.send(p, HB);
          }
          this.fill(ctx);
          ctx.setTimer("hb", HEARTBEAT_MS);
        } else {
          const id = ctx.rng.uint32();
          this.seen.add(id);
          this.forward(ctx, { t: "rumor", id, hops: 0 });
          ctx.setTimer("rumor", this.rumorEveryMs);
        }
        return;
      case "message": {
        const from = ev.from as number;
        if (this.peers.has(from)) this.peers.set(from, ctx.now);
        const m = ev.msg;
        if (m.t === "rumor" && !this.seen.has(m.id)) {
          this.seen.add(m.id);
          this.delivered++;
          this.forward(ctx, { t: "rumor", id: m.id, hops: m.hops + 1 });
        }
        return;
      }
      default:
        return;
    }
  }

  private fill(ctx: NodeContext<Msg>): void {
    while (this.peers.size + this.pending < DEGREE) {
      const p = ctx.rng.int(this.n);
      if (p === ctx.id || this.peers.has(p)) continue;
      this.pending++;
      ctx.dial(p);
    }
  }

  private forward(ctx: NodeContext<Msg>, m: Msg): void {
    const ps = [...this.peers.keys()];
    for (let i = 0; i < FANOUT && ps.length > 0; i++) {
      const j = ctx.rng.int(ps.length);
      ctx.send(ps[j]!, m);
      ps[j] = ps[ps.length - 1]!;
      ps.pop();
    }
  }
}

function bench(n: number, seconds: number, seed: number): Record<string, unknown> {
  const sim = new Simulator<Msg>({
    seed,
    network: { minLatencyMs: 5, maxLatencyMs: 50, lossRate: 0.01 },
    sizeOf: (m) => (m.t === "hb" ? 8 : 24),
  });
  // One new rumor per virtual second cluster-wide.
  for (let i = 0; i < n; i++) sim.addNode(i, () => new GossipNode(n, n * 1000));
  // Crash 1% of nodes at t = seconds / 2, restart them 5 s later.
  const victims = Array.from({ length: Math.max(1, Math.floor(n / 100)) }, (_, i) => (i * 97) % n);
  sim.at((seconds * 1000) / 2, () => victims.forEach((v) => sim.crash(v)));
  sim.at((seconds * 1000) / 2 + 5000, () => victims.forEach((v) => sim.restart(v)));
  const r = sim.run({ until: seconds * 1000 });
  const m = sim.metrics();
  let degree = 0;
  for (let i = 0; i < n; i++) degree += sim.degree(i);
  return {
    nodes: n,
    virtualSeconds: seconds,
    events: r.events,
    wallMs: Math.round(r.wallMs),
    virtualSecondsPerWallSecond: +(seconds / (r.wallMs / 1000)).toFixed(2),
    eventsPerSecond: Math.round(r.events / (r.wallMs / 1000)),
    heapMB: +(process.memoryUsage().heapUsed / 1048576).toFixed(1),
    messagesSent: m.messages.sent,
    messagesDelivered: m.messages.delivered,
    dropped: m.messages.dropped.total,
    avgDegree: +(degree / n).toFixed(2),
    hash: m.hash,
  };
}

const args = process.argv.slice(2);
let seconds = 60;
let seed = 1;
const sizes: number[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--seconds") seconds = Number(args[++i]);
  else if (args[i] === "--seed") seed = Number(args[++i]);
  else sizes.push(Number(args[i]));
}
for (const n of sizes.length > 0 ? sizes : [100, 1000, 10000]) {
  console.log(JSON.stringify(bench(n, seconds, seed)));
}
