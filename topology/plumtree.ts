// Plumtree (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees", SRDS 2007) over the
// manager's overlay neighbours, plus optional acknowledged delivery.
//
// Paper behaviour: eager push along a spanning tree that emerges from first arrivals,
// lazy IHAVE announcements to the other neighbours, PRUNE on duplicates, GRAFT when an
// announced message does not arrive within timeout1 (then every timeout2, next announcer).
// One tree shared by all sources. IHAVEs are batched per peer (the paper's lazy queue).
//
// Direct mode (full-mesh): the origin pushes to every neighbour, receivers do not forward
// (`direct: true`); a direct-mode node that gets a message through a tree re-pushes it to
// all its peers, so mixed overlays during a switch still flood.
//
// Acknowledged delivery (`rel`): every GOSSIP and every IHAVE item is acknowledged hop by
// hop and retransmitted while the connection is open; grafts for reliable messages keep
// cycling through announcers; holders retain payloads for `retainMs` (to answer grafts)
// and announce the reliable ids they received in the last `syncWindowMs` to every new
// neighbour (neighbour sync: covers links that appear while a message is in flight, e.g.
// during a topology switch or a partition repair). By induction over a connected overlay
// every live node gets the message while some holder still offers it. The
// origin's `onAcked(id)` fires once every peer it pushed or announced the message to has
// acknowledged (at least one).

import type { Shell } from "./shell.js";
import { sample } from "./shell.js";
import type { BroadcastMessage, IHaveItem, NodeId, PlumtreeOptions } from "./types.js";

interface Cached {
  readonly id: string;
  readonly origin: NodeId;
  readonly payload: unknown;
  readonly round: number;
  readonly rel: boolean;
  readonly at: number;
}

interface Missing {
  /** Announcers, in arrival order (cycled for reliable messages). */
  announcers: NodeId[];
  rel: boolean;
}

interface Unacked {
  readonly msg: BroadcastMessage;
  sentAt: number;
  tries: number;
}

const DEFAULTS: Required<PlumtreeOptions> = {
  ihaveTimeoutMs: 400,
  graftRetryMs: 200,
  lazyFlushMs: 20,
  lazyFanout: Infinity,
  directLazyFanout: 1,
  retransmitMs: 800,
  maxRetransmits: 12,
  retainMs: 60_000,
  dedupMs: 600_000,
  syncWindowMs: 2000,
  syncMax: 128,
};

export interface BroadcastStats {
  gossipSent: number;
  ihaveSent: number;
  graftSent: number;
  pruneSent: number;
  ackSent: number;
  retransmits: number;
}

export class Plumtree {
  readonly opts: Required<PlumtreeOptions>;
  readonly eager = new Set<NodeId>();
  readonly lazy = new Set<NodeId>();
  private readonly received = new Map<string, number>();
  private readonly cache = new Map<string, Cached>();
  private readonly missing = new Map<string, Missing>();
  private readonly lazyQueue = new Map<NodeId, IHaveItem[]>();
  private readonly ackQueue = new Map<NodeId, { gossip: string[]; ihave: string[] }>();
  private flushArmed = false;
  /** Per peer: "g:<id>" / "i:<id>" -> unacknowledged reliable send. */
  private readonly unacked = new Map<NodeId, Map<string, Unacked>>();
  private rtArmed = false;
  /** Origin bookkeeping for onAcked: id -> peers still to acknowledge, acks so far. */
  private readonly pendingOrigin = new Map<string, { waiting: Set<NodeId>; acks: number }>();
  private seq = 0;
  private gcArmed = false;
  readonly stats: BroadcastStats = { gossipSent: 0, ihaveSent: 0, graftSent: 0, pruneSent: 0, ackSent: 0, retransmits: 0 };

