// Core types of the overlay layer: the `Topology` a peer adapter (libp2p) or the simulator
// drives, the wire messages (plain JSON-able data, CBOR-encoded on the wire later, each
// with a `type` discriminator), and the `OverlayManager` contract the four managers
// (full-mesh, hyparview, client-server, static) implement.
//
// Layering inside one node (see README.md):
//
//   TopologyNode (ProtocolNode<TopologyMessage>, setTopology)
//     ├─ links      connection table: send-with-dial queues, transient connections, GC
//     ├─ detector   SWIM ping / ping-req / local suspicion over the manager's neighbours
//     ├─ broadcast  Plumtree (eager / lazy IHAVE / GRAFT / PRUNE) + optional acks
//     └─ manager    the overlay policy: which peers are neighbours, membership
//
// Everything is sans-IO: no timers of its own, no clock, no randomness except ctx.now and
// ctx.rng.

import type { NodeContext, NodeId, ProtocolNode, Rng } from "../src/sim/protocol.js";

export type { NodeId } from "../src/sim/protocol.js";

// ---- Wire messages -----------------------------------------------------------------

/** A passive-view entry on the wire: [node, age in ms] (age = time since someone had direct evidence it was alive). */
export type AgedPeer = [NodeId, number];

/** HyParView (Leitão, Pereira, Rodrigues, DSN 2007). */
export type HyParViewMessage =
  /** A node joining the overlay asks the contact (over a fresh connection) to take it in; always accepted. */
  | { readonly type: "hv.join" }
  /** Random walk spreading a join: `node` is the joiner, `ttl` starts at ARWL. */
  | { readonly type: "hv.forward_join"; readonly node: NodeId; readonly ttl: number }
  /** Ask the receiver to add the sender to its active view. High priority is always accepted (may evict). */
  | { readonly type: "hv.neighbor"; readonly high: boolean }
  /** Answer to `hv.neighbor`. */
  | { readonly type: "hv.neighbor_reply"; readonly accepted: boolean }
  /** The sender removed the receiver from its active view (moved it to its passive view). */
  | { readonly type: "hv.disconnect" }
  /** Shuffle walk: `origin`'s sample of its views, forwarded while ttl > 0. */
  | { readonly type: "hv.shuffle"; readonly origin: NodeId; readonly ttl: number; readonly peers: readonly AgedPeer[] }
  /** Reply to a shuffle, sent straight to its origin (over a temporary connection). */
  | { readonly type: "hv.shuffle_reply"; readonly peers: readonly AgedPeer[] };

/** A member as gossiped by the full-membership managers (full-mesh, client-server). */
export interface MemberEntry {
  readonly id: NodeId;
  /** Incarnation: only the member itself raises it (to refute being declared dead). */
  readonly inc: number;
  /** true: alive; false: declared dead at this incarnation. */
  readonly alive: boolean;
  /** client-server only. */
  readonly role?: "server" | "client";
}

/** Membership gossip of the full-membership managers. */
export type MembershipMessage =
  /** Member entries. `full`: the sender's whole list; `reply`: the receiver should answer with its whole list. */
  { readonly type: "mb.sync"; readonly members: readonly MemberEntry[]; readonly full: boolean; readonly reply: boolean };

/** SWIM-style failure detection (direct ping, indirect ping-req through k peers). */
export type DetectorMessage =
  | { readonly type: "fd.ping"; readonly seq: number }
  | { readonly type: "fd.ack"; readonly seq: number }
  /** Ask the receiver to ping `target` on our behalf and relay the ack under `seq`. */
  | { readonly type: "fd.ping_req"; readonly target: NodeId; readonly seq: number };

/** One announced message id in a lazy push. */
export interface IHaveItem {
  readonly id: string;
  readonly round: number;
  /** The message wants acknowledged delivery. */
  readonly rel: boolean;
}

