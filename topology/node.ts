// TopologyNode: the node-level shell every peer runs. It owns the connection table,
// the failure detector and the broadcast layer, and routes events to the current overlay
// manager, which can be replaced at run time (`setTopology`) without losing connections,
// known members or broadcasts in flight.

import type { NodeContext, NodeEvent } from "../src/sim/protocol.js";
import { Detector } from "./detector.js";
import { createManager } from "./managers.js";
import { Plumtree } from "./plumtree.js";
import type { Shell } from "./shell.js";
import type {
  BroadcastMessage,
  BroadcastOptions,
  Ctx,
  Delivery,
  DetectorMessage,
  ManagerOptions,
  ManagerSeed,
  NodeId,
  OverlayEnv,
  OverlayManager,
  Topology,
  TopologyMessage,
  TopologyName,
  TopologyNodeOptions,
} from "./types.js";

const MAX_QUEUE = 256;

/** Counters for tests and benchmarks. */
export interface NodeStats {
  switches: number;
  transientClosed: number;
  badMessages: number;
}

export class TopologyNode implements Topology, Shell {
  private c: Ctx | undefined;
  private mgr: OverlayManager;
  private gen = 0;
  private inc = 0;
  private readonly open = new Set<NodeId>();
  private readonly dialing = new Set<NodeId>();
  /** Messages waiting for a dial, with when they were queued. */
  private readonly queue = new Map<NodeId, { msg: TopologyMessage; at: number }[]>();
  /** Connection opened / last transient use (for the GC of connections the manager does not want). */
  private readonly lastUse = new Map<NodeId, number>();
  private readonly bootstrap: NodeId[] = [];
  readonly detector: Detector;
  readonly plumtree: Plumtree;
  private readonly reliableDefault: boolean;
  private readonly transientIdleMs: number;
  private readonly tickMs: number;
  private readonly env: OverlayEnv;
  private started = false;
  /** Outside `handle` (simulator callbacks), read time from here. */
  private readonly clock: (() => number) | undefined;
  onDeliver: ((d: Delivery) => void) | undefined;
  onAcked: ((id: string) => void) | undefined;
  readonly stats: NodeStats = { switches: 0, transientClosed: 0, badMessages: 0 };

  constructor(opts: TopologyNodeOptions & { clock?: () => number }) {
    this.mgr = createManager(opts.topology, opts.options);
    this.detector = new Detector(this, opts.detector);
    this.plumtree = new Plumtree(this, opts.plumtree);
    this.reliableDefault = opts.reliable ?? false;
    this.transientIdleMs = opts.transientIdleMs ?? 3000;
    this.tickMs = opts.detector?.probeMs ?? 1000;
    this.onDeliver = opts.onDeliver;
    this.onAcked = opts.onAcked;
    this.clock = opts.clock;
    for (const b of opts.bootstrap ?? []) if (!this.bootstrap.includes(b)) this.bootstrap.push(b);
    this.env = this.makeEnv();
  }

  // ---- Shell (for detector / plumtree) ----------------------------------------------

  get ctx(): Ctx {
    if (this.c === undefined) throw new Error("topology node used before its first event");
    return this.c;
  }
  get now(): number {
    return this.clock !== undefined ? this.clock() : this.ctx.now;
  }
  get id(): NodeId {
    return this.ctx.id;
  }
  get incarnation(): number {
    return this.inc;
  }
  get name(): TopologyName {
    return this.mgr.name;
  }
  /** The current manager (for tests and the adapter's status page). */
  get manager(): OverlayManager {
    return this.mgr;
  }

  isOpen(peer: NodeId): boolean {
    return this.open.has(peer);
  }

  sendIfConnected(peer: NodeId, msg: TopologyMessage): boolean {
    if (!this.open.has(peer)) return false;
    this.ctx.send(peer, msg);
    return true;
  }

