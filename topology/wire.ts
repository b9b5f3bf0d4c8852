// zod schemas for everything topology-related that crosses a boundary: the overlay
// messages and the adapter's session frames on the coordination channel (checked on every
// receipt; a frame that fails is counted and dropped), and topology names/options as they
// come from the CLI, a coordination request or a committed Raft command.
//
// Node ids on the wire are libp2p peer ids (strings); the simulator's numeric ids never
// travel.

import { z } from "zod";
import { TOPOLOGY_NAMES } from "./managers.js";
import type { ManagerOptions, TopologyMessage, TopologyName } from "./types.js";

const id = z.string().min(1).max(128);
const count = z.number().int().nonnegative();
/** Bounds keep one frame's work small; managers never send lists near these. */
const MAX_PEERS = 1024;
const MAX_MEMBERS = 20_000;
const MAX_IDS = 4096;

const agedPeer = z.tuple([id, z.number().nonnegative()]);

export const TopologyMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hv.join") }),
  z.object({ type: z.literal("hv.forward_join"), node: id, ttl: z.number().int().min(0).max(64) }),
  z.object({ type: z.literal("hv.neighbor"), high: z.boolean() }),
  z.object({ type: z.literal("hv.neighbor_reply"), accepted: z.boolean() }),
  z.object({ type: z.literal("hv.disconnect") }),
  z.object({ type: z.literal("hv.shuffle"), origin: id, ttl: z.number().int().min(0).max(64), peers: z.array(agedPeer).max(MAX_PEERS) }),
  z.object({ type: z.literal("hv.shuffle_reply"), peers: z.array(agedPeer).max(MAX_PEERS) }),
  z.object({
    type: z.literal("mb.sync"),
    members: z.array(z.object({ id, inc: count, alive: z.boolean(), role: z.enum(["server", "client"]).optional() })).max(MAX_MEMBERS),
    full: z.boolean(),
    reply: z.boolean(),
  }),
  z.object({ type: z.literal("fd.ping"), seq: count }),
  z.object({ type: z.literal("fd.ack"), seq: count }),
  z.object({ type: z.literal("fd.ping_req"), target: id, seq: count }),
  z.object({
    type: z.literal("pt.gossip"),
    id: z.string().min(1).max(256),
    origin: id,
    round: count,
    payload: z.unknown(),
    direct: z.boolean(),
    rel: z.boolean(),
  }),
  z.object({ type: z.literal("pt.ihave"), items: z.array(z.object({ id: z.string().min(1).max(256), round: count, rel: z.boolean() })).max(MAX_IDS) }),
  z.object({ type: z.literal("pt.graft"), ids: z.array(z.string().min(1).max(256)).max(MAX_IDS) }),
  z.object({ type: z.literal("pt.prune") }),
  z.object({ type: z.literal("pt.ack"), gossip: z.array(z.string().min(1).max(256)).max(MAX_IDS), ihave: z.array(z.string().min(1).max(256)).max(MAX_IDS) }),
]);

// Compile-time check that the schema and the TypeScript union agree.
type _Check = z.infer<typeof TopologyMessageSchema> extends TopologyMessage ? true : never;
const _check: _Check = true;
void _check;

const sid = z.number().int().nonnegative();
const addrs = z.array(z.string().min(1).max(256)).max(8);

/** Address hints: multiaddrs (without /p2p) of peers a frame mentions, so the receiver can dial them. */
export const AddrHints = z.record(id, addrs).refine((r) => Object.keys(r).length <= 4096, "too many address hints");

/**
 * One-way `topo` frame: overlay messages of session `s`, in order. `t`: the sender's wall
 * clock (ms) when the oldest of them was handed over; the receiver adds the delay to the
 * ages in shuffles, which would otherwise count time in transit as freshness.
 */
export const TopologyFrame = z.object({ s: sid, t: z.number().nonnegative().optional(), m: z.array(TopologyMessageSchema).min(1).max(256), a: AddrHints.optional() });
export type TopologyFrame = z.infer<typeof TopologyFrame>;

/** `topo.hello` request (opens a session) and its reply; both carry the sender's own addresses. */
export const Hello = z.object({ s: sid, addrs });
export const HelloReply = z.object({ s: sid, addrs });
/** One-way `topo.bye`: the sender closed session `s`. */
export const Bye = z.object({ s: sid });

// ---- Topology choice (CLI, coordination request, committed command) -----------------

const posInt = z.number().int().positive();
const ms = z.number().int().nonnegative().max(24 * 3600 * 1000);

export const HyParViewOptionsSchema = z.strictObject({
  expectedSize: posInt.optional(),
  activeSize: posInt.max(64).optional(),
  passiveSize: posInt.max(1024).optional(),
  arwl: z.number().int().min(1).max(32).optional(),
  prwl: z.number().int().min(0).max(32).optional(),
  ka: z.number().int().min(0).max(64).optional(),
  kp: z.number().int().min(0).max(256).optional(),
  shuffleMs: posInt.max(3_600_000).optional(),
  passiveMaxAgeMs: posInt.max(24 * 3600 * 1000).optional(),
  neighborTimeoutMs: posInt.max(600_000).optional(),
  repairMs: posInt.max(3_600_000).optional(),
  graveyardTtlMs: ms.optional(),
  idleRefillMs: posInt.max(3_600_000).optional(),
});

const fullMeshShape = {
  gossipMs: posInt.max(600_000).optional(),
  gossipFanout: posInt.max(64).optional(),
  fullSyncEvery: posInt.max(10_000).optional(),
  maxDialFailures: posInt.max(100).optional(),
  redialMs: posInt.max(600_000).optional(),
  repairMs: posInt.max(3_600_000).optional(),
  graveyardTtlMs: ms.optional(),
};
export const FullMeshOptionsSchema = z.strictObject(fullMeshShape);
export const ClientServerOptionsSchema = z.strictObject({
  ...fullMeshShape,
  role: z.enum(["server", "client"]),
  servers: z.array(id).max(1024).optional(),
  serversPerClient: posInt.max(64).optional(),
});
export const StaticOptionsSchema = z.strictObject({ peers: z.array(id).max(1024), redialMs: posInt.max(600_000).optional() });

const OPTION_SCHEMAS = {
  "full-mesh": FullMeshOptionsSchema,
  hyparview: HyParViewOptionsSchema,
  "client-server": ClientServerOptionsSchema,
  static: StaticOptionsSchema,
} as const satisfies Record<TopologyName, z.ZodType>;

export type TopologyChoice = { name: TopologyName; options?: ManagerOptions };

/** Validate a topology name and its options; errors name the valid choices / the bad field. */
export function parseTopologyChoice(name: unknown, options: unknown): { ok: true; value: TopologyChoice } | { ok: false; message: string } {
  if (typeof name !== "string" || !(TOPOLOGY_NAMES as readonly string[]).includes(name)) {
    return { ok: false, message: `unknown topology ${JSON.stringify(name)}; valid: ${TOPOLOGY_NAMES.join(", ")}` };
  }
  const n = name as TopologyName;
  const schema = OPTION_SCHEMAS[n];
  const raw = options === undefined || options === null ? (n === "static" ? { peers: [] } : {}) : options;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keys = Object.keys(schema.shape).join(", ");
    return { ok: false, message: `bad ${n} options at ${issue.path.join(".") || "options"}: ${issue.message} (${n} takes: ${keys})` };
  }
  return { ok: true, value: { name: n, options: parsed.data as ManagerOptions } };
}

/** Body of the peer-level `topology.set` coordination request. */
export const TopologySetRequest = z.object({ name: z.string().max(64), options: z.record(z.string(), z.unknown()).optional() });