/** Plumtree (Leitão, Pereira, Rodrigues, SRDS 2007) plus acknowledgements. */
export type BroadcastMessage =
  /**
   * The message itself. `round`: hops from the origin. `direct`: the sender pushed it to
   * all its peers at once (full-mesh style), so direct-mode receivers need not forward it.
   * `rel`: acknowledged delivery: the receiver answers `pt.ack`, the sender retransmits.
   */
  | {
      readonly type: "pt.gossip";
      readonly id: string;
      readonly origin: NodeId;
      readonly round: number;
      readonly payload: unknown;
      readonly direct: boolean;
      readonly rel: boolean;
    }
  /** Lazy push: the sender has these messages (batched). Acked when `rel`. */
  | { readonly type: "pt.ihave"; readonly items: readonly IHaveItem[] }
  /** Please send these messages eagerly, and keep me as an eager peer. */
  | { readonly type: "pt.graft"; readonly ids: readonly string[] }
  /** Stop pushing eagerly to me (I got a duplicate from you): I become a lazy peer. */
  | { readonly type: "pt.prune" }
  /** Acknowledges `pt.gossip` (`gossip` ids) and reliable `pt.ihave` items (`ihave` ids). */
  | { readonly type: "pt.ack"; readonly gossip: readonly string[]; readonly ihave: readonly string[] };

/** Everything a topology node sends or receives. */
export type TopologyMessage = HyParViewMessage | MembershipMessage | DetectorMessage | BroadcastMessage;

// ---- Application-facing API --------------------------------------------------------

export type TopologyName = "full-mesh" | "hyparview" | "client-server" | "static";

/** A delivered broadcast. */
export interface Delivery {
  readonly id: string;
  readonly origin: NodeId;
  readonly payload: unknown;
}

export interface BroadcastOptions {
  /**
   * Acknowledged delivery: every hop is acknowledged and retransmitted, announcements are
   * acknowledged, grafts retry, holders offer it to every new neighbour while they retain it.
   * `onAcked(id)` fires at the origin once every peer it pushed the message to acknowledged it.
   * Default: the node's `reliable` option.
   */
  reliable?: boolean;
}

/**
 * What the peer adapter (libp2p) and the simulator see: a sans-IO protocol node plus
 * queries and application hooks. Implemented by {@link TopologyNode}.
 */
export interface Topology extends ProtocolNode<TopologyMessage> {
  /** The active manager's name. */
  readonly name: TopologyName;
  /** Peers whose connections the manager wants kept (its overlay neighbours, pending or confirmed). */
  activePeers(): NodeId[];
  /** Overlay neighbours confirmed on both sides (the edges broadcast uses). */
  neighbors(): NodeId[];
  /** Known live members (full list for full-mesh/client-server; active + passive view for HyParView). */
  members(): NodeId[];
  /**
   * Broadcast `payload` (JSON-able) to every live member. Returns the message id. Call it
   * from inside `handle` (a timer or message handler) or through {@link TopologyNode.act}.
   */
  broadcast(payload: unknown, opts?: BroadcastOptions): string;
  /** Called exactly once per message id per node incarnation (the origin included). */
  onDeliver: ((d: Delivery) => void) | undefined;
  /** Called at the origin when an acknowledged broadcast is acknowledged by every peer it was pushed to. */
  onAcked: ((id: string) => void) | undefined;
  /** Feed "peer discovered" from bootstrap / mDNS (same as a `discovered` event). */
  discover(peer: NodeId): void;
  /** Replace the manager at run time, keeping connections, members and in-flight broadcasts. */
  setTopology(name: TopologyName, options?: ManagerOptions): void;
}

// ---- Manager contract --------------------------------------------------------------

