// HyParView (Leitão, Pereira, Rodrigues, "HyParView: a membership protocol for reliable
// gossip-based broadcast", DSN 2007) as an overlay manager.
//
// Paper behaviour kept: a small symmetric active view (kept as open connections) and a
// larger passive view; JOIN to a contact, which takes the joiner (dropping a random active
// member with DISCONNECT if full) and starts FORWARD_JOIN random walks of length ARWL to
// its other active members; the walk adds the joiner to the passive view at hop PRWL and
// to the active view where it ends (TTL 0, or a node with a single active member), by a
// high-priority NEIGHBOR. On an active member's failure a random passive member is asked
// with NEIGHBOR (high priority when the active view is empty: always accepted; low: only
// with a free slot); failed dials drop passive entries. Periodic SHUFFLE: own id + k_a
// active + k_p passive on a random walk of length ARWL; the node where it ends replies with
// as many of its passive entries (over a temporary connection) and both merge, evicting
// first the entries they sent.
//
// Additions (documented in README.md):
// - Passive entries carry an age (time since someone had direct evidence of life); entries
//   older than passiveMaxAgeMs are dropped, so a dead node leaves every passive view within
//   that bound even if nobody tries to dial it. Shuffles ship ages; active members are age 0.
// - A maintenance tick refills the active view from the passive view (also after
//   DISCONNECT) and re-joins through bootstrap / recently lost peers when isolated, with
//   exponential backoff (250 ms .. 8 s) until the node has a neighbour again.
// - A JOIN contact, and a node accepting a high-priority NEIGHBOR, hand the asker their
//   active view and a passive sample, so a young or isolated node has live candidates.
// - Losing the last active member upgrades outstanding NEIGHBOR requests to high priority.
// - Partition repair: peers lost to a disconnection or a failed dial go to a "graveyard";
//   every ~repairMs one is re-dialed; if it answers, it is taken into the active view with a
//   high-priority NEIGHBOR (this re-links separated overlays after a heal) and the rest of
//   the graveyard is forgotten (one repair link per node per heal).

import { pickFromSet, sample } from "./shell.js";
import type { AgedPeer, HyParViewMessage, HyParViewOptions, ManagerSeed, NodeId, OverlayEnv, OverlayManager, TopologyMessage } from "./types.js";

export interface HyParViewConfig {
  activeSize: number;
  passiveSize: number;
  arwl: number;
  prwl: number;
  ka: number;
  kp: number;
  shuffleMs: number;
  passiveMaxAgeMs: number;
  neighborTimeoutMs: number;
  repairMs: number;
  graveyardTtlMs: number;
  idleRefillMs: number;
}

/** Paper defaults, or sizes scaled with log10 of the expected cluster size (5 / 30 at 10,000). */
export function hyparviewConfig(o: HyParViewOptions = {}): HyParViewConfig {
  let active = 5;
  if (o.expectedSize !== undefined && o.expectedSize > 1) active = Math.max(3, Math.round(Math.log10(o.expectedSize)) + 1);
  const activeSize = o.activeSize ?? active;
  return {
    activeSize,
    passiveSize: o.passiveSize ?? 6 * activeSize,
    arwl: o.arwl ?? 6,
    prwl: o.prwl ?? 3,
    ka: o.ka ?? 3,
    kp: o.kp ?? 4,
    shuffleMs: o.shuffleMs ?? 10_000,
    passiveMaxAgeMs: o.passiveMaxAgeMs ?? 90_000,
    neighborTimeoutMs: o.neighborTimeoutMs ?? 2000,
    repairMs: o.repairMs ?? 5000,
    graveyardTtlMs: o.graveyardTtlMs ?? 600_000,
    idleRefillMs: o.idleRefillMs ?? 10_000,
  };
}

