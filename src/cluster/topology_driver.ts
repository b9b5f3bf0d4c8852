// Drives a sans-IO TopologyNode on a real libp2p peer.
//
// A topology "connection" is a *session* over the coordination channel, not a libp2p
// connection: `topo.hello` (request) opens one, `topo` frames carry overlay messages tagged
// with the session id, `topo.bye` closes it, and losing every libp2p connection to the peer
// ends it. Why not map sessions 1:1 onto libp2p connections: Raft, jobs and clients share
// those connections, and the overlay hanging up must neither cut their in-flight requests
// nor make them re-dial in a loop. So when the overlay hangs up, the libp2p connection is
// closed only once no application traffic used it for `appIdleMs` (see Peer's activity
// tracking); connections the overlay never opened a session on are never closed here.
//
// Session ids order concurrent attempts: both sides of a crossed hello keep the larger id,
// and frames or byes of an older session are dropped. Every frame is checked with the zod
// schemas of topology/wire.ts; a bad one is counted and dropped.
import { randomInt } from "node:crypto";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2p, PeerId } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import type { Channel } from "../../channels/channel.js";
import { CHANNELS } from "../../channels/specs.js";
import { createRng } from "../sim/rng.js";
import { MemoryStorage } from "../sim/storage.js";
import type { NodeContext, NodeEvent } from "../sim/protocol.js";
import { HyParView } from "../../topology/hyparview.js";
import { createManager } from "../../topology/managers.js";
import { TopologyNode } from "../../topology/node.js";
import type { Delivery, DetectorOptions, NodeId, PlumtreeOptions, TopologyMessage, TopologyName } from "../../topology/types.js";
import { Bye, Hello, HelloReply, TopologyFrame, type TopologyChoice } from "../../topology/wire.js";
import { silentLogger, type Logger } from "./log.js";

/** Tuning knobs (tests shorten them). */
export interface TopologyDriverTuning {
  detector?: DetectorOptions;
  plumtree?: PlumtreeOptions;
  /** Unwanted sessions are closed by the node after this long unused (default 3000). */
  transientIdleMs?: number;
  /** A libp2p connection the overlay let go is closed once no application traffic used it for this long (default 5000). */
  appIdleMs?: number;
  /** Seed of the node's random source (default: random, logged and shown in status). */
  seed?: number;
  /** `topo.hello` timeout, dial included (default 10000: a loaded box takes seconds to dial). */
  helloTimeoutMs?: number;
}

/** What the driver needs from its peer. */
export interface DriverHost {
  readonly node: Libp2p;
  readonly coordination: Channel;
  /** Own listen addresses without /p2p. */
  ownAddrs(): string[];
  /** True while application traffic (not topology, not probes) is in flight to `peer` or was within `idleMs`. */
  appBusy(peer: string, idleMs: number): boolean;
  /** A session opened (the peer is a DSPEx peer running a topology). */
  sessionOpened?(peer: string): void;
}

export interface TopologyViews {
  topology: TopologyName;
  /** HyParView: the active view; other managers: the peers they keep connections to. */
  active: string[];
  /** HyParView's passive view (empty for other managers). */
  passive: string[];
  /** Age of each passive entry (ms since someone had direct evidence of its life), parallel to `passive`. */
  passiveAgeMs: number[];
  /** Confirmed overlay edges (broadcast / failure detection). */
  neighbors: string[];
  /** Known live members. */
  members: string[];
  /** Open topology sessions (active view plus transient ones). */
  sessions: string[];
  switches: number;
  /** Peers the failure detector declared dead (silent failures; connection loss is not counted). */
  declaredDead: number;
  seed: number;
  stats: DriverStats;
}

export interface DriverStats {
  framesIn: number;
  framesOut: number;
  /** Frames / hellos / byes that failed their schema (dropped). */
  badFrames: number;
  /** Frames for a session that is not open here (answered with a bye). */
  staleFrames: number;
  sendErrors: number;
  dialFailures: number;
  /** Errors thrown by the node (bugs; logged, never fatal). */
  nodeErrors: number;
  /** libp2p connections closed because the overlay let them go. */
  closedConnections: number;
  /** Worst event-loop lag seen in the last ~30 s (ms): timings here are only as good as this. */
  lagMs: number;
}

interface Session {
  readonly peer: string;
  readonly pid: PeerId;
  state: "dialing" | "open";
  sid: number;
  outbox: TopologyMessage[];
  /** Wall clock when the oldest message in the outbox was handed over. */
  outboxSince: number;
  flushing: boolean;
  abort?: AbortController;
}