  constructor(
    private readonly sh: Shell,
    opts: PlumtreeOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Has this node delivered `id`? */
  has(id: string): boolean {
    return this.received.has(id);
  }

  /** Ids delivered (for tests). */
  deliveredCount(): number {
    return this.received.size;
  }

  hasUnacked(peer: NodeId): boolean {
    const u = this.unacked.get(peer);
    return u !== undefined && u.size > 0;
  }

  // ---- Application -----------------------------------------------------------------

  broadcast(payload: unknown, rel: boolean): string {
    const sh = this.sh;
    const id = `${String(sh.id)}:${sh.incarnation}:${this.seq++}`;
    const m: Cached = { id, origin: sh.id, payload, round: 0, rel, at: sh.now };
    this.received.set(id, sh.now);
    this.cache.set(id, m);
    this.armGc();
    if (rel) this.pendingOrigin.set(id, { waiting: new Set(), acks: 0 });
    sh.deliver({ id, origin: sh.id, payload });
    if (sh.broadcastMode() === "direct") this.pushDirect(m, undefined);
    else this.pushTree(m, undefined);
    return id;
  }

  // ---- Neighbour changes -------------------------------------------------------------

  neighborUp(peer: NodeId): void {
    this.lazy.delete(peer);
    this.eager.add(peer);
    // Neighbour sync: offer retained reliable messages to the new neighbour.
    let items: IHaveItem[] | undefined;
    let n = 0;
    const cutoff = this.sh.now - this.opts.syncWindowMs;
    for (const m of this.cache.values()) {
      if (!m.rel || m.at < cutoff) continue;
      (items ??= []).push({ id: m.id, round: m.round, rel: true });
      n++;
    }
    if (items !== undefined) {
      if (n > this.opts.syncMax) items = items.slice(n - this.opts.syncMax);
      for (const it of items) this.queueIHave(peer, it);
    }
  }

  neighborDown(peer: NodeId): void {
    this.eager.delete(peer);
    this.lazy.delete(peer);
  }

  /** The connection to `peer` closed: drop what can no longer be sent or acknowledged on it. */
  connectionClosed(peer: NodeId): void {
    this.neighborDown(peer);
    this.lazyQueue.delete(peer);
    this.ackQueue.delete(peer);
    const u = this.unacked.get(peer);
    if (u !== undefined) {
      this.unacked.delete(peer);
      for (const key of u.keys()) this.originForget(key.slice(2), peer);
    }
  }

  // ---- Messages ----------------------------------------------------------------------

  onMessage(from: NodeId, msg: BroadcastMessage): void {
    switch (msg.type) {
      case "pt.gossip":
        return this.onGossip(from, msg);
      case "pt.ihave":
        return this.onIHave(from, msg.items);
      case "pt.graft":
        return this.onGraft(from, msg.ids);
      case "pt.prune":
        if (this.eager.delete(from)) this.lazy.add(from);
        return;
      case "pt.ack":
        return this.onAck(from, msg);
    }
  }

  private onGossip(from: NodeId, m: Extract<BroadcastMessage, { type: "pt.gossip" }>): void {
    const sh = this.sh;
    if (typeof m.id !== "string") return;
    if (m.rel) this.queueAck(from, "gossip", m.id);
    if (this.received.has(m.id)) {
      // Duplicate: prune the sender (tree mode).
      if (this.eager.has(from) && sh.broadcastMode() === "tree") {
        this.eager.delete(from);
        this.lazy.add(from);
        this.stats.pruneSent++;
        sh.sendIfConnected(from, { type: "pt.prune" });
      }
      return;
    }
    const c: Cached = { id: m.id, origin: m.origin, payload: m.payload, round: m.round + 1, rel: m.rel === true, at: sh.now };
    this.received.set(m.id, sh.now);
    this.cache.set(m.id, c);
    this.armGc();
    this.missing.delete(m.id);
    sh.deliver({ id: m.id, origin: m.origin, payload: m.payload });
    if (sh.broadcastMode() === "direct") {
      if (m.direct) this.announceRandom(c, from, this.opts.directLazyFanout);
      else this.pushDirect(c, from);
    } else {
      if (sh.isNeighbor(from)) {
        this.eager.add(from);
        this.lazy.delete(from);
      }
      this.pushTree(c, from);
    }
  }

  private onIHave(from: NodeId, items: readonly IHaveItem[]): void {
    if (!Array.isArray(items)) return;
    for (const it of items) {
      if (it === null || typeof it !== "object" || typeof it.id !== "string") continue;
      if (it.rel) this.queueAck(from, "ihave", it.id);
      if (this.received.has(it.id)) continue;
      let miss = this.missing.get(it.id);
      if (miss === undefined) {
        miss = { announcers: [], rel: it.rel === true };
        this.missing.set(it.id, miss);
        this.sh.ctx.setTimer(`pt.m:${it.id}`, this.opts.ihaveTimeoutMs);
      }
      if (!miss.announcers.includes(from)) miss.announcers.push(from);
      if (it.rel) miss.rel = true;
    }
  }

  private onGraft(from: NodeId, ids: readonly string[]): void {
    if (!Array.isArray(ids)) return;
    if (this.sh.isNeighbor(from)) {
      this.lazy.delete(from);
      this.eager.add(from);
    }
    for (const id of ids) {
      const c = this.cache.get(id);
      if (c !== undefined) this.sendGossip(from, c, false);
    }
  }

  private onAck(from: NodeId, m: Extract<BroadcastMessage, { type: "pt.ack" }>): void {
    const u = this.unacked.get(from);
    const done = (kind: string, ids: readonly string[] | undefined): void => {
      if (!Array.isArray(ids)) return;
      for (const id of ids) {
        if (u !== undefined) u.delete(kind + id);
        const p = this.pendingOrigin.get(id);
        if (p !== undefined && p.waiting.delete(from)) {
          p.acks++;
          this.checkOrigin(id, p);
        }
      }
    };
    done("g:", m.gossip);
    done("i:", m.ihave);
    if (u !== undefined && u.size === 0) this.unacked.delete(from);
  }

  // ---- Forwarding ----------------------------------------------------------------------

  private pushTree(c: Cached, from: NodeId | undefined): void {
    for (const p of this.eager) if (p !== from) this.sendGossip(p, c, false);
    const fan = this.opts.lazyFanout;
    if (fan === Infinity || this.lazy.size <= fan) {
      for (const p of this.lazy) if (p !== from) this.queueIHave(p, { id: c.id, round: c.round, rel: c.rel });
    } else {
      const targets = sample(this.sh.ctx.rng, [...this.lazy].filter((p) => p !== from), fan);
      for (const p of targets) this.queueIHave(p, { id: c.id, round: c.round, rel: c.rel });
    }
  }

  private pushDirect(c: Cached, from: NodeId | undefined): void {
    for (const p of this.sh.neighborList()) if (p !== from) this.sendGossip(p, c, true);
  }

  private announceRandom(c: Cached, from: NodeId, k: number): void {
    if (k <= 0) return;
    const peers = this.sh.neighborList().filter((p) => p !== from);
    for (const p of sample(this.sh.ctx.rng, peers, k)) this.queueIHave(p, { id: c.id, round: c.round, rel: c.rel });
  }

  private sendGossip(peer: NodeId, c: Cached, direct: boolean): void {
    const msg: BroadcastMessage = { type: "pt.gossip", id: c.id, origin: c.origin, round: c.round, payload: c.payload, direct, rel: c.rel };
    if (!this.sh.sendIfConnected(peer, msg)) return;
    this.stats.gossipSent++;
    if (c.rel) this.track(peer, "g:" + c.id, msg, c.id);
  }

  private queueIHave(peer: NodeId, item: IHaveItem): void {
    let q = this.lazyQueue.get(peer);
    if (q === undefined) this.lazyQueue.set(peer, (q = []));
    q.push(item);
    this.armFlush();
  }

  private queueAck(peer: NodeId, kind: "gossip" | "ihave", id: string): void {
    let q = this.ackQueue.get(peer);
    if (q === undefined) this.ackQueue.set(peer, (q = { gossip: [], ihave: [] }));
    q[kind].push(id);
    this.armFlush();
  }

  private armFlush(): void {
    if (this.flushArmed) return;
    this.flushArmed = true;
    this.sh.ctx.setTimer("pt.flush", this.opts.lazyFlushMs);
  }

  private track(peer: NodeId, key: string, msg: BroadcastMessage, id: string): void {
    let u = this.unacked.get(peer);
    if (u === undefined) this.unacked.set(peer, (u = new Map()));
    const prev = u.get(key);
    if (prev !== undefined) {
      prev.sentAt = this.sh.now;
      return;
    }
    u.set(key, { msg, sentAt: this.sh.now, tries: 0 });
    const p = this.pendingOrigin.get(id);
    if (p !== undefined) p.waiting.add(peer);
    if (!this.rtArmed) {
      this.rtArmed = true;
      this.sh.ctx.setTimer("pt.rt", this.opts.retransmitMs / 2);
    }
  }

  private originForget(id: string, peer: NodeId): void {
    const p = this.pendingOrigin.get(id);
    if (p !== undefined && p.waiting.delete(peer)) this.checkOrigin(id, p);
  }

  private checkOrigin(id: string, p: { waiting: Set<NodeId>; acks: number }): void {
    if (p.waiting.size === 0 && p.acks > 0) {
      this.pendingOrigin.delete(id);
      this.sh.acked(id);
    }
  }

  // ---- Timers --------------------------------------------------------------------------

  /** Handles `pt.*` timers; returns false if the name is not ours. */
  onTimer(name: string): boolean {
    if (name === "pt.flush") {
      this.flushArmed = false;
      this.flush();
      return true;
    }
    if (name === "pt.rt") {
      this.rtArmed = false;
      this.retransmit();
      return true;
    }
    if (name === "pt.gc") {
      this.gcArmed = false;
      this.gc();
      return true;
    }
    if (name.startsWith("pt.m:")) {
      this.graftTimer(name.slice(5));
      return true;
    }
    return false;
  }

  private flush(): void {
    const sh = this.sh;
    for (const [peer, items] of this.lazyQueue) {
      if (sh.sendIfConnected(peer, { type: "pt.ihave", items })) {
        this.stats.ihaveSent++;
        for (const it of items) if (it.rel) this.track(peer, "i:" + it.id, { type: "pt.ihave", items: [it] }, it.id);
      }
    }
    this.lazyQueue.clear();
    for (const [peer, q] of this.ackQueue) {
      if (sh.sendIfConnected(peer, { type: "pt.ack", gossip: q.gossip, ihave: q.ihave })) this.stats.ackSent++;
    }
    this.ackQueue.clear();
  }

  private graftTimer(id: string): void {
    const miss = this.missing.get(id);
    if (miss === undefined || this.received.has(id)) {
      this.missing.delete(id);
      return;
    }
    const sh = this.sh;
    while (miss.announcers.length > 0) {
      const a = miss.announcers.shift()!;
      if (!sh.isOpen(a)) continue;
      if (sh.isNeighbor(a)) {
        this.lazy.delete(a);
        this.eager.add(a);
      }
      this.stats.graftSent++;
      sh.sendIfConnected(a, { type: "pt.graft", ids: [id] });
      if (miss.rel) miss.announcers.push(a); // reliable: keep cycling through announcers
      sh.ctx.setTimer(`pt.m:${id}`, this.opts.graftRetryMs);
      return;
    }
    this.missing.delete(id); // nobody left to ask; new neighbours will announce it again
  }

  private retransmit(): void {
    const sh = this.sh;
    const now = sh.now;
    let left = 0;
    for (const [peer, u] of this.unacked) {
      const open = sh.isOpen(peer);
      for (const [key, e] of u) {
        if (!open || e.tries >= this.opts.maxRetransmits) {
          u.delete(key);
          this.originForget(key.slice(2), peer);
          continue;
        }
        if (now - e.sentAt >= this.opts.retransmitMs) {
          e.tries++;
          e.sentAt = now;
          this.stats.retransmits++;
          sh.sendIfConnected(peer, e.msg);
        }
      }
      if (u.size === 0) this.unacked.delete(peer);
      else left += u.size;
    }
    if (left > 0) {
      this.rtArmed = true;
      sh.ctx.setTimer("pt.rt", this.opts.retransmitMs / 2);
    }
  }

  private armGc(): void {
    if (this.gcArmed) return;
    this.gcArmed = true;
    this.sh.ctx.setTimer("pt.gc", Math.min(this.opts.retainMs, 5000));
  }

  private gc(): void {
    const now = this.sh.now;
    for (const [id, m] of this.cache) {
      if (now - m.at <= this.opts.retainMs) break; // insertion order = time order
      this.cache.delete(id);
    }
    for (const [id, t] of this.received) {
      if (now - t <= this.opts.dedupMs) break;
      this.received.delete(id);
    }
    if (this.cache.size > 0 || this.received.size > 0) this.armGc();
  }

  /** After a restart-free manager switch the eager set is rebuilt from the new neighbours. */
  resetNeighbors(): void {
    this.eager.clear();
    this.lazy.clear();
  }
}
