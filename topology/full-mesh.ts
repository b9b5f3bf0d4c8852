// Full-membership overlays: full-mesh (connect to every live member) and client-server
// (clients keep connections to a few servers only; servers full-mesh among themselves).
//
// Membership is a list of {id, incarnation, alive} spread by gossip, SWIM style: every
// gossipMs the recent updates go to `gossipFanout` random neighbours (each update is sent
// about 3 * log2(N) times), and a full list goes to one random neighbour every
// `fullSyncEvery` rounds (anti-entropy). A new node sends its entry to its bootstrap peer
// with `reply: true` and gets the whole list back.
//
// Failure: a member is declared dead by the failure detector, or after `maxDialFailures`
// consecutive failed dials (a disconnect triggers a re-dial). The death spreads as
// {alive: false, inc}. Only a member itself raises its incarnation: when it sees itself
// declared dead (it is told directly when still connected to the declarer), it refutes with
// inc + 1, which overrides the death everywhere. Incarnations start at the node's boot
// count, so a restarted node overrides its old death too.
//
// Partition repair: every ~repairMs a node dials one member declared dead in the last
// graveyardTtlMs; if it answers, both exchange full lists, each learns it was declared dead
// on the other side and refutes, and everybody re-dials everybody.

import { pickFromSet, sample } from "./shell.js";
import type {
  ClientServerOptions,
  FullMeshOptions,
  ManagerSeed,
  MemberEntry,
  MembershipMessage,
  NodeId,
  OverlayEnv,
  OverlayManager,
  TopologyMessage,
} from "./types.js";

interface Member {
  inc: number;
  alive: boolean;
  role: "server" | "client" | undefined;
  /** When the status last changed. */
  since: number;
  failures: number;
  /** Earliest next dial. */
  nextDial: number;
}

export class FullMesh implements OverlayManager {
  readonly name: "full-mesh" | "client-server" = "full-mesh";
  readonly broadcastMode: "tree" | "direct" = "direct";
  protected readonly o: Required<FullMeshOptions>;
  readonly list = new Map<NodeId, Member>();
  /** Connected live members we keep (broadcast edges). */
  protected readonly up = new Set<NodeId>();
  /** Updates still to gossip: member id -> transmissions left. */
  protected readonly recent = new Map<NodeId, number>();
  protected selfInc = 0;
  protected round = 0;
  protected stopped = false;
  protected readonly repairing = new Set<NodeId>();
  protected selfRole: "server" | "client" | undefined = undefined;
  readonly stats = { declaredDead: 0, refutations: 0, repairs: 0 };

  constructor(opts: FullMeshOptions = {}) {
    this.o = {
      gossipMs: opts.gossipMs ?? 500,
      gossipFanout: opts.gossipFanout ?? 3,
      fullSyncEvery: opts.fullSyncEvery ?? 10,
      maxDialFailures: opts.maxDialFailures ?? 2,
      redialMs: opts.redialMs ?? 500,
      repairMs: opts.repairMs ?? 5000,
      graveyardTtlMs: opts.graveyardTtlMs ?? 600_000,
    };
  }

  // ---- Policy hooks (client-server overrides) -------------------------------------------

  /** Should this node keep a connection to member `p` (alive)? */
  protected keep(_p: NodeId, _m: Member): boolean {
    return true;
  }
  /** Should this node dial member `p` (alive, not connected)? */
  protected shouldDial(p: NodeId, m: Member): boolean {
    return this.keep(p, m);
  }
  /** Entries to send when a peer asks for the full list. */
  protected fullListFor(_peer: NodeId): MemberEntry[] {
    return this.entries();
  }
  /** Re-evaluate which members to keep (client-server: server choice). */
  protected rebalance(_env: OverlayEnv): void {}

  // ---- Queries -------------------------------------------------------------------------

  wants(peer: NodeId): boolean {
    const m = this.list.get(peer);
    return m !== undefined && m.alive && this.keep(peer, m);
  }
  activePeers(): NodeId[] {
    const out: NodeId[] = [];
    for (const [p, m] of this.list) if (m.alive && this.keep(p, m)) out.push(p);
    return out;
  }
  neighbors(): NodeId[] {
    return [...this.up];
  }
  members(): NodeId[] {
    const out: NodeId[] = [];
    for (const [p, m] of this.list) if (m.alive) out.push(p);
    return out;
  }
  /** The member entry for `p` (tests). */
  entry(p: NodeId): { inc: number; alive: boolean } | undefined {
    const m = this.list.get(p);
    return m === undefined ? undefined : { inc: m.inc, alive: m.alive };
  }

