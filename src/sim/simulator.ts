// Deterministic discrete-event simulator for sans-IO protocol nodes.
//
// One seed drives everything: link latencies, loss, duplication, reordering, fault plans
// (via randomFaultPlan) and every node's RNG. Events live in a binary heap keyed by
// (virtual time, sequence number), so equal-time events run in scheduling order and a run
// replays exactly. Nothing here reads the wall clock except the wall-time metric.
//
// Connection model (unless `connectionless`): dial -> `connected` on the acceptor after one
// link latency and on the dialer one latency later (or `dialFailed` if the target is down
// or across a partition); messages flow only over a connection whose sending end is open
// and are dropped if the receiving end has closed by the time they arrive. hangUp, crash
// and partition close connections; the other end learns after a latency / detection delay.

import { EventQueue } from "./heap.js";
import type { Fault, LinkConfig, TimedFault } from "./faults.js";
import {
  deepFreeze,
  type NodeContext,
  type NodeEvent,
  type NodeFactory,
  type NodeId,
  type ProtocolNode,
  type TimerName,
} from "./protocol.js";
import { deriveSeed, Sfc32 } from "./rng.js";
import { MemoryStorage, type DurableStorage } from "./storage.js";

/** Default link: 1-10 ms uniform latency, no loss, duplication or forced reordering. */
export const DEFAULT_LINK: Readonly<LinkConfig> = Object.freeze({
  minLatencyMs: 1,
  maxLatencyMs: 10,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMs: 0,
});

/** Why a message was not delivered. */
export type DropCause =
  | "loss" // random link loss
  | "partition" // sender and receiver on different sides (at send or at arrival)
  | "crashed" // receiver down when the message arrived
  | "disconnected" // the receiving end of the connection closed while in flight
  | "notConnected" // sender had no open connection to the receiver
  | "unknownNode" // no such node
  | "self"; // a node sent to itself

const DROP_CAUSES: readonly DropCause[] = ["loss", "partition", "crashed", "disconnected", "notConnected", "unknownNode", "self"];
const D_LOSS = 0;
const D_PARTITION = 1;
const D_CRASHED = 2;
const D_DISCONNECTED = 3;
const D_NOT_CONNECTED = 4;
const D_UNKNOWN = 5;
const D_SELF = 6;

export interface SimOptions<M> {
  /** The one seed; a run is a pure function of (seed, nodes, options, plan). */
  seed: number | string;
  /** Default link config (fields not given come from {@link DEFAULT_LINK}). */
  network?: Partial<LinkConfig>;
  /** Any node may send to any other without a connection (Raft-style). Default false. */
  connectionless?: boolean;
  /** Keep per-connection FIFO order (like a TCP stream). Default false: random latency reorders. */
  fifo?: boolean;
  /** Delay before peers see `disconnected` from a crashed node. Default: one link latency. */
  crashDetectionMs?: number;
  /** Delay before both ends see `disconnected` when a partition cuts a connection. Default: one link latency. */
  partitionDetectionMs?: number;
  /** Delay before `dialFailed` when the target is down or partitioned. Default: one link latency back. */
  dialTimeoutMs?: number;
  /** Message size in bytes, for the byte metrics. */
  sizeOf?: (msg: M) => number;
  /** Called for every event handed to a node, every drop and every fault. Slows the run; for debugging. */
  trace?: (record: TraceRecord<M>) => void;
  /** Debug mode: deep-freeze every message at send, so a receiver that mutates one throws. */
  freezeMessages?: boolean;
  /**
   * Debug mode: while `run` executes, Math.random and Date.now throw, so a node that reads
   * them (and would break replay) fails loudly. Default false.
   */
  strict?: boolean;
  /** Fold message contents into the event hash (e.g. a cheap digest of a few fields). Default: not hashed. */
  hashMessage?: (msg: M) => number;
  /** Structured-clone values written to / read from durable storage. Default true. */
  cloneStorage?: boolean;
  /** Default `maxEvents` for each `run` call. Default 50,000,000. */
  maxEventsPerRun?: number;
}

/** One line of the debug trace. */
export type TraceRecord<M> =
  | { readonly kind: "event"; readonly time: number; readonly node: NodeId; readonly event: NodeEvent<M> }
  | {
      readonly kind: "drop";
      readonly time: number;
      readonly from: NodeId;
      readonly to: NodeId;
      readonly msg: M;
      readonly cause: DropCause;
    }
  | { readonly kind: "fault"; readonly time: number; readonly fault: Fault };

export interface RunOptions<M> {
  /** Stop after processing every event at or before this absolute virtual time (ms); the clock then reads `until`. */
  until?: number;
  /** Same as `until: sim.now + duration`. */
  duration?: number;
  /** Stop as soon as this returns true (checked before the first event and every `checkEvery` events). */
  stopWhen?: (sim: Simulator<M>) => boolean;
  checkEvery?: number;
  /** Bound on events processed in this call. Default: the simulator's `maxEventsPerRun`. */
  maxEvents?: number;
  /** Bound on wall-clock time for this call (checked every 4096 events). */
  maxWallMs?: number;
  /** What to do when a bound is hit: throw {@link SimLimitError} (default) or return the result. */
  onLimit?: "throw" | "return";
}

export type StopReason = "until" | "predicate" | "idle" | "maxEvents" | "maxWallMs";

export interface RunResult {
  reason: StopReason;
  /** Virtual time when the run stopped (ms). */
  now: number;
  /** Events processed by this call. */
  events: number;
  wallMs: number;
}

