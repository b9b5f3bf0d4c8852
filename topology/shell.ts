// The services the node shell (TopologyNode) gives its internal components (failure
// detector, broadcast). Internal: managers see `OverlayEnv` instead.

import type { Ctx, Delivery, NodeId, TopologyMessage } from "./types.js";

export interface Shell {
  readonly ctx: Ctx;
  /** Current time (ctx.now, or the external clock outside `handle`). */
  readonly now: number;
  readonly id: NodeId;
  readonly incarnation: number;
  isOpen(peer: NodeId): boolean;
  /** Send if a connection is open; returns whether it was. */
  sendIfConnected(peer: NodeId, msg: TopologyMessage): boolean;
  /** Send, dialing (and queueing) if needed. */
  send(peer: NodeId, msg: TopologyMessage): void;
  /** The manager's confirmed overlay neighbours. */
  neighborList(): NodeId[];
  /** Is `peer` a confirmed overlay neighbour? */
  isNeighbor(peer: NodeId): boolean;
  /** The manager's broadcast mode. */
  broadcastMode(): "tree" | "direct";
  /** The detector declared `peer` dead. */
  peerFailed(peer: NodeId): void;
  deliver(d: Delivery): void;
  acked(id: string): void;
}

/** Pick up to `k` distinct random elements (partial Fisher-Yates on a copy). */
export function sample<T>(rng: { int(n: number): number }, items: readonly T[], k: number): T[] {
  const n = items.length;
  if (k >= n) return items.slice();
  const a = items.slice();
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  a.length = k;
  return a;
}

/** A uniformly random element of a set, or undefined. O(n). */
export function pickFromSet<T>(rng: { int(n: number): number }, set: { keys(): IterableIterator<T> }, exclude?: (x: T) => boolean): T | undefined {
  let count = 0;
  for (const x of set.keys()) if (!exclude || !exclude(x)) count++;
  if (count === 0) return undefined;
  let k = rng.int(count);
  for (const x of set.keys()) {
    if (exclude && exclude(x)) continue;
    if (k-- === 0) return x;
  }
  return undefined;
}
