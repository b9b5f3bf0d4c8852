// Fault descriptions (plain data, printable, replayable) and a seeded generator of
// random fault schedules.

import type { NodeId } from "./protocol.js";
import { createRng, type Rng } from "./rng.js";

/** Properties of a directed simulated link. Latency is uniform in [min, max]. */
export interface LinkConfig {
  minLatencyMs: number;
  maxLatencyMs: number;
  /** Probability that a message is lost. */
  lossRate: number;
  /** Probability that a message is delivered twice (independent latencies). */
  duplicateRate: number;
  /** Probability that a message gets an extra delay in [0, reorderDelayMs), forcing reordering. */
  reorderRate: number;
  reorderDelayMs: number;
}

/** A fault the simulator can apply. */
export type Fault =
  | { readonly type: "crash"; readonly node: NodeId }
  | { readonly type: "restart"; readonly node: NodeId }
  /** Split into groups; nodes listed in no group form one more group together. Replaces any current partition. */
  | { readonly type: "partition"; readonly groups: readonly (readonly NodeId[])[] }
  | { readonly type: "heal" }
  /** Override one link (both directions unless `symmetric: false`); `config: null` removes the override. */
  | {
      readonly type: "link";
      readonly from: NodeId;
      readonly to: NodeId;
      readonly config: Partial<LinkConfig> | null;
      readonly symmetric?: boolean;
    }
  /** Change the default link relative to the simulator's base config; `config: null` restores the base. */
  | { readonly type: "network"; readonly config: Partial<LinkConfig> | null };

/** A fault at a virtual time (ms). */
export type TimedFault = Fault & { readonly at: number };

/** Options for {@link randomFaultPlan}. Counts default to 0; ranges are [min, max] ms. */
export interface RandomFaultOptions {
  nodes: readonly NodeId[];
  /** Faults happen in [startMs, durationMs). */
  durationMs: number;
  startMs?: number;
  /** Number of crash attempts (skipped when `maxDown` nodes are already down). */
  crashes?: number;
  /** At most this many nodes down at once. Default: a minority, floor((n - 1) / 2). */
  maxDown?: number;
  /** Probability that a crashed node restarts before the end. Default 1. */
  restartProbability?: number;
  /** Delay from crash to restart. Default [durationMs / 50, durationMs / 5]. */
  restartDelayMs?: readonly [number, number];
  /** Number of (non-overlapping) partition windows. */
  partitions?: number;
  /** Partition window length. Default [durationMs / 50, durationMs / 5]. */
  partitionDurationMs?: readonly [number, number];
  /** Number of (non-overlapping) windows with a degraded network. */
  degradations?: number;
  /** Network config during a degradation. Default 20% loss, 5% duplication, 20% reordering by up to 50 ms. */
  degradedNetwork?: Partial<LinkConfig>;
  degradationDurationMs?: readonly [number, number];
  /** At `durationMs`, restart every crashed node, heal and restore the network. Default true. */
  healAtEnd?: boolean;
}

function uniform(rng: Rng, r: readonly [number, number]): number {
  return r[0] + rng.next() * (r[1] - r[0]);
}

/** Non-overlapping [start, end) windows in [startMs, durationMs). */
function windows(rng: Rng, count: number, startMs: number, durationMs: number, len: readonly [number, number]): Array<[number, number]> {
  const starts: number[] = [];
  for (let i = 0; i < count; i++) starts.push(startMs + rng.next() * (durationMs - startMs));
  starts.sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  let prevEnd = -Infinity;
  for (let s of starts) {
    if (s < prevEnd) s = prevEnd;
    if (s >= durationMs) break;
    const e = Math.min(s + uniform(rng, len), durationMs);
    if (e <= s) continue;
    out.push([s, e]);
    prevEnd = e;
  }
  return out;
}

/**
 * A random fault schedule derived entirely from `seed` (pass the run seed, and the same
 * plan comes back). The plan is plain data: print it with JSON.stringify to report or
 * replay a failure. Crashes respect `maxDown`; restarts only follow crashes.
 */
export function randomFaultPlan(seed: number | string | Rng, opts: RandomFaultOptions): TimedFault[] {
  const rng = typeof seed === "object" ? seed : createRng(seed, "faults");
  const nodes = opts.nodes;
  const n = nodes.length;
  const start = opts.startMs ?? 0;
  const dur = opts.durationMs;
  if (!(dur > start)) throw new RangeError(`randomFaultPlan: durationMs (${dur}) must exceed startMs (${start})`);
  const def: [number, number] = [dur / 50, dur / 5];
  const maxDown = opts.maxDown ?? Math.floor((n - 1) / 2);
  const restartP = opts.restartProbability ?? 1;
  const healAtEnd = opts.healAtEnd ?? true;
  const plan: TimedFault[] = [];

  // Crashes and restarts, respecting maxDown at every instant.
  const crashTimes: number[] = [];
  for (let i = 0; i < (opts.crashes ?? 0); i++) crashTimes.push(start + rng.next() * (dur - start));
  crashTimes.sort((a, b) => a - b);
  const downUntil = new Map<NodeId, number>(); // node -> restart time (Infinity: never)
  for (const t of crashTimes) {
    for (const [id, until] of downUntil) if (until <= t) downUntil.delete(id);
    if (downUntil.size >= maxDown || n === 0) continue;
    const candidates = nodes.filter((id) => !downUntil.has(id));
    if (candidates.length === 0) continue;
    const node = rng.pick(candidates);
    plan.push({ at: t, type: "crash", node });
    let until = Infinity;
    if (rng.next() < restartP) {
      const r = t + uniform(rng, opts.restartDelayMs ?? def);
      if (r < dur) {
        plan.push({ at: r, type: "restart", node });
        until = r;
      }
    }
    downUntil.set(node, until);
  }

  // Partitions: shuffle, then cut into 2 or 3 non-empty groups.
  for (const [s, e] of windows(rng, opts.partitions ?? 0, start, dur, opts.partitionDurationMs ?? def)) {
    if (n < 2) break;
    const order = rng.shuffle([...nodes]);
    const k = n >= 3 && rng.next() < 0.25 ? 3 : 2;
    const cuts = new Set<number>();
    while (cuts.size < k - 1) cuts.add(1 + rng.int(n - 1));
    const sorted = [...cuts].sort((a, b) => a - b);
    const groups: NodeId[][] = [];
    let prev = 0;
    for (const c of [...sorted, n]) {
      groups.push(order.slice(prev, c));
      prev = c;
    }
    plan.push({ at: s, type: "partition", groups });
    if (e < dur || !healAtEnd) plan.push({ at: e, type: "heal" });
  }

  // Degraded network windows.
  const degraded = opts.degradedNetwork ?? { lossRate: 0.2, duplicateRate: 0.05, reorderRate: 0.2, reorderDelayMs: 50 };
  for (const [s, e] of windows(rng, opts.degradations ?? 0, start, dur, opts.degradationDurationMs ?? def)) {
    plan.push({ at: s, type: "network", config: degraded });
    if (e < dur || !healAtEnd) plan.push({ at: e, type: "network", config: null });
  }

  // Stable sort by time keeps generation order for equal times.
  plan.sort((a, b) => a.at - b.at);
  if (healAtEnd) {
    for (const [id, until] of downUntil) if (until === Infinity || until >= dur) plan.push({ at: dur, type: "restart", node: id });
    plan.push({ at: dur, type: "heal" });
    plan.push({ at: dur, type: "network", config: null });
  }
  return plan;
}