/** Services a manager uses; implemented by the node shell. Valid only inside an event. */
export interface OverlayEnv {
  readonly id: NodeId;
  readonly now: number;
  readonly rng: Rng;
  /** Send now if connected, else dial and queue (dropped if the dial fails). */
  send(peer: NodeId, msg: TopologyMessage): void;
  /** Send only if a connection is open; returns whether it was. */
  sendIfConnected(peer: NodeId, msg: TopologyMessage): boolean;
  dial(peer: NodeId): void;
  /** Close the connection now (queued sends are dropped). */
  hangUp(peer: NodeId): void;
  isConnected(peer: NodeId): boolean;
  /** A dial to `peer` is pending. */
  isDialing(peer: NodeId): boolean;
  /** Manager timers (namespaced by the shell so a replaced manager's timers never fire into its successor). */
  setTimer(name: string, delayMs: number): void;
  cancelTimer(name: string): void;
  /** `peer` became / stopped being an overlay neighbour (edge for broadcast and failure detection). */
  neighborUp(peer: NodeId): void;
  neighborDown(peer: NodeId): void;
  /** Peers learned from bootstrap / discovery, in order. */
  bootstrapPeers(): readonly NodeId[];
  /** This node's incarnation (raised on every start). */
  readonly incarnation: number;
}

/** What a new manager inherits when it replaces another on a running node. */
export interface ManagerSeed {
  /** Members known to the previous manager (never includes this node). */
  readonly members: readonly NodeId[];
  /** Peers with an open connection right now. */
  readonly connected: readonly NodeId[];
}

/**
 * An overlay policy. The shell routes events to it, after doing its own bookkeeping
 * (connection table, failure detector, broadcast). A manager never calls ctx directly.
 */
export interface OverlayManager {
  readonly name: TopologyName;
  /** How broadcast forwards on this overlay: Plumtree tree, or direct push to every peer (full-mesh). */
  readonly broadcastMode: "tree" | "direct";
  /** First event of the manager (node start, or right after a switch with the inherited seed). */
  start(env: OverlayEnv, seed: ManagerSeed | undefined): void;
  /** The manager is being replaced. It must not act afterwards. */
  stop(env: OverlayEnv): void;
  /** A message of this manager's family (`hv.*` or `mb.*`); others are ignored. */
  onMessage(env: OverlayEnv, from: NodeId, msg: TopologyMessage): void;
  /** Any message arrived from `from` (evidence of life). */
  onHeard?(env: OverlayEnv, from: NodeId): void;
  onConnected(env: OverlayEnv, peer: NodeId, outbound: boolean): void;
  onDisconnected(env: OverlayEnv, peer: NodeId): void;
  onDialFailed(env: OverlayEnv, peer: NodeId): void;
  onDiscovered(env: OverlayEnv, peer: NodeId): void;
  onTimer(env: OverlayEnv, name: string): void;
  /** Periodic maintenance, called on the shell's tick (every probeMs, default 1 s). */
  tick?(env: OverlayEnv): void;
  /** The failure detector declared `peer` dead (the shell already hung up). */
  onPeerFailed(env: OverlayEnv, peer: NodeId): void;
  /** Does the manager want the connection to `peer` kept? */
  wants(peer: NodeId): boolean;
  activePeers(): NodeId[];
  /** Confirmed overlay neighbours. */
  neighbors(): NodeId[];
  members(): NodeId[];
}

// ---- Options -----------------------------------------------------------------------

export interface HyParViewOptions {
  /** Expected cluster size: when given, view sizes scale with log10 N (the paper's 5 / 30 at N = 10,000). */
  expectedSize?: number;
  activeSize?: number;
  passiveSize?: number;
  /** Active random walk length (paper: 6). */
  arwl?: number;
  /** Passive random walk length (paper: 3). */
  prwl?: number;
  /** Active / passive entries in a shuffle (paper: 3 / 4). */
  ka?: number;
  kp?: number;
  shuffleMs?: number;
  /** Passive entries with no direct evidence of life for this long are dropped (bounds how long a dead node stays in passive views). */
  passiveMaxAgeMs?: number;
  /** A NEIGHBOR request unanswered this long is abandoned. */
  neighborTimeoutMs?: number;
  /** Partition repair: every ~repairMs, re-dial one peer lost to a disconnection or failed dial. */
  repairMs?: number;
  /** How long a lost peer stays a repair candidate. */
  graveyardTtlMs?: number;
  /** A node whose active view is not full (but lost nobody) asks one passive member this often. */
  idleRefillMs?: number;
}

