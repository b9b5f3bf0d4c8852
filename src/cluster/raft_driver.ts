// Drives the sans-IO Raft node on a real peer: ticks from a timer, messages over the
// coordination channel (one-way "raft" frames, validated and checked against the sender),
// durable state in a FileRaftStorage, committed commands applied to the ClusterState.
// Readys are handled one at a time: persist (fsync) → send → apply → advance.
import { peerIdFromString } from "@libp2p/peer-id";
import { z } from "zod";
import { ClusterState, type ApplyResult } from "../consensus/cluster_state.js";
import { FileRaftStorage } from "../consensus/file_storage.js";
import { parseRaftMessage } from "../consensus/messages.js";
import { RaftNode, bootstrapState, type RaftStatus } from "../consensus/raft.js";
import { isEmptyState, persistUpdateOf } from "../consensus/storage.js";
import type { Entry, Message } from "../consensus/types.js";
import type { Peer } from "./peer.js";
import type { Logger } from "./log.js";
import { silentLogger } from "./log.js";

export interface RaftDriverOptions {
  /** Directory for the WAL and snapshots (one per peer). */
  dir: string;
  /** Peer ids of the founding voters (every founder passes the same list). */
  voters: string[];
  tickMs?: number;
  electionTick?: number;
  logger?: Logger;
}

export class RaftDriver {
  readonly state = new ClusterState();
  readonly raft: RaftNode;
  private readonly storage: FileRaftStorage;
  private readonly timer: NodeJS.Timeout;
  private draining = false;
  private again = false;
  private stopped = false;
  /** Messages from peers that failed validation (counted, never applied). */
  rejected = 0;
  private readonly log: Logger;
  /** Callers waiting for their command (by requestId) to be applied. */
  private readonly waiters = new Map<string, (r: ApplyResult) => void>();
  private readonly applyListeners = new Set<(r: ApplyResult, data: unknown) => void>();

  constructor(
    private readonly peer: Peer,
    options: RaftDriverOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.storage = new FileRaftStorage(options.dir);
    let persisted = this.storage.load();
    if (isEmptyState(persisted) && options.voters.includes(peer.id)) {
      this.storage.persist({ ...bootstrapState({ voters: [...options.voters].sort(), learners: [] }), snapshot: null, resetLog: false });
      persisted = this.storage.load();
    }
    if (persisted.snapshot) this.state.restore(persisted.snapshot.data);
    // Few entries per append: job checkpoints carry results, and one coordination frame is 1 MiB.
    this.raft = new RaftNode({ id: peer.id, random: Math.random, electionTick: options.electionTick ?? 10, heartbeatTick: 1, maxEntriesPerMsg: 8 }, persisted);
    peer.channels.coordination.on("raft", z.unknown(), (raw, ctx) => {
      const parsed = parseRaftMessage(raw, ctx.peer);
      if (!parsed.ok) {
        this.rejected++;
        this.log.warn("rejected raft message", { from: ctx.peer, error: parsed.message });
        return;
      }
      this.raft.step(parsed.message);
      this.drain();
    });
    this.timer = setInterval(() => {
      this.raft.tick();
      this.drain();
    }, options.tickMs ?? 50);
    this.timer.unref();
    peer.consensus = { status: () => this.raft.status(), topology: () => this.state.topology?.name };
  }

  status(): RaftStatus {
    return this.raft.status();
  }

  /** Propose a cluster-state command (followers forward it to the leader). */
  propose(command: unknown): { ok: true } | { ok: false; message: string } {
    const r = this.raft.propose(command);
    this.drain();
    return r.ok ? { ok: true } : { ok: false, message: r.error.message };
  }

  /** True when this peer is the Raft leader (the cluster coordinator). */
  isLeader(): boolean {
    return this.raft.status().role === "leader";
  }

  /** Called for every applied entry (on every peer), with the command's data. */
  onApply(fn: (r: ApplyResult, data: unknown) => void): () => void {
    this.applyListeners.add(fn);
    return () => this.applyListeners.delete(fn);
  }

  /**
   * Propose a command carrying a requestId and wait until it is applied here. Safe to
   * retry with the same requestId: the state machine applies a key once.
   */
  async proposeAndWait(command: { requestId: string } & Record<string, unknown>, timeoutMs = 10_000): Promise<ApplyResult> {
    const key = command.requestId;
    return await new Promise<ApplyResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(Object.assign(new Error(`command ${command.type as string} (${key}) not committed within ${timeoutMs} ms (no quorum or leader change); retry`), { code: "not_committed" }));
      }, timeoutMs);
      timer.unref();
      this.waiters.set(key, (r) => {
        clearTimeout(timer);
        this.waiters.delete(key);
        resolve(r);
      });
      const r = this.propose(command);
      if (!r.ok) {
        clearTimeout(timer);
        this.waiters.delete(key);
        reject(Object.assign(new Error(r.message), { code: "not_accepted" }));
      }
    });
  }

  private applied(e: Entry): void {
    const r = this.state.apply(e);
    const data = e.data as { requestId?: unknown } | null;
    if (data && typeof data === "object" && typeof data.requestId === "string") this.waiters.get(data.requestId)?.(r);
    for (const fn of this.applyListeners) {
      try {
        fn(r, e.data);
      } catch (err) {
        this.log.warn("apply listener failed", { error: String(err) });
      }
    }
  }

  private drain(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.again = false;
        while (this.raft.hasReady()) {
          const rd = this.raft.ready();
          if (rd.softState) this.log.info("raft role", { role: rd.softState.role, lead: rd.softState.lead, term: this.raft.status().term });
          this.storage.persist(persistUpdateOf(rd)); // durable before anything leaves
          for (const m of rd.messages) this.send(m);
          if (rd.installSnapshot && rd.snapshot) this.state.restore(rd.snapshot.data);
          for (const e of rd.committedEntries) this.applied(e);
          this.raft.advance(rd);
        }
      } while (this.again);
    } finally {
      this.draining = false;
    }
  }

  private send(m: Message): void {
    let to;
    try {
      to = peerIdFromString(String(m.to));
    } catch {
      return;
    }
    // Raft tolerates loss: a failed send is retried by the protocol itself.
    this.peer.channels.coordination.send(to, "raft", m).catch(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.storage.close();
  }
}
