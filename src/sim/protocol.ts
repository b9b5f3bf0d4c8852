// The sans-IO protocol contract shared by topology managers, Raft and anything else the
// simulator drives. A node is a plain object with one method, `handle(event, ctx)`; it
// reacts to one event at a time and acts only through `ctx`. The simulator implements
// `ctx` with a virtual clock and a simulated network; the libp2p adapter implements it
// with real streams, `setTimeout` and a disk store. Nodes never do I/O themselves, never
// read the wall clock and never call Math.random.
//
// Why callbacks on a context rather than returning Action[]: no array or action object is
// allocated per event (this matters at 10,000 nodes), and a real adapter is just as easy
// to write. Step-style code (`step(event) => Action[]`) plugs in through `fromStep`.

import type { Rng } from "./rng.js";
import type { DurableStorage } from "./storage.js";

export type { Rng } from "./rng.js";
export type { DurableStorage } from "./storage.js";

/** A node address: any string or number (numbers 0..N-1 take a fast path in the simulator). */
export type NodeId = string | number;

/** Timers are named per node; setting a name that is pending replaces it. */
export type TimerName = string | number;

/**
 * Events delivered to a node. Received messages are NOT copied: the same object may be
 * delivered to several nodes (broadcast, duplication), so treat `msg` as immutable.
 */
export type NodeEvent<M> =
  /** First event of every incarnation. `restarted` is true after a crash/restart. */
  | { readonly type: "start"; readonly restarted: boolean }
  | { readonly type: "message"; readonly from: NodeId; readonly msg: M }
  | { readonly type: "timer"; readonly name: TimerName }
  /** A connection to `peer` is usable; `outbound` is true when this node dialed. */
  | { readonly type: "connected"; readonly peer: NodeId; readonly outbound: boolean }
  /** The connection to `peer` was lost (remote hang-up, crash, partition). Not sent to the side that hung up. */
  | { readonly type: "disconnected"; readonly peer: NodeId }
  /** A `dial(peer)` did not produce a connection. */
  | { readonly type: "dialFailed"; readonly peer: NodeId }
  /** Out-of-band discovery (bootstrap list, mDNS...) told this node about `peer`. */
  | { readonly type: "discovered"; readonly peer: NodeId };

export type NodeEventType = NodeEvent<unknown>["type"];

/** Everything a node may do, plus what it may know about the world. */
export interface NodeContext<M> {
  /** This node's own id. */
  readonly id: NodeId;
  /** Current time in milliseconds (virtual in the simulator). */
  readonly now: number;
  /** Per-node seeded random source (derived from the run seed, node id and incarnation). */
  readonly rng: Rng;
  /** Durable per-node store; survives crashes, everything else is lost. */
  readonly storage: DurableStorage;
  /**
   * Send `msg` to `to`. Fire and forget: the message may be lost, duplicated, delayed or
   * reordered. Outside connectionless mode it is dropped unless this node currently has
   * an open connection to `to` (i.e. has seen `connected` and no `disconnected` since).
   */
  send(to: NodeId, msg: M): void;
  /** Open a connection: later yields `connected` on both ends, or `dialFailed` here. No-op if connected or dialing. */
  dial(peer: NodeId): void;
  /** Close the connection (or cancel a pending dial). The peer later sees `disconnected`; this node sees nothing. */
  hangUp(peer: NodeId): void;
  /** Fire `timer {name}` after `delayMs`; replaces a pending timer of the same name. */
  setTimer(name: TimerName, delayMs: number): void;
  /** Cancel a pending timer; no-op if none. */
  cancelTimer(name: TimerName): void;
}

/** A sans-IO protocol node. `handle` must not block, await or throw on bad input from the wire. */
export interface ProtocolNode<M> {
  handle(event: NodeEvent<M>, ctx: NodeContext<M>): void;
}

/** What a node factory receives when a node is created or recreated after a crash. */
export interface NodeInit {
  readonly id: NodeId;
  /** The node's durable store: empty on first start, as left by the previous incarnation on restart. */
  readonly storage: DurableStorage;
  readonly rng: Rng;
  readonly restarted: boolean;
  /** 0 for the first start, then +1 per restart. */
  readonly incarnation: number;
}

/** Builds a node's in-memory state; called again on restart (memory is lost, storage is not). */
export type NodeFactory<M> = (init: NodeInit) => ProtocolNode<M>;

// ---- Step-style adapter ------------------------------------------------------------

/** An output of a step-style protocol; each maps 1:1 onto a {@link NodeContext} method. */
export type Action<M> =
  | { readonly type: "send"; readonly to: NodeId; readonly msg: M }
  | { readonly type: "dial"; readonly peer: NodeId }
  | { readonly type: "hangUp"; readonly peer: NodeId }
  | { readonly type: "setTimer"; readonly name: TimerName; readonly delayMs: number }
  | { readonly type: "cancelTimer"; readonly name: TimerName };

/** The read-only part of the context that a step function sees. */
export type StepEnv = Pick<NodeContext<unknown>, "id" | "now" | "rng" | "storage">;

/** A protocol written as `step(event, env) => actions`. */
export interface StepNode<M> {
  step(event: NodeEvent<M>, env: StepEnv): readonly Action<M>[] | void;
}

/** Perform `actions` through `ctx`, in order. */
export function applyActions<M>(ctx: NodeContext<M>, actions: readonly Action<M>[]): void {
  for (const a of actions) {
    switch (a.type) {
      case "send":
        ctx.send(a.to, a.msg);
        break;
      case "dial":
        ctx.dial(a.peer);
        break;
      case "hangUp":
        ctx.hangUp(a.peer);
        break;
      case "setTimer":
        ctx.setTimer(a.name, a.delayMs);
        break;
      case "cancelTimer":
        ctx.cancelTimer(a.name);
        break;
    }
  }
}

/** Wrap a step-style protocol as a {@link ProtocolNode}. */
export function fromStep<M>(node: StepNode<M>): ProtocolNode<M> {
  return {
    handle(event, ctx) {
      const actions = node.step(event, ctx);
      if (actions) applyActions(ctx, actions);
    },
  };
}

/** Deep-freeze a plain-data value (used by the simulator's `freezeMessages` debug mode). */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  if (ArrayBuffer.isView(value)) return value; // V8 cannot freeze typed arrays with elements
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value as object)) {
    deepFreeze((value as Record<string | symbol, unknown>)[key]);
  }
  return value;
}