export class HyParView implements OverlayManager {
  readonly name = "hyparview" as const;
  readonly broadcastMode = "tree" as const;
  readonly cfg: HyParViewConfig;
  /** Active view. */
  readonly active = new Set<NodeId>();
  /** Active members with an open connection (broadcast edges). */
  private readonly up = new Set<NodeId>();
  /** Outstanding NEIGHBOR requests: peer -> deadline. */
  private readonly pending = new Map<NodeId, number>();
  /** Passive view: peer -> last time someone had direct evidence it was alive. */
  readonly passive = new Map<NodeId, number>();
  /** Peers lost to a disconnection or failed dial: peer -> when. */
  private readonly graveyard = new Map<NodeId, number>();
  /** Peers that rejected (or did not answer) a NEIGHBOR request recently: peer -> when and whether it was high priority. */
  private readonly rejected = new Map<NodeId, { at: number; high: boolean }>();
  /** Priority of each outstanding NEIGHBOR request (parallel to `pending`). */
  private readonly pendingHigh = new Set<NodeId>();
  /** Isolation backoff: earliest time of the next JOIN attempt, and the current delay. */
  private nextJoinAt = 0;
  private joinBackoffMs = 0;
  private readonly repairing = new Set<NodeId>();
  private joining: { target: NodeId; at: number } | undefined;
  private lastShuffle: NodeId[] = [];
  private refillBudget = 0;
  private nextIdleRefill = 0;
  private nextRepair = 0;
  private stopped = false;
  /** Counters (tests, bench). */
  readonly stats = { joins: 0, promotions: 0, shuffles: 0, repairs: 0, evictions: 0 };

  constructor(opts: HyParViewOptions = {}) {
    this.cfg = hyparviewConfig(opts);
  }

  // ---- Queries -------------------------------------------------------------------------

  wants(peer: NodeId): boolean {
    return this.active.has(peer) || this.pending.has(peer);
  }
  activePeers(): NodeId[] {
    return [...this.active, ...this.pending.keys()];
  }
  neighbors(): NodeId[] {
    return [...this.up];
  }
  members(): NodeId[] {
    const out = [...this.active];
    for (const p of this.passive.keys()) if (!this.active.has(p)) out.push(p);
    return out;
  }
  passiveView(): NodeId[] {
    return [...this.passive.keys()];
  }

  // ---- Lifecycle -------------------------------------------------------------------------

  start(env: OverlayEnv, seed: ManagerSeed | undefined): void {
    const now = env.now;
    env.setTimer("shuffle", env.rng.range(this.cfg.shuffleMs / 2, this.cfg.shuffleMs * 1.5));
    this.nextRepair = now + env.rng.range(this.cfg.repairMs / 2, this.cfg.repairMs * 1.5);
    if (seed !== undefined) {
      // Switched in on a running node: known members seed the passive view; connected
      // peers are asked first, with high priority (the active view is empty: paper rule;
      // with low priority, peers already full refused and the node could stay without a
      // neighbour for longer than Plumtree's neighbour-sync window), the tick fills the rest.
      for (const p of sample(env.rng, seed.members, this.cfg.passiveSize)) if (p !== env.id) this.passive.set(p, now);
      const conn = env.rng.shuffle(seed.connected.filter((p) => p !== env.id));
      for (const p of conn.slice(0, this.cfg.activeSize)) this.requestNeighbor(env, p, true);
      if (this.pending.size === 0) this.join(env);
      return;
    }
    this.join(env);
  }

  stop(_env: OverlayEnv): void {
    this.stopped = true;
  }

  // ---- Active view -----------------------------------------------------------------------

  private markUp(env: OverlayEnv, peer: NodeId): void {
    if (this.active.has(peer) && env.isConnected(peer) && !this.up.has(peer)) {
      this.up.add(peer);
      env.neighborUp(peer);
      this.joinBackoffMs = 0;
      this.nextJoinAt = 0;
    }
  }

  private removeActive(env: OverlayEnv, peer: NodeId): boolean {
    if (!this.active.delete(peer)) return false;
    if (this.up.delete(peer)) env.neighborDown(peer);
    return true;
  }

