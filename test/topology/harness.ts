// Shared simulation harness for the topology tests and bench/topology.ts. Every check
// returns problems as strings; tests prefix them with the seed.
import { Simulator, type LinkConfig, type NodeId } from "../../src/sim/index.js";
import { HyParView } from "../../topology/hyparview.js";
import { TopologyNode } from "../../topology/node.js";
import type { ManagerOptions, TopologyMessage, TopologyName, TopologyNodeOptions } from "../../topology/types.js";

export interface ClusterOptions {
  seed: number;
  n: number;
  topology: TopologyName;
  /** Manager options per node. */
  options?: (i: number) => ManagerOptions | undefined;
  network?: Partial<LinkConfig>;
  /** Nodes start uniformly over [0, startSpreadMs]. */
  startSpreadMs?: number;
  /** Bootstrap peers of node i (default: node 0 for everyone but 0). */
  bootstrap?: (i: number) => NodeId[];
  node?: Partial<TopologyNodeOptions>;
  crashDetectionMs?: number;
  partitionDetectionMs?: number;
  /** Per-connection FIFO like a TCP / yamux stream (default true). */
  fifo?: boolean;
}

export interface Cluster {
  sim: Simulator<TopologyMessage>;
  n: number;
  /** message id -> nodes that delivered it (with the count, to catch duplicates). */
  deliveries: Map<string, Map<NodeId, number>>;
  acked: Set<string>;
  node(i: NodeId): TopologyNode | undefined;
  live(): number[];
  /** Broadcast from node i now; returns the id. */
  broadcast(i: number, payload?: unknown, reliable?: boolean): string;
}

export function cluster(o: ClusterOptions): Cluster {
  const sim = new Simulator<TopologyMessage>({
    seed: o.seed,
    network: o.network ?? { minLatencyMs: 2, maxLatencyMs: 20 },
    crashDetectionMs: o.crashDetectionMs,
    partitionDetectionMs: o.partitionDetectionMs,
    cloneStorage: false,
    fifo: o.fifo ?? true,
  });
  const deliveries = new Map<string, Map<NodeId, number>>();
  const acked = new Set<string>();
  const spread = o.startSpreadMs ?? 0;
  const clock = (): number => sim.now;
  for (let i = 0; i < o.n; i++) {
    const boot = o.bootstrap ? o.bootstrap(i) : i === 0 ? [] : [0];
    const delay = i === 0 ? 0 : (spread * i) / o.n;
    sim.addNode(
      i,
      ({ id }) =>
        new TopologyNode({
          topology: o.topology,
          options: o.options?.(i),
          bootstrap: boot,
          clock,
          ...o.node,
          onDeliver: (d) => {
            let m = deliveries.get(d.id);
            if (m === undefined) deliveries.set(d.id, (m = new Map()));
            m.set(id, (m.get(id) ?? 0) + 1);
          },
          onAcked: (mid) => acked.add(mid),
        }),
      { startDelayMs: delay },
    );
  }
  const node = (i: NodeId): TopologyNode | undefined => sim.node<TopologyNode>(i);
  return {
    sim,
    n: o.n,
    deliveries,
    acked,
    node,
    live: () => sim.liveIds() as number[],
    broadcast: (i, payload = null, reliable) => node(i)!.broadcast(payload, reliable === undefined ? {} : { reliable }),
  };
}

/** Fraction of live nodes that delivered `id`, and duplicate deliveries. */
export function delivery(c: Cluster, id: string): { ratio: number; missing: number[]; duplicates: number } {
  const got = c.deliveries.get(id) ?? new Map<NodeId, number>();
  const live = c.live();
  const missing = live.filter((i) => !got.has(i));
  let duplicates = 0;
  for (const k of got.values()) if (k > 1) duplicates++;
  return { ratio: (live.length - missing.length) / live.length, missing, duplicates };
}

export function hv(c: Cluster, i: number): HyParView {
  return c.node(i)!.manager as HyParView;
}

/** Undirected connectivity of live nodes over `edges(i)`; returns the number of components. */
export function components(live: readonly number[], edges: (i: number) => Iterable<NodeId>): number {
  const alive = new Set(live);
  const seen = new Set<number>();
  let comps = 0;
  const adj = new Map<number, number[]>();
  for (const i of live) adj.set(i, []);
  for (const i of live)
    for (const j of edges(i)) {
      if (!alive.has(j as number)) continue;
      adj.get(i)!.push(j as number);
      adj.get(j as number)!.push(i);
    }
  for (const s of live) {
    if (seen.has(s)) continue;
    comps++;
    const stack = [s];
    seen.add(s);
    while (stack.length > 0) {
      const x = stack.pop()!;
      for (const y of adj.get(x)!) if (!seen.has(y)) (seen.add(y), stack.push(y));
    }
  }
  return comps;
}