/** Counters for the whole simulation so far (all runs). */
export interface SimMetrics {
  seed: number | string;
  virtualTimeMs: number;
  wallTimeMs: number;
  /** Queue events processed, including stale ones (cancelled timers, events for crashed nodes). */
  events: number;
  /** Events handed to a node's `handle`. */
  handlerCalls: number;
  messages: {
    sent: number;
    delivered: number;
    duplicated: number;
    dropped: Record<DropCause, number> & { total: number };
  };
  /** Zero unless `sizeOf` is given. */
  bytes: { sent: number; delivered: number };
  timers: { set: number; fired: number };
  connections: { dials: number; dialFailures: number; opened: number; disconnects: number; hangUps: number };
  faults: { crashes: number; restarts: number; partitions: number; heals: number };
  storageWrites: number;
  /** Running hash of the delivered-event sequence (see {@link Simulator.hash}). */
  hash: string;
}

/** A run hit `maxEvents` or `maxWallMs`. The message names the seed. */
export class SimLimitError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
    readonly seed: number | string,
  ) {
    super(message);
    this.name = "SimLimitError";
  }
}

/** A node's `handle` threw. The message names the seed, time, node and event. */
export class SimProtocolError extends Error {
  constructor(
    message: string,
    readonly seed: number | string,
    readonly node: NodeId | undefined,
    readonly time: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "SimProtocolError";
  }
}

// Event kinds.
const K_START = 0;
const K_MSG = 1;
const K_TIMER = 2;
const K_CONNECTED = 3;
const K_CLOSE = 4;
const K_DIAL_ARRIVE = 5;
const K_DIAL_FAIL = 6;
const K_DISCONNECTED_NOW = 7;
const K_DISCOVER = 8;
const K_CALL = 9;
const KIND_NAMES = ["start", "message", "timer", "connected", "close", "dialArrive", "dialFail", "disconnected", "discovered", "callback"];

// Connection end states.
const PENDING = 0;
const OPEN = 1;
const CLOSED = 2;

/** A connection between dialer `a` and acceptor `b`; each end has its own state. */
class Conn {
  sa = PENDING;
  sb = PENDING;
  openAtA = 0;
  openAtB = 0;
  lastAB = 0;
  lastBA = 0;
  /** Latest scheduled arrival per direction (fifo or not): a close is ordered after it. */
  maxAB = 0;
  maxBA = 0;
  constructor(
    readonly a: number,
    readonly b: number,
  ) {}
}

function endOf(c: Conn, idx: number): number {
  return idx === c.a ? c.sa : c.sb;
}

function setEnd(c: Conn, idx: number, st: number): void {
  if (idx === c.a) c.sa = st;
  else c.sb = st;
}

/** Queue entry. One fixed shape for every kind keeps property access monomorphic. */
class Ev {
  t = 0;
  k = 0;
  /** Target node index. */
  n = 0;
  /** Peer node index. */
  p = 0;
  /** Kind-specific integer: incarnation, timer generation, dial token, message size. */
  i = 0;
  /** Kind-specific payload: message, timer name, callback. */
  x: unknown = undefined;
  c: Conn | null = null;
}

/** The simulator's context: `now` is a plain field, refreshed before each `handle` call. */
type SimCtx<M> = NodeContext<M> & { now: number };

class SimNode<M> {
  up = false;
  inc = -1;
  proto: ProtocolNode<M> | null = null;
  ctx: SimCtx<M> | null = null;
  timers = new Map<TimerName, number>();
  /** Connections whose local end is pending or open, by peer index. */
  conns = new Map<number, Conn>();
  /** Pending outbound dials: peer index -> dial token. */
  dialing = new Map<number, number>();
  group = 0;
  constructor(
    readonly idx: number,
    readonly id: NodeId,
    readonly factory: NodeFactory<M>,
    readonly storage: MemoryStorage,
  ) {}
}

const PAIR = 4194304; // 2^22: max node count, so from * PAIR + to is an exact integer key
const P1 = 0x01000193;
const P2 = 0x85ebca6b;

function validateLink(c: LinkConfig): LinkConfig {
  const bad = (what: string): never => {
    throw new RangeError(`invalid link config: ${what} (${JSON.stringify(c)})`);
  };
  if (!(c.minLatencyMs >= 0) || !(c.maxLatencyMs >= c.minLatencyMs) || !Number.isFinite(c.maxLatencyMs))
    bad("need 0 <= minLatencyMs <= maxLatencyMs < Infinity");
  for (const k of ["lossRate", "duplicateRate", "reorderRate"] as const) if (!(c[k] >= 0 && c[k] <= 1)) bad(`${k} must be in [0, 1]`);
  if (!(c.reorderDelayMs >= 0) || !Number.isFinite(c.reorderDelayMs)) bad("reorderDelayMs must be >= 0");
  return c;
}

/**
 * The simulator. Typical use:
 * ```ts
 * const sim = new Simulator<Msg>({ seed: 42, network: { minLatencyMs: 5, maxLatencyMs: 20 } });
 * for (let i = 0; i < 100; i++) sim.addNode(i, () => new MyProtocol());
 * sim.schedule(randomFaultPlan(42, { nodes: sim.ids(), durationMs: 60_000, crashes: 10 }));
 * const r = sim.run({ until: 60_000 });
 * ```
 */