  /** Add to the active view (dropping a random member if full). `neighbor`: also send a high-priority NEIGHBOR. */
  private addActive(env: OverlayEnv, peer: NodeId, neighbor: boolean): void {
    if (peer === env.id || this.active.has(peer)) return;
    this.clearPending(peer);
    this.passive.delete(peer);
    this.graveyard.delete(peer);
    if (this.joining?.target === peer) this.joining = undefined;
    while (this.active.size >= this.cfg.activeSize) this.dropRandom(env, peer);
    this.active.add(peer);
    if (neighbor) env.send(peer, { type: "hv.neighbor", high: true });
    else if (!env.isConnected(peer)) env.dial(peer);
    this.markUp(env, peer);
  }

  private dropRandom(env: OverlayEnv, except: NodeId): void {
    const q = pickFromSet(env.rng, this.active, (x) => x === except);
    if (q === undefined) return;
    this.stats.evictions++;
    env.sendIfConnected(q, { type: "hv.disconnect" });
    this.removeActive(env, q);
    this.addPassive(env, q, env.now);
    // No hang-up here: the connection is now unwanted on both sides and the shell's GC
    // closes it after transientIdleMs. (Hanging up at once can overtake the DISCONNECT.)
  }

  private addPassive(env: OverlayEnv, peer: NodeId, lastSeen: number, preferEvict?: readonly NodeId[]): void {
    if (peer === env.id || this.active.has(peer) || this.pending.has(peer)) return;
    if (env.now - lastSeen > this.cfg.passiveMaxAgeMs) return;
    const cur = this.passive.get(peer);
    if (cur !== undefined) {
      if (lastSeen > cur) this.passive.set(peer, lastSeen);
      return;
    }
    if (this.passive.size >= this.cfg.passiveSize) {
      let victim: NodeId | undefined;
      if (preferEvict !== undefined) for (const p of preferEvict) if (this.passive.has(p)) { victim = p; break; }
      victim ??= pickFromSet(env.rng, this.passive);
      if (victim !== undefined) this.passive.delete(victim);
    }
    this.passive.set(peer, lastSeen);
  }

  private bury(env: OverlayEnv, peer: NodeId): void {
    if (peer === env.id) return;
    this.graveyard.set(peer, env.now);
  }

  private requestNeighbor(env: OverlayEnv, peer: NodeId, high: boolean): void {
    if (peer === env.id || this.active.has(peer) || this.pending.has(peer)) return;
    this.pending.set(peer, env.now + this.cfg.neighborTimeoutMs);
    if (high) this.pendingHigh.add(peer);
    else this.pendingHigh.delete(peer);
    this.stats.promotions++;
    env.send(peer, { type: "hv.neighbor", high });
  }

  /** Forget an outstanding NEIGHBOR request; returns whether there was one. */
  private clearPending(peer: NodeId): boolean {
    this.pendingHigh.delete(peer);
    return this.pending.delete(peer);
  }

  /**
   * The active view just became empty: outstanding low-priority requests may be rejected
   * by full peers, so re-send them as high priority (paper: a node with an empty active
   * view asks with high priority, which is always accepted).
   */
  private upgradePending(env: OverlayEnv): void {
    for (const p of this.pending.keys()) {
      if (this.pendingHigh.has(p)) continue;
      this.pendingHigh.add(p);
      this.pending.set(p, env.now + this.cfg.neighborTimeoutMs);
      env.send(p, { type: "hv.neighbor", high: true });
    }
  }

  /** Candidate for a refill request: not already asked, and not recently refused at the priority we would ask with now. */
  private excluded(x: NodeId, high: boolean): boolean {
    if (this.pending.has(x)) return true;
    const r = this.rejected.get(x);
    return r !== undefined && (r.high || !high);
  }

  /**
   * Refill the active view from the passive view (paper: after an active member fails,
   * keep asking random passive members until one accepts). `refillBudget` bounds one such
   * episode to one pass over the passive view; a node whose view is merely not full (all
   * its candidates are full) retries only every idleRefillMs, so a stable overlay is quiet.
   */
  private refill(env: OverlayEnv): void {
    while (this.active.size + this.pending.size < this.cfg.activeSize && (this.refillBudget > 0 || this.active.size === 0)) {
      const high = this.active.size === 0;
      const q = pickFromSet(env.rng, this.passive, (x) => this.excluded(x, high));
      if (q === undefined) break;
      this.refillBudget--;
      this.requestNeighbor(env, q, high);
    }
    if (this.active.size === 0 && this.pending.size === 0 && this.joining === undefined) this.join(env);
  }