/** HyParView invariants over live nodes: problems found (empty = ok). */
export function hyparviewProblems(c: Cluster): string[] {
  const live = c.live();
  const up = new Set(live);
  const out: string[] = [];
  for (const i of live) {
    const a = hv(c, i);
    for (const j of a.active) {
      if (!up.has(j as number)) out.push(`${i} has dead ${String(j)} in its active view`);
      else if (!hv(c, j as number).active.has(i)) out.push(`asymmetric: ${i} -> ${String(j)}`);
      else if (!c.sim.isConnected(i, j)) out.push(`not connected: ${i} -> ${String(j)}`);
    }
    if (a.active.size === 0) out.push(`${i} has an empty active view`);
  }
  const comps = components(live, (i) => hv(c, i).active);
  if (comps !== 1) out.push(`${comps} components`);
  return out;
}

export function activeStats(c: Cluster): { mean: number; max: number; min: number } {
  const live = c.live();
  let sum = 0;
  let max = 0;
  let min = Infinity;
  for (const i of live) {
    const d = c.sim.degree(i);
    sum += d;
    max = Math.max(max, d);
    min = Math.min(min, d);
  }
  return { mean: sum / live.length, max, min };
}

/** Crash `fraction` of the nodes (never node `keep`), chosen by a seeded shuffle. */
export function crashFraction(c: Cluster, fraction: number, seed: number, keep: number[] = []): number[] {
  const ids = c.live().filter((i) => !keep.includes(i));
  // Deterministic shuffle from the seed (xorshift).
  let x = (seed * 2654435761) >>> 0 || 1;
  const rnd = (n: number): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  for (let i = ids.length - 1; i > 0; i--) {
    const j = rnd(i + 1);
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const victims = ids.slice(0, Math.round(fraction * c.n));
  for (const v of victims) c.sim.crash(v);
  return victims;
}

/** Run until `pred` holds (checked every `stepMs` of virtual time) or `maxMs` elapses; returns the time it first held, or undefined. */
export function runUntil(c: Cluster, pred: () => boolean, stepMs: number, maxMs: number): number | undefined {
  const end = c.sim.now + maxMs;
  for (;;) {
    if (pred()) return c.sim.now;
    if (c.sim.now >= end) return undefined;
    c.sim.run({ until: Math.min(end, c.sim.now + stepMs) });
  }
}

/** Sum of Plumtree counters over live nodes (messages the broadcast layer sent). */
export function broadcastMessages(c: Cluster): number {
  let s = 0;
  for (const i of c.live()) {
    const st = c.node(i)!.plumtree.stats;
    s += st.gossipSent + st.ihaveSent + st.graftSent + st.pruneSent + st.ackSent + st.retransmits;
  }
  return s;
}

/** Full-mesh invariant: every live node is connected to, and lists as a member, exactly the other live nodes. */
export function fullMeshProblems(c: Cluster): string[] {
  const live = c.live();
  const out: string[] = [];
  for (const i of live) {
    const members = new Set(c.node(i)!.members());
    if (members.size !== live.length - 1) out.push(`${i} lists ${members.size} members, ${live.length - 1} live`);
    if (c.sim.degree(i) !== live.length - 1) out.push(`${i} has ${c.sim.degree(i)} connections`);
    if (out.length > 10) break;
  }
  return out;
}

/** Client-server invariant: clients connect to min(k, live servers) servers and no clients; live servers mesh. */
export function clientServerProblems(c: Cluster, servers: readonly number[], k: number): string[] {
  const live = new Set(c.live());
  const liveServers = servers.filter((s) => live.has(s));
  const isServer = new Set(servers);
  const out: string[] = [];
  for (const i of live) {
    const peers = c.sim.peersOf(i) as number[];
    if (isServer.has(i)) {
      for (const s of liveServers) if (s !== i && !peers.includes(s)) out.push(`server ${i} not connected to server ${s}`);
    } else {
      let srv = 0;
      for (const p of peers) if (isServer.has(p)) srv++;
      if (srv !== peers.length) out.push(`client ${i} connected to a client`);
      if (srv !== Math.min(k, liveServers.length)) out.push(`client ${i} has ${srv} servers`);
    }
    if (out.length > 10) break;
  }
  return out;
}