export class Simulator<M = unknown> {
  /** The seed given at construction (print it when a test fails). */
  readonly seed: number | string;
  private readonly net: Sfc32;
  private readonly seed32: number;
  private readonly q = new EventQueue<Ev>();
  private readonly pool: Ev[] = [];
  private readonly nodes: SimNode<M>[] = [];
  private readonly index = new Map<NodeId, number>();
  private readonly baseLink: LinkConfig;
  private link: LinkConfig;
  private readonly overrides = new Map<number, LinkConfig>();
  private readonly connectionless: boolean;
  private readonly fifo: boolean;
  private readonly crashDetectionMs: number | undefined;
  private readonly partitionDetectionMs: number | undefined;
  private readonly dialTimeoutMs: number | undefined;
  private readonly sizeOf: ((msg: M) => number) | undefined;
  private trace: ((r: TraceRecord<M>) => void) | undefined;
  private readonly freeze: boolean;
  private readonly strict: boolean;
  private readonly hashMessage: ((msg: M) => number) | undefined;
  private readonly cloneStorage: boolean;
  private readonly maxEventsPerRun: number;

  private clock = 0;
  /** False while no partition is in force, so the hot path skips group checks. */
  private partitioned = false;
  private dialSeq = 0;
  private timerGen = 0;
  private h1 = 0x811c9dc5 | 0;
  private h2 = 0x6a09e667 | 0;
  private current: SimNode<M> | undefined;

  // Metrics.
  private nEvents = 0;
  private nHandler = 0;
  private nSent = 0;
  private nDelivered = 0;
  private nDuplicated = 0;
  private readonly drops = new Float64Array(DROP_CAUSES.length);
  private bytesSent = 0;
  private bytesDelivered = 0;
  private nTimersSet = 0;
  private nTimersFired = 0;
  private nDials = 0;
  private nDialFailures = 0;
  private nOpened = 0;
  private nDisconnects = 0;
  private nHangUps = 0;
  private nCrashes = 0;
  private nRestarts = 0;
  private nPartitions = 0;
  private nHeals = 0;
  private wallMs = 0;

  constructor(opts: SimOptions<M>) {
    this.seed = opts.seed;
    this.seed32 = deriveSeed(opts.seed);
    this.net = new Sfc32(deriveSeed(opts.seed, "net"));
    this.baseLink = validateLink({ ...DEFAULT_LINK, ...opts.network });
    this.link = this.baseLink;
    this.connectionless = opts.connectionless ?? false;
    this.fifo = opts.fifo ?? false;
    this.crashDetectionMs = opts.crashDetectionMs;
    this.partitionDetectionMs = opts.partitionDetectionMs;
    this.dialTimeoutMs = opts.dialTimeoutMs;
    this.sizeOf = opts.sizeOf;
    this.trace = opts.trace;
    this.freeze = opts.freezeMessages ?? false;
    this.strict = opts.strict ?? false;
    this.hashMessage = opts.hashMessage;
    this.cloneStorage = opts.cloneStorage ?? true;
    this.maxEventsPerRun = opts.maxEventsPerRun ?? 50_000_000;
  }

  // ---- Clock, queue, identity ------------------------------------------------------

  /** Current virtual time (ms). Never decreases. */
  get now(): number {
    return this.clock;
  }

  /** Events waiting in the queue (including stale ones that will be skipped). */
  get pending(): number {
    return this.q.size;
  }