  /** An active member was lost: start a refill episode. */
  private startRefill(env: OverlayEnv): void {
    this.refillBudget = Math.max(this.refillBudget, this.passive.size);
    this.refill(env);
  }

  /**
   * Isolated (empty active view, nothing pending, passive view exhausted): JOIN through a
   * bootstrap peer or a recently lost one. Attempts back off exponentially (250 ms doubling
   * to 8 s, reset once the node has a neighbour again); the "rejoin" timer retries, so an
   * isolated node keeps trying until it has a neighbour, without a dial storm.
   */
  private join(env: OverlayEnv): void {
    const now = env.now;
    if (now < this.nextJoinAt) {
      env.setTimer("rejoin", this.nextJoinAt - now);
      return;
    }
    this.joinBackoffMs = this.joinBackoffMs === 0 ? 250 : Math.min(8000, this.joinBackoffMs * 2);
    this.nextJoinAt = now + this.joinBackoffMs;
    env.setTimer("rejoin", this.joinBackoffMs);
    const candidates: NodeId[] = [];
    for (const b of env.bootstrapPeers()) if (b !== env.id && !this.active.has(b)) candidates.push(b);
    for (const g of this.graveyard.keys()) if (!candidates.includes(g)) candidates.push(g);
    if (candidates.length === 0) return;
    const target = env.rng.pick(candidates);
    this.joining = { target, at: now };
    this.stats.joins++;
    env.send(target, { type: "hv.join" });
  }

  /** Tell a peer that just joined (or re-joined through us) some live-looking members, so its passive view is not empty. */
  private sharePeers(env: OverlayEnv, to: NodeId): void {
    const now = env.now;
    const peers: AgedPeer[] = [];
    for (const p of this.active) if (p !== to) peers.push([p, 0]);
    for (const p of sample(env.rng, [...this.passive.keys()].filter((x) => x !== to), Math.max(0, this.cfg.passiveSize - peers.length)))
      peers.push([p, Math.max(0, now - this.passive.get(p)!)]);
    if (peers.length > 0) env.sendIfConnected(to, { type: "hv.shuffle_reply", peers });
  }

  // ---- Events ------------------------------------------------------------------------------

  onConnected(env: OverlayEnv, peer: NodeId, _outbound: boolean): void {
    if (this.stopped) return;
    if (this.joining?.target === peer) {
      // The JOIN was flushed on this connection; the contact always takes us.
      this.addActive(env, peer, false);
    }
    if (this.repairing.delete(peer) && !this.active.has(peer) && !this.pending.has(peer)) {
      this.stats.repairs++;
      this.graveyard.clear();
      this.addActive(env, peer, true);
    }
    this.markUp(env, peer);
  }

  onDisconnected(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.lost(env, peer);
  }

  onPeerFailed(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.passive.delete(peer);
    this.lost(env, peer);
  }

  private lost(env: OverlayEnv, peer: NodeId): void {
    const wasActive = this.removeActive(env, peer);
    const wasPending = this.clearPending(peer);
    if (this.joining?.target === peer) this.joining = undefined;
    if (wasActive || wasPending) {
      this.bury(env, peer);
      if (wasActive && this.active.size === 0) this.upgradePending(env);
      if (wasActive) this.startRefill(env);
      else this.refill(env);
    }
  }

  onDialFailed(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.repairing.delete(peer);
    this.passive.delete(peer);
    const wasActive = this.removeActive(env, peer);
    const wasPending = this.clearPending(peer);
    const wasJoin = this.joining?.target === peer;
    if (wasJoin) this.joining = undefined;
    if (wasActive || wasPending || wasJoin) {
      this.bury(env, peer);
      if (wasActive && this.active.size === 0) this.upgradePending(env);
      if (wasActive) this.startRefill(env);
      else this.refill(env);
    }
  }

