// Static overlay: keep connections to a given list of peers (re-dialing with backoff), and
// keep the connections others open to us. Members are the listed peers and inbound peers
// currently connected.

import type { ManagerSeed, NodeId, OverlayEnv, OverlayManager, StaticOptions, TopologyMessage } from "./types.js";

export class StaticTopology implements OverlayManager {
  readonly name = "static" as const;
  readonly broadcastMode = "tree" as const;
  private readonly peers: Set<NodeId>;
  private readonly inbound = new Set<NodeId>();
  private readonly up = new Set<NodeId>();
  private readonly redialMs: number;
  private stopped = false;

  constructor(opts: StaticOptions) {
    this.peers = new Set(opts.peers ?? []);
    this.redialMs = opts.redialMs ?? 1000;
  }

  wants(peer: NodeId): boolean {
    return this.peers.has(peer) || this.inbound.has(peer);
  }
  activePeers(): NodeId[] {
    return [...new Set([...this.peers, ...this.inbound])];
  }
  neighbors(): NodeId[] {
    return [...this.up];
  }
  members(): NodeId[] {
    return [...this.up];
  }

  start(env: OverlayEnv, seed: ManagerSeed | undefined): void {
    this.peers.delete(env.id);
    for (const p of seed?.connected ?? []) if (this.peers.has(p)) this.setUp(env, p, true);
    for (const p of this.peers) if (!env.isConnected(p)) env.dial(p);
  }
  stop(): void {
    this.stopped = true;
  }

  private setUp(env: OverlayEnv, p: NodeId, on: boolean): void {
    if (on && !this.up.has(p)) {
      this.up.add(p);
      env.neighborUp(p);
    } else if (!on && this.up.delete(p)) env.neighborDown(p);
  }

  onConnected(env: OverlayEnv, peer: NodeId, outbound: boolean): void {
    if (this.stopped) return;
    if (!outbound && !this.peers.has(peer)) this.inbound.add(peer);
    if (this.wants(peer)) this.setUp(env, peer, true);
  }
  onDisconnected(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    this.inbound.delete(peer);
    this.setUp(env, peer, false);
    if (this.peers.has(peer)) env.setTimer(`redial:${String(peer)}`, this.redialMs * (0.5 + env.rng.next()));
  }
  onDialFailed(env: OverlayEnv, peer: NodeId): void {
    if (this.stopped) return;
    if (this.peers.has(peer)) env.setTimer(`redial:${String(peer)}`, this.redialMs * (0.5 + env.rng.next()));
  }
  onPeerFailed(env: OverlayEnv, peer: NodeId): void {
    this.onDisconnected(env, peer);
  }
  onDiscovered(): void {}
  onMessage(_env: OverlayEnv, _from: NodeId, _msg: TopologyMessage): void {}
  onTimer(env: OverlayEnv, name: string): void {
    if (this.stopped || !name.startsWith("redial:")) return;
    const key = name.slice(7);
    for (const p of this.peers) if (String(p) === key && !env.isConnected(p)) env.dial(p);
  }
}