  protected entries(): MemberEntry[] {
    const out: MemberEntry[] = [];
    for (const [id, m] of this.list) out.push(this.entryOf(id, m));
    return out;
  }
  protected entryOf(id: NodeId, m: Member): MemberEntry {
    return m.role === undefined ? { id, inc: m.inc, alive: m.alive } : { id, inc: m.inc, alive: m.alive, role: m.role };
  }
  protected selfEntry(env: OverlayEnv): MemberEntry {
    return this.selfRole === undefined ? { id: env.id, inc: this.selfInc, alive: true } : { id: env.id, inc: this.selfInc, alive: true, role: this.selfRole };
  }

  private transmissions(): number {
    return Math.ceil(3 * Math.log2(this.list.size + 2));
  }

  // ---- Lifecycle -------------------------------------------------------------------------

  start(env: OverlayEnv, seed: ManagerSeed | undefined): void {
    this.selfInc = Math.max(this.selfInc, env.incarnation);
    this.list.delete(env.id);
    const now = env.now;
    env.setTimer("gossip", env.rng.range(0, this.o.gossipMs));
    env.setTimer("repair", env.rng.range(this.o.repairMs / 2, this.o.repairMs * 1.5));
    this.recent.set(env.id, this.transmissions());
    if (seed !== undefined) {
      for (const p of seed.members) if (p !== env.id && !this.list.has(p)) this.list.set(p, this.newMember(now, undefined));
      for (const p of seed.connected) if (p !== env.id && !this.list.has(p)) this.list.set(p, this.newMember(now, undefined));
      // Connected peers may be asked for their lists (they may know more).
      const conn = seed.connected.filter((p) => p !== env.id);
      for (const p of sample(env.rng, conn, 2)) env.sendIfConnected(p, { type: "mb.sync", members: [this.selfEntry(env)], full: false, reply: true });
      for (const p of conn) this.onConnected(env, p, true);
    }
    for (const b of env.bootstrapPeers()) this.contact(env, b);
    this.rebalance(env);
    this.dialMissing(env);
  }

  stop(_env: OverlayEnv): void {
    this.stopped = true;
  }

  protected newMember(now: number, role: "server" | "client" | undefined): Member {
    return { inc: 0, alive: true, role, since: now, failures: 0, nextDial: now };
  }

  /** Introduce ourselves to `peer` (bootstrap) and ask for its list. */
  protected contact(env: OverlayEnv, peer: NodeId): void {
    if (peer === env.id) return;
    if (!this.list.has(peer)) this.list.set(peer, this.newMember(env.now, undefined));
    env.send(peer, { type: "mb.sync", members: [this.selfEntry(env)], full: false, reply: true });
  }

  private setUp(env: OverlayEnv, p: NodeId, on: boolean): void {
    if (on) {
      if (!this.up.has(p)) {
        this.up.add(p);
        env.neighborUp(p);
      }
    } else if (this.up.delete(p)) env.neighborDown(p);
  }

  protected refreshUp(env: OverlayEnv, p: NodeId): void {
    const m = this.list.get(p);
    this.setUp(env, p, m !== undefined && m.alive && this.keep(p, m) && env.isConnected(p));
  }

  protected dialMissing(env: OverlayEnv): void {
    const now = env.now;
    for (const [p, m] of this.list) {
      if (!m.alive || m.nextDial > now || env.isConnected(p) || env.isDialing(p)) continue;
      if (this.shouldDial(p, m)) env.dial(p);
    }
  }

  protected declareDead(env: OverlayEnv, p: NodeId): void {
    const m = this.list.get(p);
    if (m === undefined || !m.alive) return;
    m.alive = false;
    m.since = env.now;
    this.stats.declaredDead++;
    this.recent.set(p, this.transmissions());
    this.setUp(env, p, false);
    this.rebalance(env);
  }

  // ---- Events ------------------------------------------------------------------------------

  onConnected(env: OverlayEnv, peer: NodeId, _outbound: boolean): void {
    if (this.stopped) return;
    let m = this.list.get(peer);
    if (m === undefined) {
      m = this.newMember(env.now, undefined);
      this.list.set(peer, m);
      this.recent.set(peer, this.transmissions());
    }
    m.failures = 0;
    if (this.repairing.delete(peer)) {
      this.stats.repairs++;
      env.sendIfConnected(peer, { type: "mb.sync", members: this.fullListFor(peer), full: true, reply: true });
    } else if (!m.alive) {
      // Tell it directly so that it refutes (if it is alive, it will).
      env.sendIfConnected(peer, { type: "mb.sync", members: [this.entryOf(peer, m)], full: false, reply: false });
    }
    this.refreshUp(env, peer);
  }

  onDisconnected(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.setUp(env, peer, false);
    const m = this.list.get(peer);
    if (m !== undefined && m.alive) m.nextDial = env.now + this.o.redialMs * (0.5 + env.rng.next());
  }