  onDiscovered(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped || peer === env.id) return;
    if (this.active.size === 0 && this.pending.size === 0 && this.joining === undefined) {
      this.joining = { target: peer, at: env.now };
      this.stats.joins++;
      env.send(peer, { type: "hv.join" });
    } else this.addPassive(env, peer, env.now);
  }

  onHeard(env: OverlayEnv, from: NodeId): void {
    if (this.passive.has(from)) this.passive.set(from, env.now);
  }

  onMessage(env: OverlayEnv, from: NodeId, msg: TopologyMessage): void {
    if (this.stopped || !msg.type.startsWith("hv.")) return;
    const m = msg as HyParViewMessage;
    this.graveyard.delete(from); // direct evidence of life
    switch (m.type) {
      case "hv.join": {
        this.addActive(env, from, false);
        this.sharePeers(env, from);
        for (const q of this.active) if (q !== from) env.sendIfConnected(q, { type: "hv.forward_join", node: from, ttl: this.cfg.arwl });
        return;
      }
      case "hv.forward_join": {
        const n = m.node;
        if (n === env.id || n === undefined || n === null) return;
        const ttl = typeof m.ttl === "number" ? m.ttl : 0;
        if (ttl <= 0 || this.active.size <= 1) {
          this.addActive(env, n, true);
          return;
        }
        if (ttl === this.cfg.prwl) this.addPassive(env, n, env.now);
        if (this.active.has(n)) return;
        const next = pickFromSet(env.rng, this.up, (x) => x === from || x === n);
        if (next === undefined) this.addActive(env, n, true);
        else env.sendIfConnected(next, { type: "hv.forward_join", node: n, ttl: ttl - 1 });
        return;
      }
      case "hv.neighbor": {
        if (this.active.has(from)) {
          env.sendIfConnected(from, { type: "hv.neighbor_reply", accepted: true });
          this.markUp(env, from);
          return;
        }
        // A crossing request (both asked each other): accept, we wanted it anyway.
        const accept = m.high === true || this.active.size < this.cfg.activeSize || this.pending.has(from);
        if (accept) this.addActive(env, from, false);
        env.sendIfConnected(from, { type: "hv.neighbor_reply", accepted: accept });
        // A high-priority request comes from a node with an empty active view: it may have
        // lost its passive view too, so give it fresh candidates.
        if (accept && m.high === true) this.sharePeers(env, from);
        return;
      }
      case "hv.neighbor_reply": {
        const wasHigh = this.pendingHigh.has(from);
        const wasPending = this.clearPending(from);
        if (m.accepted) {
          if (wasPending || this.active.size < this.cfg.activeSize) this.addActive(env, from, false);
          else if (!this.active.has(from)) env.sendIfConnected(from, { type: "hv.disconnect" });
        } else if (wasPending) {
          this.rejected.set(from, { at: env.now, high: wasHigh });
          this.refill(env);
        }
        return;
      }
      case "hv.disconnect": {
        this.clearPending(from);
        if (this.removeActive(env, from)) {
          this.addPassive(env, from, env.now);
          if (this.active.size === 0) this.upgradePending(env);
          this.startRefill(env);
        }
        return;
      }
      case "hv.shuffle": {
        if (m.origin === env.id || !Array.isArray(m.peers)) return;
        const ttl = (typeof m.ttl === "number" ? m.ttl : 0) - 1;
        if (ttl > 0 && this.active.size > 1) {
          const next = pickFromSet(env.rng, this.up, (x) => x === from || x === m.origin);
          if (next !== undefined) {
            env.sendIfConnected(next, { type: "hv.shuffle", origin: m.origin, ttl, peers: m.peers });
            return;
          }
        }
        const reply = this.samplePassive(env, m.peers.length);
        env.send(m.origin, { type: "hv.shuffle_reply", peers: reply });
        this.integrate(env, m.peers, reply.map((e) => e[0]));
        return;
      }
      case "hv.shuffle_reply": {
        if (!Array.isArray(m.peers)) return;
        this.integrate(env, m.peers, this.lastShuffle);
        return;
      }
    }
  }

  private samplePassive(env: OverlayEnv, k: number): AgedPeer[] {
    const now = env.now;
    return sample(env.rng, [...this.passive.keys()], k).map((p) => [p, Math.max(0, now - this.passive.get(p)!)]);
  }

  private integrate(env: OverlayEnv, peers: readonly AgedPeer[], preferEvict: readonly NodeId[]): void {
    const now = env.now;
    for (const e of peers) {
      if (!Array.isArray(e)) continue;
      const [p, age] = e;
      if (p === env.id || this.graveyard.has(p) || typeof age !== "number") continue;
      this.addPassive(env, p, now - Math.max(0, age), preferEvict);
    }
  }

  onTimer(env: OverlayEnv, name: string): void {
    if (this.stopped) return;
    switch (name) {
      case "shuffle":
        this.shuffle(env);
        env.setTimer("shuffle", env.rng.range(this.cfg.shuffleMs * 0.75, this.cfg.shuffleMs * 1.25));
        return;
      case "rejoin":
        if (this.active.size === 0) this.refill(env);
        return;
    }
  }

  /** Maintenance (shell tick, ~1 s): expire passive entries and timed-out requests, refill, re-join. */
  tick(env: OverlayEnv): void {
    if (this.stopped) return;
    const now = env.now;
    const maxAge = this.cfg.passiveMaxAgeMs;
    for (const [p, seen] of this.passive) if (now - seen > maxAge) this.passive.delete(p);
    for (const [p, deadline] of this.pending) {
      if (deadline <= now) {
        this.rejected.set(p, { at: now, high: this.pendingHigh.has(p) });
        this.clearPending(p);
      }
    }
    for (const [p, r] of this.rejected) if (now - r.at > 3000) this.rejected.delete(p);
    for (const [p, t] of this.graveyard) if (now - t > this.cfg.graveyardTtlMs) this.graveyard.delete(p);
    if (this.joining !== undefined && now - this.joining.at > this.cfg.neighborTimeoutMs) this.joining = undefined;
    if (this.active.size + this.pending.size < this.cfg.activeSize && this.refillBudget <= 0 && now >= this.nextIdleRefill) {
      // A leaf (one active member) is one failure away from isolation and, with its only
      // neighbour, may form a two-node island (seen after a switch back to hyparview): it
      // asks every tick rather than every idleRefillMs.
      this.nextIdleRefill = now + (this.active.size <= 1 ? 1000 : this.cfg.idleRefillMs);
      this.refillBudget = 1;
    }
    this.refill(env);
    if (now >= this.nextRepair) {
      this.nextRepair = now + env.rng.range(this.cfg.repairMs * 0.75, this.cfg.repairMs * 1.25);
      this.repair(env);
    }
  }

  private shuffle(env: OverlayEnv): void {
    const target = pickFromSet(env.rng, this.up);
    if (target === undefined) return;
    const now = env.now;
    const act = sample(env.rng, [...this.up].filter((p) => p !== target), this.cfg.ka);
    const pas = sample(env.rng, [...this.passive.keys()].filter((p) => p !== target), this.cfg.kp);
    const peers: AgedPeer[] = [[env.id, 0]];
    for (const p of act) peers.push([p, 0]);
    for (const p of pas) peers.push([p, Math.max(0, now - this.passive.get(p)!)]);
    this.lastShuffle = pas;
    this.stats.shuffles++;
    env.sendIfConnected(target, { type: "hv.shuffle", origin: env.id, ttl: this.cfg.arwl, peers });
  }

  private repair(env: OverlayEnv): void {
    const g = pickFromSet(env.rng, this.graveyard, (x) => this.active.has(x) || this.pending.has(x));
    if (g === undefined) return;
    this.graveyard.delete(g);
    if (env.isConnected(g)) {
      // Already connected (transient): treat as reachable.
      this.stats.repairs++;
      this.graveyard.clear();
      this.addActive(env, g, true);
      return;
    }
    this.repairing.add(g);
    env.dial(g);
  }
}
