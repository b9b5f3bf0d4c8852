// Peer: a libp2p host (TCP, Noise, Yamux, identify, ping, bootstrap, gossipsub, private
// network) carrying the three DSPEx channels, exchanging member lists so everyone who
// joins through one bootstrap address finds everyone else, probing each channel's health,
// and spreading telemetry by gossipsub.
import "../util/polyfill.js";
import { createLibp2p, type Libp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { bootstrap } from "@libp2p/bootstrap";
import { gossipsub, type GossipSub } from "@libp2p/gossipsub";
import { preSharedKey } from "@libp2p/pnet";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import type { PeerId, PrivateKey } from "@libp2p/interface";
import { z } from "zod";
import { Channel } from "../../channels/channel.js";
import { decodeFrame, encodeFrame } from "../../channels/codec.js";
import { CHANNELS, type ChannelName } from "../../channels/specs.js";
import { DspexError } from "../engine/errors.js";
import { silentLogger, type Logger } from "./log.js";

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
  topology: string;
  leader: string | null;
  term?: number;
  role?: string;
  committedTopology?: string;
  channels: Record<ChannelName, Channel["stats"]>;
  telemetry: Telemetry;
}

const MembersReply = z.object({ members: z.array(z.object({ id: z.string().max(128), addrs: z.array(z.string().max(512)).max(32) })).max(100_000) });
const Empty = z.unknown();

export class Peer {
  readonly channels: Record<ChannelName, Channel>;
  private readonly health = new Map<string, Partial<Record<ChannelName, ChannelHealth>>>();
  private readonly telemetry = new Map<string, { t: Telemetry; at: number }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly dialing = new Set<string>();
  /** Peers that answered a member exchange: real DSPEx peers, not one-off clients. */
  private readonly confirmed = new Set<string>();
  private seq = 0;
  private stopped = false;
  /** Local load, updated by whoever runs tasks on this peer. */
  load = { inflight: 0, usage: { promptTokens: 0, completionTokens: 0, costUsd: 0 }, progress: {} as NonNullable<Telemetry["progress"]> };
  rejectedTelemetry = 0;
  /** Consensus state shown by status (set when the peer runs Raft). */
  consensus: { status(): { lead: string | null; term: number; role: string }; topology(): string | undefined } | undefined;

  private constructor(
    readonly node: Libp2p<{ pubsub: GossipSub }>,
    private readonly options: PeerOptions,
    private readonly log: Logger,
  ) {
    this.channels = Object.fromEntries(CHANNEL_NAMES.map((n) => [n, new Channel(node, CHANNELS[n])])) as Record<ChannelName, Channel>;
  }

  static async start(options: PeerOptions = {}): Promise<Peer> {
    const log = options.logger ?? silentLogger;
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
    const node = await createLibp2p({
      ...(options.identity ? { privateKey: options.identity } : {}),
      addresses: { listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // Small per-stream windows keep bulk transfers from holding the connection (STACK.md).
      streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 256 * 1024 } })],
      ...(options.clusterKey ? { connectionProtector: preSharedKey({ psk: options.clusterKey }) } : {}),
      connectionManager: { inboundConnectionThreshold: 1000, maxConnections: 1000 },
      peerDiscovery: options.bootstrap?.length ? [bootstrap({ list: options.bootstrap, timeout: 0 })] : [],
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
      if (evt.detail.protocols.includes(CHANNELS.coordination.protocol)) void this.exchangeMembers(evt.detail.peerId);
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
    tick(5000, () => this.refreshMembers());
    this.log.info("peer started", { peer: this.id, addrs: this.multiaddrs() });
  }

  /** Connected cluster members (peers that answered a member exchange). */
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

  /** Ask a peer for its members and dial the ones we do not know (full mesh until topologies land). */
  private async exchangeMembers(peer: PeerId): Promise<void> {
    let reply: unknown;
    try {
      reply = await this.channels.coordination.request(peer, "members", null, { timeoutMs: 5000 });
    } catch (e) {
      this.log.debug("member exchange failed", { peer: peer.toString(), error: (e as Error).message });
      return;
    }
    const parsed = MembersReply.safeParse(reply);
    if (!parsed.success) return;
    this.confirmed.add(peer.toString());
    const connected = new Set(this.node.getConnections().map((c) => c.remotePeer.toString()));
    for (const m of parsed.data.members) {
      if (m.id === this.id || connected.has(m.id) || this.dialing.has(m.id) || m.addrs.length === 0) continue;
      this.dialing.add(m.id);
      void (async () => {
        try {
          const id = peerIdFromString(m.id);
          await this.node.peerStore.merge(id, { multiaddrs: m.addrs.map((a) => multiaddr(a)) });
          await this.node.dial(id, { signal: AbortSignal.timeout(5000) });
        } catch (e) {
          this.log.debug("dial failed", { peer: m.id, error: (e as Error).message });
        } finally {
          this.dialing.delete(m.id);
        }
      })();
    }
  }

  private async refreshMembers(): Promise<void> {
    // Also retry connections whose first exchange failed (e.g. identify raced the handlers).
    const seen = new Set<string>();
    for (const c of this.node.getConnections()) {
      const id = c.remotePeer.toString();
      if (seen.has(id)) continue;
      seen.add(id);
      const info = await this.node.peerStore.get(c.remotePeer).catch(() => undefined);
      if (info?.protocols.includes(CHANNELS.coordination.protocol)) await this.exchangeMembers(c.remotePeer);
    }
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
      // The overlay this peer runs; the libp2p adapter for the topology managers is not
      // wired yet, so a committed switch is reported separately until it is applied.
      topology: "full-mesh",
      ...(this.consensus?.topology() ? { committedTopology: this.consensus.topology() } : {}),
      leader: this.consensus?.status().lead ?? null,
      ...(this.consensus ? { term: this.consensus.status().term, role: this.consensus.status().role } : {}),
      channels: Object.fromEntries(CHANNEL_NAMES.map((n) => [n, this.channels[n].stats])) as StatusReport["channels"],
      telemetry: this.ownTelemetry(),
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const c of Object.values(this.channels)) await c.stop();
    await this.node.stop();
    this.log.info("peer stopped", { peer: this.id });
  }
}