  onDialFailed(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.repairing.delete(peer);
    const m = this.list.get(peer);
    if (m === undefined || !m.alive) return;
    m.failures++;
    if (m.failures >= this.o.maxDialFailures) this.declareDead(env, peer);
    else m.nextDial = env.now + this.o.redialMs * (0.5 + env.rng.next());
  }

  onPeerFailed(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.declareDead(env, peer);
  }

  onDiscovered(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.contact(env, peer);
  }

  onMessage(env: OverlayEnv, from: NodeId, msg: TopologyMessage): void {
    if (this.stopped || msg.type !== "mb.sync") return;
    const m = msg as MembershipMessage;
    if (!Array.isArray(m.members)) return;
    for (const e of m.members) this.merge(env, e);
    // The sender is alive right now.
    const s = this.list.get(from);
    if (s !== undefined && !s.alive) env.sendIfConnected(from, { type: "mb.sync", members: [this.entryOf(from, s)], full: false, reply: false });
    if (m.reply) env.send(from, { type: "mb.sync", members: [this.selfEntry(env), ...this.fullListFor(from)], full: true, reply: false });
    this.rebalance(env);
  }

  /** Dial one member now if policy says so. */
  protected maybeDial(env: OverlayEnv, p: NodeId, m: Member): void {
    if (m.alive && !env.isConnected(p) && !env.isDialing(p) && this.shouldDial(p, m)) env.dial(p);
  }

  protected merge(env: OverlayEnv, e: MemberEntry): void {
    if (e === null || typeof e !== "object" || typeof e.inc !== "number") return;
    if (e.id === env.id) {
      if (!e.alive && e.inc >= this.selfInc) {
        this.selfInc = e.inc + 1;
        this.stats.refutations++;
        this.recent.set(env.id, this.transmissions());
        // Refute at once to every neighbour (the declarer may be among them).
        for (const p of this.up) env.sendIfConnected(p, { type: "mb.sync", members: [this.selfEntry(env)], full: false, reply: false });
      }
      return;
    }
    const now = env.now;
    const cur = this.list.get(e.id);
    const role = e.role === "server" || e.role === "client" ? e.role : undefined;
    if (cur === undefined) {
      const m: Member = { inc: e.inc, alive: e.alive === true, role, since: now, failures: 0, nextDial: now };
      this.list.set(e.id, m);
      this.recent.set(e.id, this.transmissions());
      this.maybeDial(env, e.id, m);
      return;
    }
    if (role !== undefined) cur.role = role;
    const newer = e.inc > cur.inc || (e.inc === cur.inc && !e.alive && cur.alive);
    if (!newer) return;
    const wasAlive = cur.alive;
    cur.inc = e.inc;
    cur.alive = e.alive === true;
    this.recent.set(e.id, this.transmissions());
    if (wasAlive && !cur.alive) {
      cur.since = now;
      this.setUp(env, e.id, false);
      // Still connected: tell it, so that it refutes if alive.
      if (env.isConnected(e.id)) env.sendIfConnected(e.id, { type: "mb.sync", members: [this.entryOf(e.id, cur)], full: false, reply: false });
    } else if (!wasAlive && cur.alive) {
      cur.since = now;
      cur.failures = 0;
      cur.nextDial = now;
      this.refreshUp(env, e.id);
      this.maybeDial(env, e.id, cur);
    }
  }

  onTimer(env: OverlayEnv, name: string): void {
    if (this.stopped) return;
    if (name === "gossip") {
      this.gossip(env);
      env.setTimer("gossip", this.o.gossipMs);
    } else if (name === "repair") {
      this.repair(env);
      env.setTimer("repair", env.rng.range(this.o.repairMs * 0.75, this.o.repairMs * 1.25));
    }
  }

  /** Gossip targets for a round. */
  protected gossipTargets(env: OverlayEnv, k: number): NodeId[] {
    return sample(env.rng, [...this.up], k);
  }

  private gossip(env: OverlayEnv): void {
    this.round++;
    if (this.recent.size > 0) {
      const upd: MemberEntry[] = [];
      for (const [id, left] of this.recent) {
        if (id === env.id) upd.push(this.selfEntry(env));
        else {
          const m = this.list.get(id);
          if (m !== undefined) upd.push(this.entryOf(id, m));
        }
        if (left <= 1) this.recent.delete(id);
        else this.recent.set(id, left - 1);
      }
      for (const p of this.gossipTargets(env, this.o.gossipFanout)) env.sendIfConnected(p, { type: "mb.sync", members: upd, full: false, reply: false });
    }
    if (this.round % this.o.fullSyncEvery === 0) {
      const p = this.gossipTargets(env, 1)[0];
      if (p !== undefined) env.sendIfConnected(p, { type: "mb.sync", members: [this.selfEntry(env), ...this.fullListFor(p)], full: true, reply: false });
    }
    // Forget long-dead members; re-dial live ones we miss.
    const now = env.now;
    for (const [p, m] of this.list) if (!m.alive && now - m.since > this.o.graveyardTtlMs) this.list.delete(p);
    this.rebalance(env);
    this.dialMissing(env);
  }