const MAX_BATCH = 64;
const MAX_BOOK = 10_000;
const MAX_ADDRS = 4;
/** Cap on the transit delay added to ages (bounds the damage of a skewed clock). */
const MAX_AGE_FIX_MS = 30_000;

let sidCounter = 0;
/** Session ids grow with time, so a fresh hello beats any older session's id. */
function newSid(): number {
  sidCounter = (sidCounter + 1) % 1000;
  return Date.now() * 1000 + sidCounter;
}

/** Shuffle ages mean "ms since evidence of life": time in transit is part of it. */
function withDelay(msg: TopologyMessage, delay: number): TopologyMessage {
  if (msg.type !== "hv.shuffle" && msg.type !== "hv.shuffle_reply") return msg;
  return { ...msg, peers: msg.peers.map(([p, age]) => [p, age + delay] as [NodeId, number]) };
}

function stripP2p(addr: string): string {
  const i = addr.indexOf("/p2p/");
  return i >= 0 ? addr.slice(0, i) : addr;
}

/** Addresses from the wire made fit for the peer store: without /p2p, valid, distinct, at most `max`. */
export function dialableAddrs(addrs: readonly string[], max = MAX_ADDRS): string[] {
  const clean: string[] = [];
  for (const a of addrs) {
    const x = stripP2p(a);
    if (clean.length >= max || clean.includes(x)) continue;
    try {
      multiaddr(x);
    } catch {
      continue;
    }
    clean.push(x);
  }
  return clean;
}

export class TopologyDriver {
  private node: TopologyNode;
  private started = false;
  private stopped = false;
  private readonly sessions = new Map<string, Session>();
  /** Per peer: the tail of its ordered writes (frames, byes), so a new hello follows the old bye. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly book = new Map<string, string[]>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Peers whose libp2p connection should close once application traffic is idle: peer -> since. */
  private readonly letGo = new Map<string, number>();
  private readonly sweep: NodeJS.Timeout;
  private readonly ctx: NodeContext<TopologyMessage>;
  private readonly log: Logger;
  private readonly appIdleMs: number;
  private readonly helloTimeoutMs: number;
  private readonly bootstrap: string[];
  private choiceKey: string;
  readonly seed: number;
  readonly stats: DriverStats = { framesIn: 0, framesOut: 0, badFrames: 0, staleFrames: 0, sendErrors: 0, dialFailures: 0, nodeErrors: 0, closedConnections: 0, lagMs: 0 };
  onDeliver: ((d: Delivery) => void) | undefined;

  constructor(
    private readonly host: DriverHost,
    choice: TopologyChoice,
    bootstrap: { id: string; addrs: string[] }[],
    private readonly tuning: TopologyDriverTuning = {},
    logger: Logger = silentLogger,
  ) {
    this.log = logger;
    this.appIdleMs = tuning.appIdleMs ?? 5000;
    this.helloTimeoutMs = tuning.helloTimeoutMs ?? 10_000;
    this.seed = tuning.seed ?? randomInt(2 ** 31);
    const selfId = host.node.peerId.toString();
    const storage = new MemoryStorage(false);
    // The incarnation must grow across restarts (full-mesh refutes its old death with it)
    // and we keep no disk here: start from the wall clock.
    storage.set("topology.incarnation", Date.now());
    const rng = createRng(this.seed, "topology", selfId);
    const timers = this.timers;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.ctx = {
      id: selfId,
      get now() {
        return performance.now();
      },
      rng,
      storage,
      send: (to, msg) => self.send(String(to), msg),
      dial: (p) => self.dial(String(p)),
      hangUp: (p) => self.hangUp(String(p)),
      setTimer(name, delayMs) {
        const key = String(name);
        const prev = timers.get(key);
        if (prev !== undefined) clearTimeout(prev);
        const t = setTimeout(() => {
          timers.delete(key);
          self.handle({ type: "timer", name });
        }, Math.max(0, delayMs));
        t.unref();
        timers.set(key, t);
      },
      cancelTimer(name) {
        const key = String(name);
        const t = timers.get(key);
        if (t !== undefined) clearTimeout(t);
        timers.delete(key);
      },
    };
    for (const b of bootstrap) this.learn(b.id, b.addrs);
    this.bootstrap = bootstrap.map((b) => b.id).filter((b) => b !== selfId);
    this.node = this.newNode(choice, this.bootstrap);
    this.choiceKey = JSON.stringify([choice.name, choice.options ?? {}]);
    let last = performance.now();
    const lags: number[] = [];
    this.sweep = setInterval(() => {
      const now = performance.now();
      const lag = Math.max(0, now - last - 1000);
      if (lag > 1000) this.log.debug("event loop lag", { ms: Math.round(lag) });
      lags.push(lag);
      last = now;
      if (lags.length > 30) lags.shift();
      this.stats.lagMs = Math.round(Math.max(...lags));
      this.closeIdle();
    }, 1000);
    this.sweep.unref();
    this.wire();
  }

