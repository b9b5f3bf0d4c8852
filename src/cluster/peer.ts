// Peer: a libp2p host (TCP, Noise, Yamux, identify, ping, gossipsub, private network)
// carrying the three DSPEx channels, running an overlay topology (full-mesh by default,
// switchable at run time; see topology_driver.ts) that decides which peers it connects to,
// probing each channel's health, and spreading telemetry by gossipsub.
import "../util/polyfill.js";
import { createLibp2p, type Libp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { gossipsub, type GossipSub } from "@libp2p/gossipsub";
import { clusterKeyProtector } from "./pnet.js";
import { multiaddr } from "@multiformats/multiaddr";
import type { Libp2p as AnyLibp2p, PeerId, PrivateKey } from "@libp2p/interface";
import { z, type ZodType } from "zod";
import { Channel } from "../../channels/channel.js";
import type { ChannelSpec } from "../../channels/specs.js";
import type { ManagerOptions, TopologyName } from "../../topology/types.js";
import { parseTopologyChoice, TopologySetRequest, type TopologyChoice } from "../../topology/wire.js";
import { TopologyDriver, type TopologyDriverTuning, type TopologyViews } from "./topology_driver.js";
import { decodeFrame, encodeFrame } from "../../channels/codec.js";
import { CHANNELS, type ChannelName } from "../../channels/specs.js";
import { DspexError } from "../engine/errors.js";
import { silentLogger, type Logger } from "./log.js";
import { tuneHeapForBulkTransfer } from "./gc_tuning.js";

export const TELEMETRY_TOPIC = "/dspex/telemetry/1";
const CHANNEL_NAMES = Object.keys(CHANNELS) as ChannelName[];

export interface PeerOptions {
  /** Listen multiaddrs; default /ip4/127.0.0.1/tcp/0. */
  listen?: string[];
  /** Multiaddrs (with /p2p/<id>) of peers to join through. */
  bootstrap?: string[];
  /** Pre-shared cluster key (dspex keygen); without it the peer runs an open network. */
  clusterKey?: Uint8Array;
  identity?: PrivateKey;
  /** Tasks this peer offers to run at once (advertised in telemetry). */
  capacity?: number;
  telemetryIntervalMs?: number;
  probeIntervalMs?: number;
  logger?: Logger;
  /** Overlay to run (default full-mesh: connect to every member). Switch later with setTopology. */
  topology?: { name: TopologyName; options?: ManagerOptions };
  /** Overlay timing knobs (tests). */
  topologyTuning?: TopologyDriverTuning;
  /**
   * Tune this process's V8 heap for bulk transfers (see gc_tuning.ts: without it, full-GC
   * pauses during large transfers set the coordination latency). Process-wide; default true.
   */
  heapTuning?: boolean;
}

export const Telemetry = z.object({
  peer: z.string().max(128),
  seq: z.number().int().nonnegative(),
  ts: z.number(),
  capacity: z.number().int().nonnegative(),
  inflight: z.number().int().nonnegative(),
  usage: z.object({ promptTokens: z.number().nonnegative(), completionTokens: z.number().nonnegative(), costUsd: z.number().nonnegative() }),
  progress: z.record(z.string().max(128), z.object({ done: z.number().int().nonnegative(), total: z.number().int().nonnegative().optional() })).optional(),
});
export type Telemetry = z.infer<typeof Telemetry>;

export interface ChannelHealth {
  ok: boolean;
  rttMs?: number;
  lastError?: string;
}

export interface MemberInfo {
  id: string;
  addrs: string[];
  connected: boolean;
  channels: Partial<Record<ChannelName, ChannelHealth>>;
  telemetry?: Telemetry & { ageMs: number };
}

export interface StatusReport {
  peer: string;
  addrs: string[];
  members: MemberInfo[];
  /** The overlay this peer runs right now. */
  topology: string;
  /** Its views (active / passive / neighbours / members / sessions) and counters. */
  views?: TopologyViews;
  leader: string | null;
  term?: number;
  role?: string;
  committedTopology?: string;
  /** Committed cluster-wide LM budgets per provider (dspex limits set). */
  lmLimits?: Record<string, { rpm?: number; tpm?: number }>;
  channels: Record<ChannelName, Channel["stats"]>;
  telemetry: Telemetry;
}

/** The "members" coordination reply: this peer and the members it is connected to, with addresses. */
export const MembersReply = z.object({ members: z.array(z.object({ id: z.string().max(128), addrs: z.array(z.string().max(512)).max(32) })).max(100_000) });
const Empty = z.unknown();

/** Channel methods that are not application traffic: topology sessions, probes, status. */
const INFRA_METHODS = new Set(["topo", "topo.hello", "topo.bye", "ping", "members", "status", "topology.set", "telemetry"]);

/**
 * Per peer: application requests in flight and when the last one moved. The overlay closes
 * a libp2p connection it let go of only once this says the connection is idle, so a switch
 * or an eviction never cuts a job's or Raft's traffic.
 */
class Activity {
  private readonly peers = new Map<string, { inflight: number; last: number }>();
  begin(peer: string): () => void {
    let a = this.peers.get(peer);
    if (!a) this.peers.set(peer, (a = { inflight: 0, last: 0 }));
    a.inflight++;
    a.last = performance.now();
    const entry = a;
    return () => {
      entry.inflight--;
      entry.last = performance.now();
    };
  }
  busy(peer: string, idleMs: number): boolean {
    const a = this.peers.get(peer);
    if (!a) return false;
    if (a.inflight > 0) return true;
    if (performance.now() - a.last < idleMs) return true;
    this.peers.delete(peer);
    return false;
  }
}

/** A Channel that records application traffic per peer in an Activity. */
class TrackedChannel extends Channel {
  constructor(
    node: AnyLibp2p,
    spec: ChannelSpec,
    private readonly activity: Activity,
  ) {
    super(node, spec);
  }
  /** Runs `fn` as application activity with `peer` (what keeps an overlay-unwanted connection open), unless `method` is infrastructure. */
  private async tracked<T>(peer: string, method: string, fn: () => Promise<T>): Promise<T> {
    if (INFRA_METHODS.has(method)) return fn();
    const done = this.activity.begin(peer);
    try {
      return await fn();
    } finally {
      done();
    }
  }
  override request<R = unknown>(peer: PeerId, method: string, body: unknown, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<R> {
    return this.tracked(peer.toString(), method, () => super.request<R>(peer, method, body, options));
  }
  override send(peer: PeerId, method: string, body: unknown, signal?: AbortSignal): Promise<void> {
    return this.tracked(peer.toString(), method, () => super.send(peer, method, body, signal));
  }
  override handle<B>(method: string, schema: ZodType<B>, fn: (body: B, ctx: { peer: string }) => unknown | Promise<unknown>): void {
    if (INFRA_METHODS.has(method)) return super.handle(method, schema, fn);
    super.handle(method, schema, (body, ctx) => this.tracked(ctx.peer, method, async () => fn(body, ctx)));
  }
  override on<B>(method: string, schema: ZodType<B>, fn: (body: B, ctx: { peer: string }) => void | Promise<void>): void {
    if (INFRA_METHODS.has(method)) return super.on(method, schema, fn);
    super.on(method, schema, (body, ctx) => this.tracked(ctx.peer, method, async () => fn(body, ctx)));
  }
}

export class Peer {
  readonly channels: Record<ChannelName, Channel>;
  private readonly health = new Map<string, Partial<Record<ChannelName, ChannelHealth>>>();
  private readonly telemetry = new Map<string, { t: Telemetry; at: number }>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Peers known to run DSPEx (identify lists the coordination channel, or a topology session opened): not one-off clients. */
  private readonly confirmed = new Set<string>();
  private readonly activity = new Activity();
  /** The overlay: which peers this one keeps connections to. */
  readonly topology: TopologyDriver;
  private seq = 0;
  private stopped = false;
  /** Local load, updated by whoever runs tasks on this peer. */
  load = { inflight: 0, usage: { promptTokens: 0, completionTokens: 0, costUsd: 0 }, progress: {} as NonNullable<Telemetry["progress"]> };
  rejectedTelemetry = 0;
  /** Consensus state shown by status (set when the peer runs Raft). */
  consensus: { status(): { lead: string | null; term: number; role: string }; topology(): string | undefined; lmLimits?(): Record<string, { rpm?: number; tpm?: number }> } | undefined;

  private constructor(
    readonly node: Libp2p<{ pubsub: GossipSub }>,
    private readonly options: PeerOptions,
    private readonly log: Logger,
  ) {
    this.channels = Object.fromEntries(CHANNEL_NAMES.map((n): [ChannelName, Channel] => [n, new TrackedChannel(node, CHANNELS[n], this.activity)])) as Record<ChannelName, Channel>;
    const boot = (options.bootstrap ?? []).map((b) => {
      const i = b.lastIndexOf("/p2p/");
      return { id: b.slice(i + 5), addrs: [b.slice(0, i)] };
    });
    const choice = options.topology ? Peer.checkTopology(options.topology.name, options.topology.options) : { name: "full-mesh" as const };
    this.topology = new TopologyDriver(
      {
        node: node as unknown as AnyLibp2p,
        coordination: this.channels.coordination,
        ownAddrs: () => this.node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/.*$/, "")),
        appBusy: (peer, idleMs) => this.activity.busy(peer, idleMs),
        sessionOpened: (peer) => this.confirmed.add(peer),
      },
      choice,
      boot,
      options.topologyTuning,
      log,
    );
  }

  /** Validate a topology choice; the error names the valid topologies / the bad option. */
  static checkTopology(name: unknown, options: unknown): TopologyChoice {
    const r = parseTopologyChoice(name, options);
    if (!r.ok) throw new DspexError("config", r.message);
    return r.value;
  }

  /**
   * Switch this peer's overlay at run time. Known members and open connections carry over;
   * connections the new overlay does not want close after a grace, and never while
   * application traffic uses them.
   */
  setTopology(name: string, options?: ManagerOptions | Record<string, unknown>): void {
    const choice = Peer.checkTopology(name, options);
    try {
      this.topology.setTopology(choice);
    } catch (e) {
      throw new DspexError("config", `cannot switch to ${choice.name}: ${(e as Error).message}`);
    }
  }

  static async start(options: PeerOptions = {}): Promise<Peer> {
    const log = options.logger ?? silentLogger;
    if (options.heapTuning !== false) tuneHeapForBulkTransfer();
    for (const a of [...(options.listen ?? []), ...(options.bootstrap ?? [])]) {
      try {
        multiaddr(a);
      } catch (e) {
        throw new DspexError("config", `'${a}' is not a valid multiaddr (${(e as Error).message}); example: /ip4/127.0.0.1/tcp/4001`);
      }
    }
    for (const b of options.bootstrap ?? []) {
      if (!b.includes("/p2p/")) throw new DspexError("config", `bootstrap address '${b}' lacks the peer id: copy the full address a peer prints (ending in /p2p/<id>)`);
    }
    if (options.topology) Peer.checkTopology(options.topology.name, options.topology.options);
    const node = await createLibp2p({
      ...(options.identity ? { privateKey: options.identity } : {}),
      addresses: { listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // Small per-stream windows keep bulk transfers from holding the connection (STACK.md).
      streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 256 * 1024 } })],
      ...(options.clusterKey ? { connectionProtector: clusterKeyProtector(options.clusterKey) } : {}),
      connectionManager: { inboundConnectionThreshold: 1000, maxConnections: 1000 },
      // libp2p pings every connection and aborts it after a 5 s (minimum) miss: any event-loop
      // stall that long (seen at load average 20 on 2 cores) killed healthy connections. The
      // overlay's own detector watches its neighbours; dead connections still go within ~25 s.
      connectionMonitor: { pingTimeout: { minTimeout: 15_000 } },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          // Local clusters share one IP; do not penalise colocation.
          scoreParams: { IPColocationFactorWeight: 0 },
        }),
      },
    });
    const peer = new Peer(node as Libp2p<{ pubsub: GossipSub }>, options, log);
    await peer.wire();
    // The overlay starts on the next turn, so a caller may still pick it with setTopology
    // (the CLI does) and join directly with it instead of switching from full-mesh.
    setImmediate(() => {
      if (!peer.stopped) peer.topology.start();
    });
    return peer;
  }

  get id(): string {
    return this.node.peerId.toString();
  }

  multiaddrs(): string[] {
    return this.node.getMultiaddrs().map(String);
  }

  private async wire(): Promise<void> {
    for (const c of Object.values(this.channels)) await c.start();
    for (const name of CHANNEL_NAMES) this.channels[name].handle("ping", Empty, () => ({ t: Date.now() }));
    // A byte sink for throughput probes and benchmarks of the inference channel.
    this.channels.inference.handle("sink", z.object({ data: z.instanceof(Uint8Array) }), (b) => ({ n: b.data.length }));
    this.channels.coordination.handle("members", Empty, () => this.memberList());
    this.channels.coordination.handle("status", Empty, () => this.status());
    // Peer-level switch (tests, operators); a cluster-wide one is committed through Raft.
    this.channels.coordination.handle("topology.set", TopologySetRequest, (b) => {
      this.setTopology(b.name, b.options);
      return { topology: this.topology.name };
    });
    this.channels.telemetry.handle("telemetry", Empty, () => ({ peers: [...this.telemetry.values()].map((x) => x.t) }));

    const pubsub = this.node.services.pubsub;
    pubsub.subscribe(TELEMETRY_TOPIC);
    pubsub.addEventListener("message", (evt) => {
      const msg = evt.detail;
      if (msg.topic !== TELEMETRY_TOPIC) return;
      try {
        const t = Telemetry.parse(decodeFrame(msg.data));
        const prev = this.telemetry.get(t.peer);
        if (!prev || prev.t.seq < t.seq) this.telemetry.set(t.peer, { t, at: performance.now() });
      } catch {
        this.rejectedTelemetry++;
      }
    });
    this.node.addEventListener("peer:identify", (evt) => {
      if (evt.detail.protocols.includes(CHANNELS.coordination.protocol)) this.confirmed.add(evt.detail.peerId.toString());
    });
    this.node.addEventListener("peer:disconnect", (evt) => {
      this.health.delete(evt.detail.toString());
      this.confirmed.delete(evt.detail.toString());
    });

    const tick = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => {
        if (!this.stopped) void Promise.resolve(fn()).catch((e) => this.log.warn("periodic task failed", { error: String(e) }));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    tick(this.options.telemetryIntervalMs ?? 1000, () => this.publishTelemetry());
    tick(this.options.probeIntervalMs ?? 2000, () => this.probe());
    this.log.info("peer started", { peer: this.id, addrs: this.multiaddrs() });
  }

  /** Connected cluster members (DSPEx peers: identify lists the coordination channel, or a topology session opened). */
  async dspexPeers(): Promise<PeerId[]> {
    const out: PeerId[] = [];
    for (const c of this.node.getConnections()) {
      if (out.some((p) => p.equals(c.remotePeer))) continue;
      if (this.confirmed.has(c.remotePeer.toString())) out.push(c.remotePeer);
    }
    return out;
  }

  private async memberList(): Promise<z.infer<typeof MembersReply>> {
    const members = [{ id: this.id, addrs: this.multiaddrs() }];
    for (const p of await this.dspexPeers()) {
      const info = await this.node.peerStore.get(p).catch(() => undefined);
      const addrs = (info?.addresses ?? []).map((a) => a.multiaddr.toString()).slice(0, 32);
      members.push({ id: p.toString(), addrs });
    }
    return { members };
  }

  private async probe(): Promise<void> {
    await Promise.all(
      (await this.dspexPeers()).map(async (p) => {
        const h: Partial<Record<ChannelName, ChannelHealth>> = {};
        await Promise.all(
          CHANNEL_NAMES.map(async (n) => {
            const t = performance.now();
            try {
              await this.channels[n].request(p, "ping", null, { timeoutMs: 3000 });
              h[n] = { ok: true, rttMs: Math.round((performance.now() - t) * 100) / 100 };
            } catch (e) {
              h[n] = { ok: false, lastError: (e as Error).message };
            }
          }),
        );
        this.health.set(p.toString(), h);
      }),
    );
  }

  ownTelemetry(): Telemetry {
    return {
      peer: this.id,
      seq: this.seq,
      ts: Date.now(),
      capacity: this.options.capacity ?? 8,
      inflight: this.load.inflight,
      usage: this.load.usage,
      ...(Object.keys(this.load.progress).length ? { progress: this.load.progress } : {}),
    };
  }

  async publishTelemetry(): Promise<void> {
    this.seq++;
    await this.node.services.pubsub.publish(TELEMETRY_TOPIC, encodeFrame(this.ownTelemetry()));
  }

  async members(): Promise<MemberInfo[]> {
    const now = performance.now();
    const list = await this.memberList();
    return list.members
      .filter((m) => m.id !== this.id)
      .map((m) => {
        const tel = this.telemetry.get(m.id);
        return {
          id: m.id,
          addrs: m.addrs,
          connected: true,
          channels: this.health.get(m.id) ?? {},
          ...(tel ? { telemetry: { ...tel.t, ageMs: Math.round(now - tel.at) } } : {}),
        };
      });
  }

  async status(): Promise<StatusReport> {
    return {
      peer: this.id,
      addrs: this.multiaddrs(),
      members: await this.members(),
      topology: this.topology.name,
      views: this.topology.views(),
      ...(this.consensus?.topology() ? { committedTopology: this.consensus.topology() } : {}),
      ...(this.consensus?.lmLimits && Object.keys(this.consensus.lmLimits()).length > 0 ? { lmLimits: this.consensus.lmLimits() } : {}),
      leader: this.consensus?.status().lead ?? null,
      ...(this.consensus ? { term: this.consensus.status().term, role: this.consensus.status().role } : {}),
      channels: Object.fromEntries(CHANNEL_NAMES.map((n) => [n, this.channels[n].stats])) as StatusReport["channels"],
      telemetry: this.ownTelemetry(),
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.topology.stop();
    for (const t of this.timers) clearInterval(t);
    for (const c of Object.values(this.channels)) await c.stop();
    await this.node.stop();
    this.log.info("peer stopped", { peer: this.id });
  }
}