  /**
   * Send, dialing first if needed. This is the "transient use" path (shuffle replies,
   * ping-req, joins): it restarts the idle clock of a connection the manager does not
   * want. Replies on an existing connection (sendIfConnected) do not, so a connection only
   * the other side wants is closed after transientIdleMs, which resolves asymmetric views.
   */
  send(peer: NodeId, msg: TopologyMessage): void {
    if (peer === this.id) return;
    this.lastUse.set(peer, this.now);
    if (this.sendIfConnected(peer, msg)) return;
    let q = this.queue.get(peer);
    if (q === undefined) this.queue.set(peer, (q = []));
    if (q.length < MAX_QUEUE) q.push({ msg, at: this.now });
    this.dialPeer(peer);
  }

  private dialPeer(peer: NodeId): void {
    if (peer === this.id || this.open.has(peer) || this.dialing.has(peer)) return;
    this.dialing.add(peer);
    this.ctx.dial(peer);
  }

  /** Close a connection (or cancel a dial) and forget everything queued on it. */
  hangUp(peer: NodeId): void {
    const wasOpen = this.open.delete(peer);
    this.dialing.delete(peer);
    this.queue.delete(peer);
    this.lastUse.delete(peer);
    this.ctx.hangUp(peer);
    if (wasOpen) {
      this.detector.forget(peer);
      this.plumtree.connectionClosed(peer);
    }
  }

  neighborList(): NodeId[] {
    return this.mgr.neighbors();
  }

  isNeighbor(peer: NodeId): boolean {
    return this.plumtree.eager.has(peer) || this.plumtree.lazy.has(peer);
  }

  broadcastMode(): "tree" | "direct" {
    return this.mgr.broadcastMode;
  }

  peerFailed(peer: NodeId): void {
    this.hangUp(peer);
    this.mgr.onPeerFailed(this.env, peer);
  }

  deliver(d: Delivery): void {
    this.onDeliver?.(d);
  }

  acked(id: string): void {
    this.onAcked?.(id);
  }

  // ---- Topology API -------------------------------------------------------------------

  activePeers(): NodeId[] {
    return this.mgr.activePeers();
  }
  neighbors(): NodeId[] {
    return this.mgr.neighbors();
  }
  members(): NodeId[] {
    return this.mgr.members();
  }
  /** Open connections (whatever their purpose). */
  connections(): NodeId[] {
    return [...this.open];
  }

  broadcast(payload: unknown, opts: BroadcastOptions = {}): string {
    return this.plumtree.broadcast(payload, opts.reliable ?? this.reliableDefault);
  }

  discover(peer: NodeId): void {
    if (this.c === undefined || peer === this.id) return;
    if (!this.bootstrap.includes(peer)) this.bootstrap.push(peer);
    this.mgr.onDiscovered(this.env, peer);
  }

  setTopology(name: TopologyName, options?: ManagerOptions): void {
    const old = this.mgr;
    const seed: ManagerSeed = { members: old.members(), connected: [...this.open] };
    old.stop(this.env);
    // Old neighbours stop being broadcast edges (in-flight retransmissions continue on the
    // open connections); every connection gets a full idle grace before the GC may close it.
    for (const p of old.neighbors()) this.plumtree.neighborDown(p);
    this.plumtree.resetNeighbors();
    const now = this.now;
    for (const p of this.open) this.lastUse.set(p, now);
    this.gen++;
    this.stats.switches++;
    this.mgr = createManager(name, options);
    this.mgr.start(this.env, seed);
  }

  // ---- Event routing ------------------------------------------------------------------