  /**
   * Running hash (16 hex digits) over every event handed to a node, in order: kind, node,
   * peer and time (µs). Two runs with the same seed and setup have the same hash.
   */
  get hash(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, "0") + (this.h2 >>> 0).toString(16).padStart(8, "0");
  }

  /** Replace the trace hook (undefined turns tracing off). */
  setTrace(trace: ((r: TraceRecord<M>) => void) | undefined): void {
    this.trace = trace;
  }

  private ev(t: number, k: number, n: number, p: number, i: number, x: unknown, c: Conn | null): void {
    const e = this.pool.pop() ?? new Ev();
    e.t = t;
    e.k = k;
    e.n = n;
    e.p = p;
    e.i = i;
    e.x = x;
    e.c = c;
    this.q.push(t, e);
  }

  private idx(id: NodeId): number | undefined {
    if (typeof id === "number" && id >= 0 && id < this.nodes.length && this.nodes[id]!.id === id) return id;
    return this.index.get(id);
  }

  private mustIdx(id: NodeId): number {
    const i = this.idx(id);
    if (i === undefined) throw new RangeError(`seed=${String(this.seed)}: unknown node ${JSON.stringify(id)}`);
    return i;
  }

  // ---- Nodes -----------------------------------------------------------------------

  /**
   * Add a node; `factory` builds its in-memory state now and again on every restart.
   * It receives `start` after `startDelayMs` (default 0).
   */
  addNode(id: NodeId, factory: NodeFactory<M>, opts: { startDelayMs?: number } = {}): void {
    if (this.index.has(id)) throw new RangeError(`seed=${String(this.seed)}: duplicate node id ${JSON.stringify(id)}`);
    if (this.nodes.length >= PAIR) throw new RangeError(`at most ${PAIR} nodes`);
    const idx = this.nodes.length;
    const node = new SimNode<M>(idx, id, factory, new MemoryStorage(this.cloneStorage));
    this.nodes.push(node);
    this.index.set(id, idx);
    this.boot(node, false, opts.startDelayMs ?? 0);
  }

  private boot(node: SimNode<M>, restarted: boolean, delay: number): void {
    node.inc++;
    node.up = true;
    const rng = new Sfc32(deriveSeed(this.seed32, "node", node.id, node.inc));
    node.ctx = this.makeCtx(node, node.inc, rng);
    node.proto = node.factory({ id: node.id, storage: node.storage, rng, restarted, incarnation: node.inc });
    this.ev(this.clock + Math.max(0, delay), K_START, node.idx, node.idx, node.inc, undefined, null);
  }

  private makeCtx(node: SimNode<M>, inc: number, rng: Sfc32): SimCtx<M> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const sim = this;
    const live = (): boolean => node.up && node.inc === inc;
    return {
      id: node.id,
      rng,
      storage: node.storage,
      // Nodes only run inside handle(), and invoke() sets this first: a data property is
      // much cheaper than a getter at millions of reads.
      now: sim.clock,
      send(to, msg) {
        if (live()) sim.doSend(node, to, msg);
      },
      dial(peer) {
        if (live()) sim.doDial(node, peer);
      },
      hangUp(peer) {
        if (live()) sim.doHangUp(node, peer);
      },
      setTimer(name, delayMs) {
        if (!live()) return;
        const gen = ++sim.timerGen;
        node.timers.set(name, gen);
        sim.nTimersSet++;
        const d = delayMs > 0 ? delayMs : 0; // NaN and negatives fire now
        if (d !== Infinity) sim.ev(sim.clock + d, K_TIMER, node.idx, node.idx, gen, name, null);
      },
      cancelTimer(name) {
        if (live()) node.timers.delete(name);
      },
    };
  }

  /** All node ids, in insertion order. */
  ids(): NodeId[] {
    return this.nodes.map((n) => n.id);
  }

  /** Ids of nodes that are up. */
  liveIds(): NodeId[] {
    const out: NodeId[] = [];
    for (const n of this.nodes) if (n.up) out.push(n.id);
    return out;
  }

  get size(): number {
    return this.nodes.length;
  }

  isUp(id: NodeId): boolean {
    return this.nodes[this.mustIdx(id)]!.up;
  }

  /** The node's current protocol instance (undefined while crashed), for assertions. */
  node<T extends ProtocolNode<M> = ProtocolNode<M>>(id: NodeId): T | undefined {
    return (this.nodes[this.mustIdx(id)]!.proto ?? undefined) as T | undefined;
  }

  /** The node's durable store. */
  storage(id: NodeId): DurableStorage {
    return this.nodes[this.mustIdx(id)]!.storage;
  }

  /** Incarnation number: 0 until the first restart. */
  incarnation(id: NodeId): number {
    return this.nodes[this.mustIdx(id)]!.inc;
  }

  /** Peers to which `id` has a connection open at its own end (it has seen `connected`). */
  peersOf(id: NodeId): NodeId[] {
    const node = this.nodes[this.mustIdx(id)]!;
    const out: NodeId[] = [];
    for (const [p, c] of node.conns) if (endOf(c, node.idx) === OPEN) out.push(this.nodes[p]!.id);
    return out;
  }

  /** Number of open connection ends at `id` (cheaper than `peersOf(id).length`). */
  degree(id: NodeId): number {
    const node = this.nodes[this.mustIdx(id)]!;
    let d = 0;
    for (const c of node.conns.values()) if (endOf(c, node.idx) === OPEN) d++;
    return d;
  }

  /** True if both ends of a connection between a and b are open. */
  isConnected(a: NodeId, b: NodeId): boolean {
    const ia = this.mustIdx(a);
    const ib = this.mustIdx(b);
    const c = this.nodes[ia]!.conns.get(ib);
    return c !== undefined && c.sa === OPEN && c.sb === OPEN;
  }

  /** True if a and b are on the same side of the current partition. */
  sameSide(a: NodeId, b: NodeId): boolean {
    return this.nodes[this.mustIdx(a)]!.group === this.nodes[this.mustIdx(b)]!.group;
  }

  /** Deliver `discovered {peer}` to `id` after `delayMs`. */
  discover(id: NodeId, peer: NodeId, delayMs = 0): void {
    this.ev(this.clock + Math.max(0, delayMs), K_DISCOVER, this.mustIdx(id), this.mustIdx(peer), 0, undefined, null);
  }

  // ---- Network ---------------------------------------------------------------------

  private cfg(from: number, to: number): LinkConfig {
    if (this.overrides.size === 0) return this.link;
    return this.overrides.get(from * PAIR + to) ?? this.link;
  }

  private latency(cfg: LinkConfig): number {
    const min = cfg.minLatencyMs;
    let d = cfg.maxLatencyMs === min ? min : min + (cfg.maxLatencyMs - min) * this.net.next();
    if (cfg.reorderRate > 0 && this.net.next() < cfg.reorderRate) d += this.net.next() * cfg.reorderDelayMs;
    return d;
  }

  private drop(from: number, to: number, msg: unknown, cause: number): void {
    this.drops[cause]!++;
    if (this.trace !== undefined) {
      this.trace({
        kind: "drop",
        time: this.clock,
        from: this.nodes[from]!.id,
        to: to >= 0 ? this.nodes[to]!.id : "?",
        msg: msg as M,
        cause: DROP_CAUSES[cause]!,
      });
    }
  }

  private doSend(src: SimNode<M>, to: NodeId, msg: M): void {
    this.nSent++;
    if (this.freeze) deepFreeze(msg);
    let size = 0;
    if (this.sizeOf !== undefined) {
      size = this.sizeOf(msg);
      this.bytesSent += size;
    }
    const ti = this.idx(to);
    if (ti === undefined) {
      this.drops[D_UNKNOWN]!++;
      if (this.trace) this.trace({ kind: "drop", time: this.clock, from: src.id, to, msg, cause: "unknownNode" });
      return;
    }
    const from = src.idx;
    if (ti === from) return this.drop(from, ti, msg, D_SELF);
    let c: Conn | null = null;
    if (!this.connectionless) {
      const cc = src.conns.get(ti);
      if (cc === undefined || endOf(cc, from) !== OPEN) return this.drop(from, ti, msg, D_NOT_CONNECTED);
      c = cc;
    }
    if (this.partitioned && src.group !== this.nodes[ti]!.group) return this.drop(from, ti, msg, D_PARTITION);
    const cfg = this.cfg(from, ti);
    if (cfg.lossRate > 0 && this.net.next() < cfg.lossRate) return this.drop(from, ti, msg, D_LOSS);
    this.schedMsg(from, ti, msg, size, c, cfg);
    if (cfg.duplicateRate > 0 && this.net.next() < cfg.duplicateRate) {
      this.nDuplicated++;
      this.schedMsg(from, ti, msg, size, c, cfg);
    }
  }

  private schedMsg(from: number, to: number, msg: unknown, size: number, c: Conn | null, cfg: LinkConfig): void {
    let t = this.clock + this.latency(cfg);
    if (c !== null) {
      if (to === c.a) {
        if (t < c.openAtA) t = c.openAtA;
        if (this.fifo) {
          if (t < c.lastBA) t = c.lastBA;
          c.lastBA = t;
        }
        if (t > c.maxBA) c.maxBA = t;
      } else {
        if (t < c.openAtB) t = c.openAtB;
        if (this.fifo) {
          if (t < c.lastAB) t = c.lastAB;
          c.lastAB = t;
        }
        if (t > c.maxAB) c.maxAB = t;
      }
    }
    this.ev(t, K_MSG, to, from, size, msg, c);
  }

  private doDial(src: SimNode<M>, peer: NodeId): void {
    const ti = this.idx(peer);
    if (ti !== undefined) {
      if (src.dialing.has(ti)) return;
      const c = src.conns.get(ti);
      if (c !== undefined) {
        // Open: already connected, a no-op. Pending (an inbound connection is completing):
        // this dial resolves with that connection's `connected`, or `dialFailed` if it resets.
        if (endOf(c, src.idx) === PENDING) src.dialing.set(ti, ++this.dialSeq);
        return;
      }
    }
    this.nDials++;
    const token = ++this.dialSeq;
    if (ti === undefined || ti === src.idx) {
      // Unknown or self: fail at once (as an event, never re-entrantly).
      const pi = ti ?? this.unknownPeerIndex(peer);
      src.dialing.set(pi, token);
      this.ev(this.clock, K_DIAL_FAIL, src.idx, pi, token, peer, null);
      return;
    }
    src.dialing.set(ti, token);
    this.ev(this.clock + this.latency(this.cfg(src.idx, ti)), K_DIAL_ARRIVE, ti, src.idx, token, undefined, null);
  }

  /** Unknown peers get negative pseudo-indices so dial bookkeeping stays keyed by number. */
  private readonly unknownPeers = new Map<NodeId, number>();
  private unknownPeerIndex(peer: NodeId): number {
    let i = this.unknownPeers.get(peer);
    if (i === undefined) {
      i = -1 - this.unknownPeers.size;
      this.unknownPeers.set(peer, i);
    }
    return i;
  }

  private acceptDial(e: Ev): void {
    const a = this.nodes[e.p]!; // dialer
    const b = this.nodes[e.n]!; // target
    if (a.dialing.get(b.idx) !== e.i) return; // dialer crashed, hung up or already connected
    if (!b.up || a.group !== b.group) {
      const d = this.dialTimeoutMs ?? this.latency(this.cfg(b.idx, a.idx));
      this.ev(this.clock + d, K_DIAL_FAIL, a.idx, b.idx, e.i, undefined, null);
      return;
    }
    const old = b.conns.get(a.idx);
    if (old !== undefined) {
      // Crossing dials: a live connection already exists and will report `connected` to a.
      if (endOf(old, a.idx) !== CLOSED) return;
      // b has not yet noticed that a closed the old connection: it learns now, before the
      // new one opens. (Direct call: we are in top-level dispatch, not inside a handler.)
      const st = endOf(old, b.idx);
      setEnd(old, b.idx, CLOSED);
      b.conns.delete(a.idx);
      if (st === OPEN) {
        this.nDisconnects++;
        this.invoke(b, { type: "disconnected", peer: a.id }, K_DISCONNECTED_NOW, a.idx);
        // b's handler may dial a (recorded as pending; the connection below resolves it) but
        // cannot open or close a connection to a, nor touch a's dial.
      }
    }
    // a's own map may still hold a connection b already hung up on (its close notice in
    // flight); it is superseded silently. Its end cannot be open: then a's dial would have
    // been resolved by that connection.
    const oldA = a.conns.get(b.idx);
    if (oldA !== undefined) setEnd(oldA, a.idx, CLOSED);
    const c = new Conn(a.idx, b.idx);
    a.conns.set(b.idx, c);
    b.conns.set(a.idx, c);
    this.nOpened++;
    c.openAtB = this.clock;
    this.ev(this.clock, K_CONNECTED, b.idx, a.idx, 0, undefined, c);
    const tA = this.clock + this.latency(this.cfg(b.idx, a.idx));
    c.openAtA = tA;
    this.ev(tA, K_CONNECTED, a.idx, b.idx, 0, undefined, c);
  }

  private doHangUp(src: SimNode<M>, peer: NodeId): void {
    const ti = this.idx(peer);
    if (ti === undefined) return;
    src.dialing.delete(ti);
    const c = src.conns.get(ti);
    if (c === undefined) return;
    this.nHangUps++;
    setEnd(c, src.idx, CLOSED);
    src.conns.delete(ti);
    if (endOf(c, ti) !== CLOSED) {
      // Data sent before the hang-up arrives first (like a TCP FIN after the data).
      let t = this.clock + this.latency(this.cfg(src.idx, ti));
      const inFlight = src.idx === c.a ? c.maxAB : c.maxBA;
      if (t < inFlight) t = inFlight;
      this.ev(t, K_CLOSE, ti, src.idx, 0, undefined, c);
    }
  }

  // ---- Event dispatch --------------------------------------------------------------

  private invoke(node: SimNode<M>, event: NodeEvent<M>, kind: number, peer: number): void {
    this.nHandler++;
    // Hash: kind, node, peer, time in integer microseconds (two 32-bit halves).
    const tq = Math.round(this.clock * 1000);
    const lo = tq | 0;
    const hi = (tq / 4294967296) | 0;
    let h = this.h1;
    h = Math.imul(h ^ kind, P1);
    h = Math.imul(h ^ node.idx, P1);
    h = Math.imul(h ^ peer, P1);
    h = Math.imul(h ^ lo, P1);
    h = Math.imul(h ^ hi, P1);
    this.h1 = h;
    let g = this.h2 ^ h;
    g = Math.imul(g ^ (g >>> 15), P2);
    this.h2 = (g ^ (g >>> 13)) + lo;
    if (this.trace !== undefined) this.trace({ kind: "event", time: this.clock, node: node.id, event });
    this.current = node;
    const ctx = node.ctx!;
    ctx.now = this.clock;
    node.proto!.handle(event, ctx);
    this.current = undefined;
  }

  private dispatch(e: Ev): void {
    const k = e.k;
    if (k === K_CALL) {
      (e.x as () => void)();
      return;
    }
    const node = this.nodes[e.n]!;
    switch (k) {
      case K_MSG: {
        if (!node.up) return this.drop(e.p, e.n, e.x, D_CRASHED);
        if (this.partitioned && node.group !== this.nodes[e.p]!.group) return this.drop(e.p, e.n, e.x, D_PARTITION);
        const c = e.c;
        if (c !== null && endOf(c, e.n) !== OPEN) return this.drop(e.p, e.n, e.x, D_DISCONNECTED);
        this.nDelivered++;
        this.bytesDelivered += e.i;
        if (this.hashMessage !== undefined) this.h2 = Math.imul(this.h2 ^ this.hashMessage(e.x as M), P1);
        this.invoke(node, { type: "message", from: this.nodes[e.p]!.id, msg: e.x as M }, K_MSG, e.p);
        return;
      }
      case K_TIMER: {
        const name = e.x as TimerName;
        if (!node.up || node.timers.get(name) !== e.i) return;
        node.timers.delete(name);
        this.nTimersFired++;
        this.invoke(node, { type: "timer", name }, K_TIMER, e.n);
        return;
      }
      case K_START:
        if (node.up && node.inc === e.i) this.invoke(node, { type: "start", restarted: e.i > 0 }, K_START, e.n);
        return;
      case K_CONNECTED: {
        const c = e.c!;
        if (endOf(c, e.n) !== PENDING) return;
        if (this.partitioned && node.group !== this.nodes[e.p]!.group) {
          // The handshake's last leg crossed a partition that formed meanwhile: the dial
          // fails. (The other end's close is already scheduled by partition().)
          setEnd(c, e.n, CLOSED);
          if (node.conns.get(e.p) === c) node.conns.delete(e.p);
          if (node.dialing.has(e.p)) {
            node.dialing.delete(e.p);
            this.nDialFailures++;
            this.invoke(node, { type: "dialFailed", peer: this.nodes[e.p]!.id }, K_DIAL_FAIL, e.p);
          }
          return;
        }
        setEnd(c, e.n, OPEN);
        node.dialing.delete(e.p);
        this.invoke(node, { type: "connected", peer: this.nodes[e.p]!.id, outbound: c.a === e.n }, K_CONNECTED, e.p);
        return;
      }
      case K_CLOSE: {
        const c = e.c!;
        const st = endOf(c, e.n);
        if (st === CLOSED) return;
        setEnd(c, e.n, CLOSED);
        if (node.conns.get(e.p) === c) node.conns.delete(e.p);
        if (!node.up) return;
        if (st === OPEN) {
          this.nDisconnects++;
          this.invoke(node, { type: "disconnected", peer: this.nodes[e.p]!.id }, K_DISCONNECTED_NOW, e.p);
        } else if (node.dialing.has(e.p)) {
          // Reset during the handshake: the dial fails.
          node.dialing.delete(e.p);
          this.nDialFailures++;
          this.invoke(node, { type: "dialFailed", peer: this.nodes[e.p]!.id }, K_DIAL_FAIL, e.p);
        }
        return;
      }
      case K_DIAL_ARRIVE:
        this.acceptDial(e);
        return;
      case K_DIAL_FAIL: {
        if (node.dialing.get(e.p) !== e.i) return;
        node.dialing.delete(e.p);
        this.nDialFailures++;
        const peer = e.p >= 0 ? this.nodes[e.p]!.id : (e.x as NodeId);
        this.invoke(node, { type: "dialFailed", peer }, K_DIAL_FAIL, e.p);
        return;
      }
      case K_DISCOVER:
        if (node.up) this.invoke(node, { type: "discovered", peer: this.nodes[e.p]!.id }, K_DISCOVER, e.p);
        return;
    }
  }

  // ---- Running ---------------------------------------------------------------------

  /**
   * Process events in (time, sequence) order until `until`/`duration`, `stopWhen`, an empty
   * queue, or a bound. Always bounded: `maxEvents` defaults to `maxEventsPerRun`.
   * Throws {@link SimLimitError} on a bound unless `onLimit: "return"`, and
   * {@link SimProtocolError} if a node's `handle` throws.
   */
  run(opts: RunOptions<M> = {}): RunResult {
    if (!this.strict) return this.runLoop(opts);
    const random = Math.random;
    const dateNow = Date.now;
    const forbid = (what: string) => (): never => {
      throw new Error(`${what} called during a simulation run (strict mode): use ctx.rng / ctx.now`);
    };
    Math.random = forbid("Math.random");
    Date.now = forbid("Date.now");
    try {
      return this.runLoop(opts);
    } finally {
      Math.random = random;
      Date.now = dateNow;
    }
  }

  private runLoop(opts: RunOptions<M>): RunResult {
    const until = opts.until ?? (opts.duration !== undefined ? this.clock + opts.duration : Infinity);
    if (!(until >= this.clock)) throw new RangeError(`seed=${String(this.seed)}: run until ${until} < now ${this.clock}`);
    const maxEvents = opts.maxEvents ?? this.maxEventsPerRun;
    const stopWhen = opts.stopWhen;
    const every = Math.max(1, Math.floor(opts.checkEvery ?? 1));
    const maxWall = opts.maxWallMs ?? Infinity;
    const w0 = performance.now();
    const q = this.q;
    let n = 0;
    let reason: StopReason;
    if (stopWhen !== undefined && stopWhen(this)) reason = "predicate";
    else {
      for (;;) {
        if (q.size === 0) {
          reason = until === Infinity ? "idle" : "until";
          if (until !== Infinity) this.clock = until;
          break;
        }
        const t = q.peekTime();
        if (t > until) {
          this.clock = until;
          reason = "until";
          break;
        }
        if (n >= maxEvents) {
          reason = "maxEvents";
          break;
        }
        const top = q.pop()!;
        this.clock = t;
        n++;
        try {
          this.dispatch(top);
        } catch (err) {
          this.nEvents += n;
          this.wallMs += performance.now() - w0;
          throw this.protocolError(err, top);
        }
        top.x = undefined;
        top.c = null;
        this.pool.push(top);
        if (stopWhen !== undefined && n % every === 0 && stopWhen(this)) {
          reason = "predicate";
          break;
        }
        if ((n & 4095) === 0 && maxWall !== Infinity && performance.now() - w0 > maxWall) {
          reason = "maxWallMs";
          break;
        }
      }
    }
    const wall = performance.now() - w0;
    this.nEvents += n;
    this.wallMs += wall;
    const result: RunResult = { reason, now: this.clock, events: n, wallMs: wall };
    if ((reason === "maxEvents" || reason === "maxWallMs") && opts.onLimit !== "return") {
      const bound = reason === "maxEvents" ? `maxEvents=${maxEvents}` : `maxWallMs=${maxWall}`;
      throw new SimLimitError(
        `seed=${String(this.seed)}: simulation stopped by ${bound} after ${n} events at t=${this.clock.toFixed(3)}ms ` +
          `with ${this.q.size} events still queued (runaway protocol? timer or message storm?). ` +
          `Pass onLimit: "return" to inspect the state instead.`,
        result,
        this.seed,
      );
    }
    return result;
  }

  private protocolError(err: unknown, e: Ev): SimProtocolError {
    const node = this.current;
    this.current = undefined;
    const msg = err instanceof Error ? err.message : String(err);
    const where = node !== undefined ? `node ${JSON.stringify(node.id)}` : e.k === K_CALL ? "scheduled callback" : "simulator";
    return new SimProtocolError(
      `seed=${String(this.seed)} t=${this.clock.toFixed(3)}ms ${where} failed handling ${KIND_NAMES[e.k]}: ${msg}`,
      this.seed,
      node?.id,
      this.clock,
      { cause: err },
    );
  }

  /** Run `fn` at absolute virtual time `time` (clamped to now), in scheduling order with other events. */
  at(time: number, fn: () => void): void {
    this.ev(Math.max(time, this.clock), K_CALL, 0, 0, 0, fn, null);
  }

  /** Run `fn` after `delayMs` of virtual time. */
  after(delayMs: number, fn: () => void): void {
    this.at(this.clock + Math.max(0, delayMs), fn);
  }

  // ---- Faults ----------------------------------------------------------------------

  /** Schedule every fault of a plan (e.g. from `randomFaultPlan`) at its time. */
  schedule(plan: readonly TimedFault[]): void {
    for (const f of plan) this.at(f.at, () => this.apply(f));
  }

  /** Apply a fault now. */
  apply(f: Fault): void {
    switch (f.type) {
      case "crash":
        this.crash(f.node);
        return;
      case "restart":
        this.restart(f.node);
        return;
      case "partition":
        this.partition(f.groups);
        return;
      case "heal":
        this.heal();
        return;
      case "link":
        if (f.config === null) this.resetLink(f.from, f.to, f.symmetric ?? true);
        else this.setLink(f.from, f.to, f.config, f.symmetric ?? true);
        return;
      case "network":
        this.setNetwork(f.config);
        return;
    }
  }

  private traceFault(fault: Fault): void {
    if (this.trace !== undefined) this.trace({ kind: "fault", time: this.clock, fault });
  }

  /**
   * Crash a node now: it stops, its timers, pending dials and memory are dropped, and
   * messages arriving while it is down are dropped. Peers see `disconnected` after
   * `crashDetectionMs` (default: one link latency). Returns false if it was already down.
   */
  crash(id: NodeId): boolean {
    const node = this.nodes[this.mustIdx(id)]!;
    if (!node.up) return false;
    this.nCrashes++;
    this.traceFault({ type: "crash", node: id });
    node.up = false;
    node.proto = null;
    node.ctx = null;
    node.timers = new Map();
    node.dialing = new Map();
    for (const [peer, c] of node.conns) {
      setEnd(c, node.idx, CLOSED);
      if (endOf(c, peer) !== CLOSED) {
        const d = this.crashDetectionMs ?? this.latency(this.cfg(node.idx, peer));
        this.ev(this.clock + d, K_CLOSE, peer, node.idx, 0, undefined, c);
      }
    }
    node.conns = new Map();
    return true;
  }

  /**
   * Restart a crashed node now: its factory builds fresh memory from its durable storage
   * (`restarted: true`) and it receives `start`. Returns false if it was up.
   */
  restart(id: NodeId): boolean {
    const node = this.nodes[this.mustIdx(id)]!;
    if (node.up) return false;
    this.nRestarts++;
    this.traceFault({ type: "restart", node: id });
    this.boot(node, true, 0);
    return true;
  }

  /**
   * Partition the network: nodes in different groups cannot exchange messages or dial each
   * other; connections crossing groups close (each end sees `disconnected` after
   * `partitionDetectionMs`, default one link latency). Nodes in no group form one more
   * group. Replaces any current partition.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    // Validate everything before changing anything.
    const assigned = new Map<number, number>();
    groups.forEach((g, gi) => {
      for (const id of g) {
        const i = this.mustIdx(id);
        if (assigned.has(i)) throw new RangeError(`seed=${String(this.seed)}: node ${JSON.stringify(id)} is in two partition groups`);
        assigned.set(i, gi + 1);
      }
    });
    for (const n of this.nodes) n.group = assigned.get(n.idx) ?? 0;
    this.partitioned = true;
    this.nPartitions++;
    this.traceFault({ type: "partition", groups });
    for (const node of this.nodes) {
      for (const [peer, c] of node.conns) {
        if (this.nodes[peer]!.group !== node.group) {
          const d = this.partitionDetectionMs ?? this.latency(this.cfg(peer, node.idx));
          this.ev(this.clock + d, K_CLOSE, node.idx, peer, 0, undefined, c);
        }
      }
    }
  }

  /** Remove the partition. Closed connections stay closed; protocols re-dial. */
  heal(): void {
    for (const n of this.nodes) n.group = 0;
    this.partitioned = false;
    this.nHeals++;
    this.traceFault({ type: "heal" });
  }

  /**
   * Override the link from -> to (and to -> from if `symmetric`) with the current default
   * plus `config`. Affects messages sent from now on.
   */
  setLink(from: NodeId, to: NodeId, config: Partial<LinkConfig>, symmetric = true): void {
    const a = this.mustIdx(from);
    const b = this.mustIdx(to);
    const cfg = validateLink({ ...this.link, ...config });
    this.overrides.set(a * PAIR + b, cfg);
    if (symmetric) this.overrides.set(b * PAIR + a, cfg);
    this.traceFault({ type: "link", from, to, config, symmetric });
  }

  /** Remove a link override. */
  resetLink(from: NodeId, to: NodeId, symmetric = true): void {
    const a = this.mustIdx(from);
    const b = this.mustIdx(to);
    this.overrides.delete(a * PAIR + b);
    if (symmetric) this.overrides.delete(b * PAIR + a);
    this.traceFault({ type: "link", from, to, config: null, symmetric });
  }

  /** Set the default link to the base config (from the constructor) plus `config`; null restores the base. */
  setNetwork(config: Partial<LinkConfig> | null): void {
    this.link = config === null ? this.baseLink : validateLink({ ...this.baseLink, ...config });
    this.traceFault({ type: "network", config });
  }

  // ---- Metrics ---------------------------------------------------------------------

  /** A snapshot of all counters. */
  metrics(): SimMetrics {
    const dropped = { total: 0 } as Record<DropCause, number> & { total: number };
    DROP_CAUSES.forEach((c, i) => {
      dropped[c] = this.drops[i]!;
      dropped.total += this.drops[i]!;
    });
    let storageWrites = 0;
    for (const n of this.nodes) storageWrites += n.storage.writes;
    return {
      seed: this.seed,
      virtualTimeMs: this.clock,
      wallTimeMs: this.wallMs,
      events: this.nEvents,
      handlerCalls: this.nHandler,
      messages: { sent: this.nSent, delivered: this.nDelivered, duplicated: this.nDuplicated, dropped },
      bytes: { sent: this.bytesSent, delivered: this.bytesDelivered },
      timers: { set: this.nTimersSet, fired: this.nTimersFired },
      connections: {
        dials: this.nDials,
        dialFailures: this.nDialFailures,
        opened: this.nOpened,
        disconnects: this.nDisconnects,
        hangUps: this.nHangUps,
      },
      faults: { crashes: this.nCrashes, restarts: this.nRestarts, partitions: this.nPartitions, heals: this.nHeals },
      storageWrites,
      hash: this.hash,
    };
  }
}