  private newNode(choice: TopologyChoice, bootstrap: string[]): TopologyNode {
    return new TopologyNode({
      topology: choice.name,
      options: choice.options,
      bootstrap,
      detector: this.tuning.detector,
      plumtree: this.tuning.plumtree,
      transientIdleMs: this.tuning.transientIdleMs,
      clock: () => performance.now(),
      onDeliver: (d) => this.onDeliver?.(d),
    });
  }

  get name(): TopologyName {
    return this.node.name;
  }

  /** Start the overlay (joins through the bootstrap peers). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.log.info("topology started", { topology: this.node.name, seed: this.seed });
    this.handle({ type: "start", restarted: false });
  }

  /**
   * Switch the overlay. Before start this just replaces the initial choice. Options must
   * already be validated (topology/wire.ts parseTopologyChoice); a manager that still
   * refuses them throws here and the running one is kept.
   */
  setTopology(choice: TopologyChoice): void {
    createManager(choice.name, choice.options); // throws before anything changes
    const key = JSON.stringify([choice.name, choice.options ?? {}]);
    if (key === this.choiceKey) return; // already running it (e.g. a replayed Raft command)
    this.choiceKey = key;
    if (!this.started) {
      this.node = this.newNode(choice, this.bootstrap);
      return;
    }
    try {
      this.node.setTopology(choice.name, choice.options);
    } catch (e) {
      this.stats.nodeErrors++;
      throw e;
    }
    this.log.info("topology switched", { topology: choice.name });
  }

  /** Broadcast over the overlay (Plumtree); returns the message id. */
  broadcast(payload: unknown, reliable = true): string {
    return this.node.broadcast(payload, { reliable });
  }