  handle(ev: NodeEvent<TopologyMessage>, ctx: NodeContext<TopologyMessage>): void {
    this.c = ctx;
    const env = this.env;
    switch (ev.type) {
      case "start": {
        if (this.started) return;
        this.started = true;
        this.inc = (ctx.storage.get<number>("topology.incarnation") ?? 0) + 1;
        ctx.storage.set("topology.incarnation", this.inc);
        ctx.setTimer("tick", ctx.rng.range(0, this.tickMs));
        this.mgr.start(env, undefined);
        return;
      }
      case "message": {
        const msg = ev.msg as TopologyMessage | null;
        if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") {
          this.stats.badMessages++;
          return;
        }
        const from = ev.from;
        this.detector.heard(from);
        this.mgr.onHeard?.(env, from);
        const t = msg.type;
        if (t.startsWith("pt.")) this.plumtree.onMessage(from, msg as BroadcastMessage);
        else if (t.startsWith("fd.")) this.detector.onMessage(from, msg as DetectorMessage);
        else this.mgr.onMessage(env, from, msg);
        return;
      }
      case "timer": {
        const name = String(ev.name);
        if (name === "tick") {
          // One timer drives the detector, the transient-connection GC and the manager's
          // maintenance: at 10,000 nodes every event counts.
          ctx.setTimer("tick", this.tickMs);
          this.detector.tick();
          this.gc();
          this.mgr.tick?.(env);
        } else if (name.startsWith("pt.")) this.plumtree.onTimer(name);
        else if (name.startsWith("m")) {
          const dot = name.indexOf(".");
          if (dot > 0 && Number(name.slice(1, dot)) === this.gen) this.mgr.onTimer(env, name.slice(dot + 1));
        }
        return;
      }
      case "connected": {
        const peer = ev.peer;
        this.dialing.delete(peer);
        this.open.add(peer);
        this.lastUse.set(peer, ctx.now);
        const q = this.queue.get(peer);
        if (q !== undefined) {
          this.queue.delete(peer);
          for (const m of q) ctx.send(peer, aged(m.msg, ctx.now - m.at));
        }
        this.mgr.onConnected(env, peer, ev.outbound);
        return;
      }
      case "disconnected": {
        const peer = ev.peer;
        this.open.delete(peer);
        this.dialing.delete(peer);
        this.queue.delete(peer);
        this.lastUse.delete(peer);
        this.detector.forget(peer);
        this.plumtree.connectionClosed(peer);
        this.mgr.onDisconnected(env, peer);
        return;
      }
      case "dialFailed": {
        const peer = ev.peer;
        this.dialing.delete(peer);
        this.queue.delete(peer);
        this.mgr.onDialFailed(env, peer);
        return;
      }
      case "discovered":
        this.discover(ev.peer);
        return;
    }
  }

  /** Close connections nobody wants (transient: shuffle replies, ping-req, repair probes). */
  private gc(): void {
    const now = this.ctx.now;
    let victims: NodeId[] | undefined;
    for (const p of this.open) {
      if (this.mgr.wants(p) || this.plumtree.hasUnacked(p)) continue;
      const last = this.lastUse.get(p) ?? 0;
      if (now - last >= this.transientIdleMs) (victims ??= []).push(p);
    }
    if (victims !== undefined)
      for (const p of victims) {
        this.stats.transientClosed++;
        this.hangUp(p);
      }
  }

  private makeEnv(): OverlayEnv {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const node = this;
    return {
      get id() {
        return node.id;
      },
      get now() {
        return node.now;
      },
      get rng() {
        return node.ctx.rng;
      },
      get incarnation() {
        return node.inc;
      },
      send: (peer, msg) => node.send(peer, msg),
      sendIfConnected: (peer, msg) => node.sendIfConnected(peer, msg),
      dial: (peer) => node.dialPeer(peer),
      hangUp: (peer) => node.hangUp(peer),
      isConnected: (peer) => node.open.has(peer),
      isDialing: (peer) => node.dialing.has(peer),
      setTimer: (name, ms) => node.ctx.setTimer(`m${node.gen}.${name}`, ms),
      cancelTimer: (name) => node.ctx.cancelTimer(`m${node.gen}.${name}`),
      neighborUp: (peer) => node.plumtree.neighborUp(peer),
      neighborDown: (peer) => node.plumtree.neighborDown(peer),
      bootstrapPeers: () => node.bootstrap,
    };
  }
}

/**
 * Shuffle entries carry "ms since evidence of life": a message that waited for a dial (a
 * shuffle reply to its origin, seconds on a loaded machine) must not present that wait as
 * freshness, or a dead peer keeps coming back into passive views.
 */
function aged(msg: TopologyMessage, waitedMs: number): TopologyMessage {
  if (waitedMs <= 0 || (msg.type !== "hv.shuffle" && msg.type !== "hv.shuffle_reply")) return msg;
  return { ...msg, peers: msg.peers.map(([p, age]) => [p, age + waitedMs] as [NodeId, number]) };
}

/** The node-level switchable topology is the TopologyNode itself. */
export { TopologyNode as SwitchableTopology };
