// Shared helpers and toy protocols for the simulator tests. Every failure names its seed.
import { expect, it } from "vitest";
import type { NodeContext, NodeEvent, NodeId, ProtocolNode } from "../../src/sim/index.js";

/** `expect` whose failure message starts with `seed=<seed>`. */
export function expectFor(seed: number | string, what = ""): <T>(actual: T, detail?: string) => ReturnType<typeof expect<T>> {
  const tag = `seed=${String(seed)}${what ? " " + what : ""}`;
  return <T>(actual: T, detail?: string) => expect<T>(actual, detail ? `${tag} ${detail}` : tag);
}

/** Run `fn`; if it throws, rethrow with `seed=<seed>` prefixed to the message. */
export function withSeed<T>(seed: number | string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Error && !err.message.includes(`seed=${String(seed)}`)) {
      const old = err.message;
      err.message = `seed=${String(seed)}: ${old}`;
      if (err.stack?.includes(old)) err.stack = err.stack.replace(old, err.message);
    }
    throw err;
  }
}

/** `it` whose failures (any thrown error, assertions included) are prefixed with `seed=<seed>`. */
export function seedIt(name: string, seed: number | string, fn: () => void): void {
  it(name, () => withSeed(seed, fn));
}

// ---- Flood: connection-oriented broadcast with connection-state invariants ---------------

export type FloodMsg = { readonly kind: "rumor"; readonly id: number };

type PeerState = "dialing" | "connected";

/**
 * Keeps connections to a fixed neighbour list (re-dialing after failures), floods rumors
 * to every connected peer once, and records any connection event that contradicts its own
 * view into `violations` (e.g. `connected` twice, `disconnected` when not connected).
 */
export class Flood implements ProtocolNode<FloodMsg> {
  readonly view = new Map<NodeId, PeerState>();
  readonly seen = new Set<number>();
  /** `rumors`: broadcasts this node originates, at absolute virtual times (skipped while it is down). */
  constructor(
    private readonly neighbours: readonly NodeId[],
    private readonly violations: string[],
    private readonly rumors: ReadonlyArray<{ at: number; id: number }> = [],
    /** If set, until `churnUntil` hang up a random peer (or cancel a dial) about every `churnMs`. */
    private readonly churn: { everyMs: number; untilMs: number } | undefined = undefined,
    private readonly retryMs = 200,
  ) {}

  private bad(ctx: NodeContext<FloodMsg>, what: string): void {
    this.violations.push(`t=${ctx.now.toFixed(3)} node=${String(ctx.id)}: ${what}`);
  }

  private dial(ctx: NodeContext<FloodMsg>, peer: NodeId): void {
    if (this.view.has(peer)) return;
    this.view.set(peer, "dialing");
    ctx.dial(peer);
  }

  broadcast(ctx: NodeContext<FloodMsg>, id: number): void {
    this.seen.add(id);
    for (const [p, st] of this.view) if (st === "connected") ctx.send(p, { kind: "rumor", id });
  }

