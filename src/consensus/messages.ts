// zod schemas for Raft messages arriving from the wire (the coordination channel). The
// core trusts the shape of what it is given; a driver parses every received message with
// `parseRaftMessage` first and drops (and counts) what fails. Entry and snapshot `data`
// stay opaque here: the cluster state machine validates commands when it applies them.

import { z } from "zod";
import type { Message } from "./types.js";

const nodeId = z.string().min(1).max(256);
const idx = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const term = idx;

export const confStateSchema = z.strictObject({ voters: z.array(nodeId).max(1024), learners: z.array(nodeId).max(100_000) });

export const entrySchema = z.union([
  z.strictObject({ index: idx.min(1), term: term.min(1), type: z.literal("normal"), data: z.unknown() }),
  z.strictObject({ index: idx.min(1), term: term.min(1), type: z.literal("config"), data: confStateSchema }),
]);

export const snapshotSchema = z.strictObject({ index: idx, term, conf: confStateSchema, data: z.unknown() });

const base = { from: nodeId, to: nodeId, term };
const ctx = z.string().max(1024);

export const raftMessageSchema = z.discriminatedUnion("type", [
  z.strictObject({ ...base, type: z.literal("app"), index: idx, logTerm: term, entries: z.array(entrySchema).max(100_000), commit: idx }),
  z.strictObject({ ...base, type: z.literal("appResp"), index: idx, reject: z.boolean(), rejectHint: idx, logTerm: term }),
  z.strictObject({ ...base, type: z.enum(["vote", "preVote"]), index: idx, logTerm: term, transfer: z.boolean() }),
  z.strictObject({ ...base, type: z.enum(["voteResp", "preVoteResp"]), reject: z.boolean() }),
  z.strictObject({ ...base, type: z.literal("heartbeat"), commit: idx, context: ctx.nullable() }),
  z.strictObject({ ...base, type: z.literal("heartbeatResp"), context: ctx.nullable() }),
  z.strictObject({ ...base, type: z.literal("snap"), snapshot: snapshotSchema }),
  z.strictObject({ ...base, type: z.literal("timeoutNow") }),
  z.strictObject({ ...base, type: z.literal("prop"), data: z.unknown() }),
  z.strictObject({ ...base, type: z.literal("readIndex"), context: ctx }),
  z.strictObject({ ...base, type: z.literal("readIndexResp"), index: idx, context: ctx }),
  z.strictObject({ ...base, type: z.literal("transferLeader"), target: nodeId }),
]);

/**
 * Validate a message received from `sender` (the authenticated remote peer). Rejects
 * malformed messages and messages whose `from` is not the sender (no impersonation), and
 * checks that an append's entries are contiguous and follow its prev index.
 */
export function parseRaftMessage(raw: unknown, sender?: string): { ok: true; message: Message } | { ok: false; message: string } {
  const r = raftMessageSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, message: `invalid raft message${i && i.path.length ? ` at ${i.path.join(".")}` : ""}: ${i?.message ?? "bad input"}` };
  }
  const m = r.data as Message;
  if (sender !== undefined && m.from !== sender) return { ok: false, message: `raft message claims to be from ${m.from} but came from ${sender}` };
  if (m.type === "app") {
    let expect = m.index + 1;
    for (const e of m.entries) {
      if (e.index !== expect) return { ok: false, message: `append entries not contiguous after ${m.index}` };
      if (e.term > m.term) return { ok: false, message: `append entry term ${e.term} above message term ${m.term}` };
      expect++;
    }
  }
  return { ok: true, message: m };
}