export interface FullMeshOptions {
  /** Membership gossip period (to `gossipFanout` random peers). */
  gossipMs?: number;
  gossipFanout?: number;
  /** A full member list goes to one random peer every `fullSyncEvery` gossip rounds. */
  fullSyncEvery?: number;
  /** After this many consecutive failed dials a member is declared dead. */
  maxDialFailures?: number;
  /** Re-dial backoff after a disconnect or failed dial. */
  redialMs?: number;
  /** Partition repair: every ~repairMs, dial one member declared dead in the last `graveyardTtlMs`. */
  repairMs?: number;
  graveyardTtlMs?: number;
}

export interface ClientServerOptions extends FullMeshOptions {
  role: "server" | "client";
  /** Known servers (bootstrap); more are learned from membership gossip. */
  servers?: readonly NodeId[];
  /** How many servers a client keeps connections to (default 3). */
  serversPerClient?: number;
}

export interface StaticOptions {
  /** The peers to keep connections to. */
  peers: readonly NodeId[];
  redialMs?: number;
}

/** Options per manager name. */
export type ManagerOptions = HyParViewOptions | FullMeshOptions | ClientServerOptions | StaticOptions;

export interface DetectorOptions {
  /** Probe period (the shell's tick): one neighbour is pinged per period, round-robin. Default 1000. */
  probeMs?: number;
  /** Number of peers asked to probe indirectly. */
  indirect?: number;
  /** Local suspicion before a peer is declared dead (refuted by any message from it). */
  suspicionMs?: number;
  /** Disable the detector (connection loss still removes peers). */
  disabled?: boolean;
}

export interface PlumtreeOptions {
  /** Wait this long after the first IHAVE for the eager copy before grafting (paper's timeout1). */
  ihaveTimeoutMs?: number;
  /** Then graft the next announcer every graftRetryMs (timeout2). */
  graftRetryMs?: number;
  /** IHAVEs and ACKs are batched per peer and flushed every lazyFlushMs. */
  lazyFlushMs?: number;
  /** Cap on lazy peers announced to per message (Infinity: all, as in the paper). */
  lazyFanout?: number;
  /** Lazy fanout of direct-mode receivers (full-mesh): announce to this many random peers. */
  directLazyFanout?: number;
  /** Retransmit unacknowledged reliable sends after this long. */
  retransmitMs?: number;
  maxRetransmits?: number;
  /** Keep payloads this long (to answer grafts and sync new neighbours). */
  retainMs?: number;
  /** Remember delivered ids this long (dedup window). */
  dedupMs?: number;
  /** Reliable messages received this recently are offered to every new neighbour (default 2000 ms). */
  syncWindowMs?: number;
  /** At most this many ids per neighbour sync (newest first; default 128). */
  syncMax?: number;
}

export interface TopologyNodeOptions {
  topology: TopologyName;
  options?: ManagerOptions;
  detector?: DetectorOptions;
  plumtree?: PlumtreeOptions;
  /** Default of `BroadcastOptions.reliable`. Default false. */
  reliable?: boolean;
  /** Connections the manager does not want are closed after this long without own use. Default 3000. */
  transientIdleMs?: number;
  /** Bootstrap peers known at start (like `discovered` events). */
  bootstrap?: readonly NodeId[];
  onDeliver?: (d: Delivery) => void;
  onAcked?: (id: string) => void;
}

/** Re-exported for managers. */
export type Ctx = NodeContext<TopologyMessage>;