  handle(ev: NodeEvent<FloodMsg>, ctx: NodeContext<FloodMsg>): void {
    switch (ev.type) {
      case "start":
        for (const n of this.neighbours) this.dial(ctx, n);
        for (const r of this.rumors) if (r.at >= ctx.now) ctx.setTimer(`bcast:${r.id}`, r.at - ctx.now);
        if (this.churn) ctx.setTimer("churn", ctx.rng.range(0, 2 * this.churn.everyMs));
        return;
      case "connected": {
        const st = this.view.get(ev.peer);
        if (st === "connected") this.bad(ctx, `connected to ${String(ev.peer)} twice`);
        this.view.set(ev.peer, "connected");
        return;
      }
      case "disconnected":
        if (this.view.get(ev.peer) !== "connected") this.bad(ctx, `disconnected from ${String(ev.peer)} while ${this.view.get(ev.peer) ?? "none"}`);
        this.view.delete(ev.peer);
        if (this.neighbours.includes(ev.peer)) ctx.setTimer(`retry:${String(ev.peer)}`, this.retryMs);
        return;
      case "dialFailed":
        if (this.view.get(ev.peer) !== "dialing") this.bad(ctx, `dialFailed to ${String(ev.peer)} while ${this.view.get(ev.peer) ?? "none"}`);
        this.view.delete(ev.peer);
        ctx.setTimer(`retry:${String(ev.peer)}`, this.retryMs);
        return;
      case "timer": {
        const name = String(ev.name);
        if (name === "churn" && this.churn && ctx.now < this.churn.untilMs) {
          const peers = [...this.view.keys()];
          if (peers.length > 0) {
            const p = ctx.rng.pick(peers);
            this.view.delete(p);
            ctx.hangUp(p);
            ctx.setTimer(`retry:${String(p)}`, ctx.rng.range(0, 2 * this.retryMs));
          }
          ctx.setTimer("churn", ctx.rng.range(0, 2 * this.churn.everyMs));
        } else if (name.startsWith("bcast:")) this.broadcast(ctx, Number(name.slice(6)));
        else if (name.startsWith("retry:")) {
          const peer = this.neighbours.find((n) => `retry:${String(n)}` === name);
          if (peer !== undefined) this.dial(ctx, peer);
        }
        return;
      }
      case "message":
        if (this.view.get(ev.from) !== "connected") this.bad(ctx, `message from ${String(ev.from)} while ${this.view.get(ev.from) ?? "none"}`);
        if (!this.seen.has(ev.msg.id)) {
          this.seen.add(ev.msg.id);
          for (const [p, st] of this.view) if (st === "connected" && p !== ev.from) ctx.send(p, ev.msg);
        }
        return;
      case "discovered":
        return;
    }
  }
}

/** A ring plus two chords per node: connected, small diameter, overlapping dials. */
export function ringNeighbours(n: number, i: number): number[] {
  const set = new Set([(i + 1) % n, (i + n - 1) % n, (i + 7) % n, (i * 3 + 1) % n]);
  set.delete(i);
  return [...set];
}

// ---- PingPong: connectionless request/response with timers -------------------------------

export type PingMsg =
  | { readonly kind: "ping"; readonly seq: number; readonly sentAt: number }
  | { readonly kind: "pong"; readonly seq: number; readonly sentAt: number; readonly pongAt: number };

/** Sends `count` pings to `target` every `intervalMs`; records one-way delays and RTTs. */
export class Pinger implements ProtocolNode<PingMsg> {
  seq = 0;
  readonly rtts: number[] = [];
  readonly pongSeqs: number[] = [];
  constructor(
    private readonly target: NodeId,
    private readonly count: number,
    private readonly intervalMs: number,
  ) {}
  handle(ev: NodeEvent<PingMsg>, ctx: NodeContext<PingMsg>): void {
    if (ev.type === "start") ctx.setTimer("ping", 0);
    else if (ev.type === "timer" && this.seq < this.count) {
      ctx.send(this.target, { kind: "ping", seq: this.seq++, sentAt: ctx.now });
      ctx.setTimer("ping", this.intervalMs);
    } else if (ev.type === "message" && ev.msg.kind === "pong") {
      this.rtts.push(ctx.now - ev.msg.sentAt);
      this.pongSeqs.push(ev.msg.seq);
    }
  }
}

/** Answers pings; records one-way delays and the order in which seqs arrived. */
export class Ponger implements ProtocolNode<PingMsg> {
  readonly delays: number[] = [];
  readonly seqs: number[] = [];
  handle(ev: NodeEvent<PingMsg>, ctx: NodeContext<PingMsg>): void {
    if (ev.type === "message" && ev.msg.kind === "ping") {
      this.delays.push(ctx.now - ev.msg.sentAt);
      this.seqs.push(ev.msg.seq);
      ctx.send(ev.from, { kind: "pong", seq: ev.msg.seq, sentAt: ev.msg.sentAt, pongAt: ctx.now });
    }
  }
}

/** Number of adjacent pairs that are out of order. */
export function inversions(xs: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! < xs[i - 1]!) n++;
  return n;
}