  views(): TopologyViews {
    const m = this.node.manager;
    const hv = m instanceof HyParView ? m : undefined;
    return {
      topology: this.node.name,
      active: (hv ? [...hv.active] : m.activePeers()).map(String),
      passive: hv ? [...hv.passive.keys()].map(String) : [],
      passiveAgeMs: hv ? [...hv.passive.values()].map((t) => Math.round(performance.now() - t)) : [],
      neighbors: this.node.neighbors().map(String),
      members: this.node.members().map(String),
      sessions: [...this.sessions.values()].filter((s) => s.state === "open").map((s) => s.peer),
      switches: this.node.stats.switches,
      declaredDead: this.node.detector.failures,
      seed: this.seed,
      stats: { ...this.stats },
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweep);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sessions.values()) s.abort?.abort();
    this.sessions.clear();
  }

  // ---- Node events ---------------------------------------------------------------------

  private handle(ev: NodeEvent<TopologyMessage>): void {
    if (this.stopped || (!this.started && ev.type !== "start")) return;
    try {
      this.node.handle(ev, this.ctx);
    } catch (e) {
      this.stats.nodeErrors++;
      this.log.warn("topology node error", { event: ev.type, error: String((e as Error)?.stack ?? e) });
    }
  }

  /** A session needs a live libp2p connection: a hello or frame read long after it was sent may come from a peer that has since died. */
  private connected(pid: PeerId): boolean {
    return this.host.node.getConnections(pid).some((c) => c.status === "open");
  }

  private opened(s: Session, outbound: boolean, how: string): void {
    this.log.debug("topology session open", { peer: s.peer, sid: s.sid, how });
    this.letGo.delete(s.peer);
    this.host.sessionOpened?.(s.peer);
    this.handle({ type: "connected", peer: s.peer, outbound });
  }

  // ---- Actions (called by the node) ----------------------------------------------------

  private send(peer: string, msg: TopologyMessage): void {
    const s = this.sessions.get(peer);
    if (s === undefined || s.state !== "open") return; // like a closed connection: dropped
    if (s.outbox.length === 0) s.outboxSince = Date.now();
    s.outbox.push(msg);
    this.scheduleFlush(s);
  }

  /** Run `fn` after every earlier write to `peer`. */
  private enqueue(peer: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(peer) ?? Promise.resolve();
    const next = prev.then(fn).catch((e) => {
      this.stats.sendErrors++;
      this.log.debug("topology send failed", { peer, error: (e as Error).message });
    });
    this.chains.set(peer, next);
    void next.then(() => {
      if (this.chains.get(peer) === next) this.chains.delete(peer);
    });
    return next;
  }

  private async flush(s: Session): Promise<void> {
    try {
      while (s.outbox.length > 0 && !this.stopped) {
        const t = s.outboxSince;
        const m = s.outbox.splice(0, MAX_BATCH);
        s.outboxSince = Date.now();
        const a = this.hintsFor(m, s.peer);
        this.stats.framesOut++;
        await this.host.coordination.send(s.pid, "topo", a ? { s: s.sid, t, m, a } : { s: s.sid, t, m });
      }
    } finally {
      s.flushing = false;
      if (s.outbox.length > 0 && this.sessions.get(s.peer) === s) this.scheduleFlush(s);
    }
  }

  private scheduleFlush(s: Session): void {
    if (s.flushing) return;
    s.flushing = true;
    queueMicrotask(() => void this.enqueue(s.peer, () => this.flush(s)));
  }

  private dial(peer: string): void {
    if (this.stopped) return;
    const cur = this.sessions.get(peer);
    if (cur !== undefined) {
      // The node thinks it is not connected but we are: tell it (asynchronously: never re-enter the node).
      if (cur.state === "open") queueMicrotask(() => this.sessions.get(peer) === cur && this.handle({ type: "connected", peer, outbound: true }));
      return;
    }
    let pid: PeerId;
    try {
      pid = peerIdFromString(peer);
    } catch {
      this.stats.dialFailures++;
      queueMicrotask(() => this.handle({ type: "dialFailed", peer }));
      return;
    }
    const s: Session = { peer, pid, state: "dialing", sid: newSid(), outbox: [], outboxSince: 0, flushing: false, abort: new AbortController() };
    this.sessions.set(peer, s);
    void this.hello(s);
  }

  private async hello(s: Session): Promise<void> {
    const pending = this.chains.get(s.peer);
    if (pending) await pending; // the previous session's bye goes first
    const t0 = performance.now();
    let reply: z.infer<typeof HelloReply> | undefined;
    let error: unknown;
    // The other side may have just dropped an idle connection we were reusing: a failure at
    // the connection level gets one more try, on a new connection.
    for (let attempt = 0; attempt < 2 && reply === undefined; attempt++) {
      if (this.sessions.get(s.peer) !== s || s.state !== "dialing") break;
      try {
        reply = await this.helloOnce(s);
      } catch (e) {
        error = e;
        if ((e as { code?: string }).code !== "connection") break;
      }
    }
    if (reply === undefined) {
      if (this.sessions.get(s.peer) === s && s.state === "dialing") {
        this.sessions.delete(s.peer);
        this.stats.dialFailures++;
        this.log.debug("topology dial failed", { peer: s.peer, error: (error as Error)?.message, ms: Math.round(performance.now() - t0) });
        this.handle({ type: "dialFailed", peer: s.peer });
      }
      return;
    }
    this.learn(s.peer, reply.addrs);
    if (this.sessions.get(s.peer) !== s) {
      // Hung up while the hello was in flight: the other side opened a session; close it.
      const sid = reply.s;
      void this.enqueue(s.peer, () => this.host.coordination.send(s.pid, "topo.bye", { s: sid }));
      this.letGo.set(s.peer, performance.now());
      return;
    }
    if (s.state === "dialing") {
      if (!this.connected(s.pid)) {
        // Answered, then lost the connection before we got here.
        this.sessions.delete(s.peer);
        this.stats.dialFailures++;
        this.handle({ type: "dialFailed", peer: s.peer });
        return;
      }
      s.state = "open";
      s.sid = reply.s;
      this.opened(s, true, "hello reply");
    } else s.sid = Math.max(s.sid, reply.s); // a crossed hello already opened it
  }

  private async helloOnce(s: Session): Promise<z.infer<typeof HelloReply>> {
    const addrs = this.book.get(s.peer);
    if (addrs?.length) await this.host.node.peerStore.merge(s.pid, { multiaddrs: addrs.map((a) => multiaddr(a)) }).catch(() => undefined);
    const signal = AbortSignal.any([s.abort!.signal, AbortSignal.timeout(this.helloTimeoutMs)]);
    const raw = await this.host.coordination.request(s.pid, "topo.hello", { s: s.sid, addrs: this.host.ownAddrs() }, { timeoutMs: this.helloTimeoutMs, signal });
    const parsed = HelloReply.safeParse(raw);
    if (!parsed.success) {
      this.stats.badFrames++;
      throw new Error("bad topo.hello reply");
    }
    return parsed.data;
  }

  private hangUp(peer: string): void {
    const s = this.sessions.get(peer);
    if (s === undefined) return;
    this.log.debug("topology session closed", { peer, sid: s.sid, why: "hang-up", state: s.state });
    this.sessions.delete(peer);
    s.abort?.abort();
    if (s.state === "open") {
      // Messages already handed to us still go out, then the bye.
      void this.enqueue(peer, async () => {
        while (s.outbox.length > 0) {
          const m = s.outbox.splice(0, MAX_BATCH);
          this.stats.framesOut++;
          await this.host.coordination.send(s.pid, "topo", { s: s.sid, t: s.outboxSince, m });
        }
        await this.host.coordination.send(s.pid, "topo.bye", { s: s.sid });
      });
    }
    this.letGo.set(peer, performance.now());
  }

  /** Close libp2p connections the overlay let go of, once nothing else uses them. */
  private closeIdle(): void {
    if (this.stopped) return;
    const now = performance.now();
    for (const [peer, since] of this.letGo) {
      if (this.sessions.has(peer)) {
        this.letGo.delete(peer);
        continue;
      }
      if (now - since < 1000 || this.chains.has(peer) || this.host.appBusy(peer, this.appIdleMs)) continue;
      this.letGo.delete(peer);
      let pid: PeerId;
      try {
        pid = peerIdFromString(peer);
      } catch {
        continue;
      }
      // Abort, not close: a graceful close can swallow the reply to a hello racing it, which
      // then waits out its timeout; nothing else uses the connection (appBusy said so).
      for (const c of this.host.node.getConnections(pid)) {
        this.stats.closedConnections++;
        c.abort(new Error("the overlay let this connection go"));
      }
    }
  }

  // ---- Inbound -------------------------------------------------------------------------

  private wire(): void {
    const ch = this.host.coordination;
    ch.handle("topo.hello", z.unknown(), (raw, rc) => {
      const b = Hello.safeParse(raw);
      if (!b.success) {
        this.stats.badFrames++;
        throw Object.assign(new Error("bad topo.hello"), { code: "bad_request" });
      }
      if (!this.started || this.stopped) throw Object.assign(new Error("topology not running"), { code: "unavailable" });
      return this.onHello(rc.peer, b.data);
    });
    ch.on("topo", z.unknown(), (raw, rc) => {
      const f = TopologyFrame.safeParse(raw);
      if (!f.success) {
        this.stats.badFrames++;
        this.log.debug("bad topology frame", { peer: rc.peer, error: f.error.issues[0]?.message });
        return;
      }
      this.onFrame(rc.peer, f.data);
    });
    ch.on("topo.bye", z.unknown(), (raw, rc) => {
      const b = Bye.safeParse(raw);
      if (!b.success) {
        this.stats.badFrames++;
        return;
      }
      const s = this.sessions.get(rc.peer);
      if (s !== undefined && s.state === "open" && s.sid === b.data.s) {
        this.log.debug("topology session closed", { peer: rc.peer, sid: s.sid, why: "bye" });
        this.sessions.delete(rc.peer);
        this.handle({ type: "disconnected", peer: rc.peer });
      }
    });
    const coord = CHANNELS.coordination.protocol;
    this.host.node.addEventListener("peer:identify", (evt) => {
      const peer = evt.detail.peerId.toString();
      this.learn(peer, evt.detail.listenAddrs.map(String));
      // Every DSPEx peer we meet is a candidate member.
      if (evt.detail.protocols.includes(coord) && !this.sessions.has(peer)) this.handle({ type: "discovered", peer });
    });
    this.host.node.addEventListener("peer:disconnect", (evt) => {
      const pid = evt.detail;
      if (this.host.node.getConnections(pid).some((c) => c.status === "open")) return;
      const peer = pid.toString();
      const s = this.sessions.get(peer);
      if (s !== undefined && s.state === "open") {
        this.log.debug("topology session closed", { peer, sid: s.sid, why: "connection lost" });
        this.sessions.delete(peer);
        this.handle({ type: "disconnected", peer });
      }
      this.letGo.delete(peer);
    });
  }

  private onHello(peer: string, b: z.infer<typeof Hello>): z.infer<typeof HelloReply> {
    const pid = peerIdFromString(peer);
    if (!this.connected(pid)) throw Object.assign(new Error("connection gone"), { code: "connection" });
    this.learn(peer, b.addrs);
    let s = this.sessions.get(peer);
    if (s === undefined) {
      s = { peer, pid, state: "open", sid: b.s, outbox: [], outboxSince: 0, flushing: false };
      this.sessions.set(peer, s);
      this.opened(s, false, "hello");
    } else if (s.state === "dialing") {
      // Crossed hellos: both sides keep the larger id.
      s.state = "open";
      s.sid = Math.max(s.sid, b.s);
      this.opened(s, true, "crossed hello");
    } else if (b.s > s.sid) {
      // The other side started over (it lost the old session): so do we.
      this.log.debug("topology session closed", { peer, sid: s.sid, why: "newer hello" });
      this.handle({ type: "disconnected", peer });
      s = { peer, pid: s.pid, state: "open", sid: b.s, outbox: [], outboxSince: 0, flushing: false };
      this.sessions.set(peer, s);
      this.opened(s, false, "newer hello");
    }
    return { s: s.sid, addrs: this.host.ownAddrs() };
  }

  private onFrame(peer: string, f: TopologyFrame): void {
    this.stats.framesIn++;
    if (f.a) for (const [id, addrs] of Object.entries(f.a)) this.learn(id, addrs);
    const s = this.sessions.get(peer);
    if (s !== undefined && s.state === "dialing" && s.sid === f.s && this.connected(s.pid)) {
      // The other side accepted our hello; its reply is still on the way.
      s.state = "open";
      this.opened(s, true, "first frame");
    }
    if (s === undefined || s.state !== "open" || s.sid !== f.s) {
      this.stats.staleFrames++;
      if (s === undefined) {
        const pid = peerIdFromString(peer);
        void this.enqueue(peer, () => this.host.coordination.send(pid, "topo.bye", { s: f.s }));
      }
      return;
    }
    // Time since the sender's node handed these over (same host: exact; across hosts: clock skew, capped).
    const delay = f.t === undefined ? 0 : Math.min(MAX_AGE_FIX_MS, Math.max(0, Date.now() - f.t));
    for (const msg of f.m) {
      if (this.sessions.get(peer) !== s) return; // the node hung up while handling an earlier message
      this.handle({ type: "message", from: peer, msg: delay > 0 ? withDelay(msg as TopologyMessage, delay) : (msg as TopologyMessage) });
    }
  }

  // ---- Addresses -----------------------------------------------------------------------

  /** Remember where `peer` listens (and tell libp2p), so we and others can dial it later. */
  private learn(peer: string, addrs: readonly string[]): void {
    if (peer === this.ctx.id || addrs.length === 0) return;
    const clean = dialableAddrs(addrs);
    if (clean.length === 0) return;
    const prev = this.book.get(peer);
    if (prev !== undefined && prev.join(" ") === clean.join(" ")) return;
    this.book.delete(peer);
    this.book.set(peer, clean);
    if (this.book.size > MAX_BOOK) this.book.delete(this.book.keys().next().value!);
    let pid: PeerId;
    try {
      pid = peerIdFromString(peer);
    } catch {
      this.book.delete(peer);
      return;
    }
    void this.host.node.peerStore.merge(pid, { multiaddrs: clean.map((a) => multiaddr(a)) }).catch(() => undefined);
  }

  /** Addresses of every other peer a batch names, for the receiver to dial. */
  private hintsFor(msgs: readonly TopologyMessage[], to: string): Record<string, string[]> | undefined {
    let out: Record<string, string[]> | undefined;
    const add = (id: NodeId) => {
      const k = String(id);
      if (k === to || out?.[k] !== undefined) return;
      const addrs = k === this.ctx.id ? this.host.ownAddrs() : this.book.get(k);
      if (addrs !== undefined && addrs.length > 0) (out ??= {})[k] = addrs.slice(0, MAX_ADDRS);
    };
    for (const m of msgs) {
      switch (m.type) {
        case "hv.forward_join":
          add(m.node);
          break;
        case "hv.shuffle":
          add(m.origin);
          for (const p of m.peers) add(p[0]);
          break;
        case "hv.shuffle_reply":
          for (const p of m.peers) add(p[0]);
          break;
        case "mb.sync":
          for (const e of m.members) add(e.id);
          break;
        case "fd.ping_req":
          add(m.target);
          break;
        default:
          break;
      }
    }
    return out;
  }
}