  private repair(env: OverlayEnv): void {
    const now = env.now;
    const g = pickFromSet(env.rng, this.list, (p) => {
      const m = this.list.get(p)!;
      return m.alive || now - m.since > this.o.graveyardTtlMs || env.isConnected(p) || env.isDialing(p);
    });
    if (g === undefined) return;
    this.repairing.add(g);
    env.dial(g);
  }
}

/**
 * Client-server: servers full-mesh among themselves (and keep the connections clients
 * open to them); a client keeps connections to `serversPerClient` live servers, chosen at
 * random and replaced when one dies. Broadcast runs Plumtree over these edges.
 */
export class ClientServer extends FullMesh {
  override readonly name = "client-server" as const;
  override readonly broadcastMode = "tree" as const;
  private readonly role: "server" | "client";
  private readonly perClient: number;
  /** Client: the servers it keeps. */
  private readonly chosen = new Set<NodeId>();

  constructor(opts: ClientServerOptions) {
    super(opts);
    this.role = opts.role;
    this.selfRole = opts.role;
    this.perClient = opts.serversPerClient ?? 3;
    for (const s of opts.servers ?? []) this.list.set(s, this.newMember(0, "server"));
  }

  isServer(): boolean {
    return this.role === "server";
  }
  chosenServers(): NodeId[] {
    return [...this.chosen];
  }

  protected override keep(p: NodeId, m: Member): boolean {
    if (this.role === "server") return m.role !== "client" || this.up.has(p) || this.connectedClient(p);
    return this.chosen.has(p);
  }
  private connectedFlags = new Set<NodeId>();
  private connectedClient(p: NodeId): boolean {
    return this.connectedFlags.has(p);
  }
  protected override shouldDial(p: NodeId, m: Member): boolean {
    // Servers dial servers only; clients dial their chosen servers.
    if (this.role === "server") return m.role === "server";
    return this.chosen.has(p);
  }
  protected override fullListFor(peer: NodeId): MemberEntry[] {
    const m = this.list.get(peer);
    if (this.role === "server" && m?.role === "client") {
      const out: MemberEntry[] = [];
      for (const [id, e] of this.list) if (e.role === "server") out.push(this.entryOf(id, e));
      return out;
    }
    return super.fullListFor(peer);
  }
  protected override gossipTargets(env: OverlayEnv, k: number): NodeId[] {
    if (this.role === "client") return super.gossipTargets(env, 1);
    const servers = [...this.up].filter((p) => this.list.get(p)?.role !== "client");
    return sample(env.rng, servers, k);
  }

  override onConnected(env: OverlayEnv, peer: NodeId, outbound: boolean): void {
    if (this.stopped) return;
    if (this.role === "server" && !outbound) this.connectedFlags.add(peer);
    // A client introduces itself (with its role) to each server it keeps, and learns the servers.
    if (this.role === "client" && this.chosen.has(peer)) env.sendIfConnected(peer, { type: "mb.sync", members: [this.selfEntry(env)], full: false, reply: true });
    super.onConnected(env, peer, outbound);
  }
  override onDisconnected(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.connectedFlags.delete(peer);
    const m = this.list.get(peer);
    super.onDisconnected(env, peer);
    // A server does not re-dial clients: a client that went away is gone until it comes back.
    if (this.role === "server" && m?.role === "client") this.declareDead(env, peer);
  }

  protected override rebalance(env: OverlayEnv): void {
    if (this.role !== "client") return;
    for (const s of [...this.chosen]) {
      const m = this.list.get(s);
      if (m === undefined || !m.alive || m.role === "client") {
        this.chosen.delete(s);
        if (env.isConnected(s)) env.hangUp(s);
        this.refreshUp(env, s);
      }
    }
    if (this.chosen.size >= this.perClient) return;
    const candidates: NodeId[] = [];
    for (const [p, m] of this.list) if (m.alive && m.role === "server" && !this.chosen.has(p)) candidates.push(p);
    for (const s of sample(env.rng, candidates, this.perClient - this.chosen.size)) {
      this.chosen.add(s);
      this.refreshUp(env, s);
    }
  }

  override start(env: OverlayEnv, seed: ManagerSeed | undefined): void {
    super.start(env, seed);
    for (const p of env.bootstrapPeers()) {
      const m = this.list.get(p);
      if (m !== undefined && m.role === undefined && this.role === "client") m.role = "server";
    }
  }
}
