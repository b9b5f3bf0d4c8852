// Drives the sans-IO Raft node on a real peer: ticks from a timer, messages over the
// coordination channel (one-way "raft" frames, validated and checked against the sender),
// durable state in a FileRaftStorage (or in memory for a learner without a data
// directory), committed commands applied to the ClusterState.
// Readys are handled one at a time: persist (fsync) → send → apply → advance.
//
// Every peer running consensus is a member: the founding voters bootstrap the first
// configuration; any other peer asks the cluster to add it as a learner ("raftJoin",
// answered by the leader, forwarded by others) and then receives the log and knows the
// leader. The leader runs automatic voter selection (src/consensus/voter_policy.ts): a
// voter silent for `deadVoterMs` is replaced by the lowest-id live learner with durable
// storage, one membership change at a time. Proposals from any member reach the leader
// ("propose" for clients, "raftPropose" between members) and are answered after commit.
import { randomUUID } from "node:crypto";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { ClusterState, type ApplyResult } from "../consensus/cluster_state.js";
import { FileRaftStorage } from "../consensus/file_storage.js";
import { parseRaftMessage } from "../consensus/messages.js";
import { RaftNode, bootstrapState, type RaftStatus } from "../consensus/raft.js";
import { isEmptyState, MemoryRaftStorage, persistUpdateOf, type PersistUpdate } from "../consensus/storage.js";
import type { Entry, Message, PersistedState } from "../consensus/types.js";
import { decideVoterChange, policyViewOf, type VoterDecision } from "../consensus/voter_policy.js";
import type { Peer } from "./peer.js";
import { dialableAddrs } from "./topology_driver.js";
import type { Logger } from "./log.js";
import { silentLogger } from "./log.js";

export interface RaftDriverOptions {
  /**
   * Directory for the WAL and snapshots (one per peer). Without it the Raft state lives in
   * memory: fine for a learner (it catches up from the leader after a restart), and such
   * a peer is never promoted to voter (a voter must not forget its vote or its log).
   */
  dir?: string;
  /**
   * Peer ids of the founding voters (every founder passes the same list; `[own id]` founds a
   * one-voter cluster that grows to `targetVoters`). A peer not in the list joins as a learner.
   */
  voters: string[];
  tickMs?: number;
  electionTick?: number;
  /** Snapshot the state and compact the log once this many entries are applied above the last snapshot. Default 1000. */
  compactEvery?: number;
  logger?: Logger;
  /** Voters the leader keeps (automatic voter selection). Default: voters.length, or 3 if empty. */
  targetVoters?: number;
  /** A voter silent this long is replaced by a live learner (on the leader). Default 10,000 ms. */
  deadVoterMs?: number;
  /** The leader removes learners silent this long (0: never). Default 60,000 ms. */
  deadLearnerMs?: number;
  /** Run automatic voter selection when leader. Default true. */
  autoVoters?: boolean;
  /** Ask to be added as a learner when not a member (or cut off from the leader). Default true. */
  join?: boolean;
}

/** What `submit` resolves with: the command committed and was applied on the leader. */
export interface SubmitResult {
  committed: true;
  requestId: string;
  leader: string;
  result: ApplyResult;
}

/** A voter-selection change this peer proposed as leader (Date.now() and log index). */
export type VoterChangeRecord = VoterDecision & { at: number; index: number };

const joinSchema = z.strictObject({
  durable: z.boolean(),
  lastIndex: z.number().int().nonnegative(),
  /** Set by a member forwarding someone else's join to the leader (never forwarded again). */
  peer: z.string().min(1).max(128).optional(),
  /**
   * The joiner's listen addresses: on a sparse overlay (hyparview) the leader may never
   * have met it, and must dial it to replicate the log.
   */
  addrs: z.array(z.string().max(512)).max(8).optional(),
});
const forwardedProposalSchema = z.strictObject({
  command: z.record(z.string(), z.unknown()).refine((c) => typeof c.requestId === "string", "a forwarded command carries a requestId"),
  timeoutMs: z.number().int().positive().max(60_000),
});
const submitReplySchema = z.object({ committed: z.literal(true), requestId: z.string(), leader: z.string(), result: z.custom<ApplyResult>((r) => typeof r === "object" && r !== null) });

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function codeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class RaftDriver {
  readonly state = new ClusterState();
  readonly raft: RaftNode;
  /** True when the Raft state is on disk (this peer may become a voter). */
  readonly durable: boolean;
  private readonly storage: { load(): PersistedState; persist(u: PersistUpdate): void; close?(): void };
  private readonly timer: NodeJS.Timeout;
  private draining = false;
  private again = false;
  private stopped = false;
  /** Messages from peers that failed validation (counted, never applied). */
  rejected = 0;
  private readonly log: Logger;
  /** Callers waiting for their command (by requestId) to be applied. */
  private readonly waiters = new Map<string, Set<(r: ApplyResult) => void>>();
  /** Callers waiting for the entry at an index to be applied. */
  private readonly indexWaiters = new Map<number, Array<(e: Entry) => void>>();
  private readonly applyListeners = new Set<(r: ApplyResult, data: unknown) => void>();
  private readonly tickMs: number;
  private readonly compactEvery: number;
  private readonly targetVoters: number;
  private readonly deadVoterMs: number;
  private readonly deadLearnerMs: number;
  private readonly autoVoters: boolean;
  private readonly joinEnabled: boolean;
  private ticks = 0;
  /**
   * When a leader's append, heartbeat or snapshot last arrived (performance.now()). Never,
   * at start: a restarted peer says hello at once, so one removed while it was down (and
   * unaware of it) is re-added as a learner without waiting for the silence to show.
   */
  private heardLeaderAt = -Infinity;
  private joining = false;
  private lastJoinAt = -Infinity;
  private joinRound = 0;
  /** Leader side: what members said about their storage (only durable learners are promoted). */
  private readonly durableOf = new Map<string, boolean>();
  private readonly asking = new Map<string, number>();
  /** Leader side: when each member last answered an append or heartbeat (performance.now()). */
  private readonly heardAt = new Map<string, number>();
  private wasLeader = false;
  private lastTickAt = performance.now();
  /** Voter-selection changes this peer proposed as leader (latest 100). */
  readonly voterChanges: VoterChangeRecord[] = [];

  constructor(
    private readonly peer: Peer,
    options: RaftDriverOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.tickMs = options.tickMs ?? 50;
    this.compactEvery = options.compactEvery ?? 1000;
    this.durable = options.dir !== undefined;
    this.storage = options.dir !== undefined ? new FileRaftStorage(options.dir) : new MemoryRaftStorage();
    this.targetVoters = options.targetVoters ?? (options.voters.length > 0 ? options.voters.length : 3);
    this.deadVoterMs = options.deadVoterMs ?? 10_000;
    this.deadLearnerMs = options.deadLearnerMs ?? 60_000;
    this.autoVoters = options.autoVoters ?? true;
    this.joinEnabled = options.join ?? true;
    let persisted = this.storage.load();
    if (isEmptyState(persisted) && options.voters.includes(peer.id)) {
      if (!this.durable) throw new Error("a founding voter needs a data directory for its Raft log");
      this.storage.persist({ ...bootstrapState({ voters: [...options.voters].sort(), learners: [] }), snapshot: null, resetLog: false });
      persisted = this.storage.load();
    }
    if (persisted.snapshot) this.state.restore(persisted.snapshot.data);
    // Few entries per append: job checkpoints carry results, and one coordination frame is 1 MiB.
    this.raft = new RaftNode({ id: peer.id, random: Math.random, electionTick: options.electionTick ?? 10, heartbeatTick: 1, maxEntriesPerMsg: 8 }, persisted);
    const coordination = peer.channels.coordination;
    const onRaft = (raw: unknown, ctx: { peer: string }) => {
      const parsed = parseRaftMessage(raw, ctx.peer);
      if (!parsed.ok) {
        this.rejected++;
        this.log.warn("rejected raft message", { from: ctx.peer, error: parsed.message });
        return;
      }
      const t = parsed.message.type;
      if (t === "app" || t === "heartbeat" || t === "snap") this.heardLeaderAt = performance.now();
      else if (t === "appResp" || t === "heartbeatResp") this.heardAt.set(ctx.peer, performance.now());
      this.raft.step(parsed.message);
      this.drain();
    };
    coordination.on("raft", z.unknown(), onRaft);
    // Snapshots can outgrow a coordination frame (1 MiB): they travel on the bulk channel.
    peer.channels.inference.on("raft", z.unknown(), onRaft);
    // Clients (dspex topology set, ...): propose through any member, answered after commit.
    coordination.handle("propose", z.unknown(), async (cmd) => ({ accepted: true, ...(await this.submit(cmd, 8000)) }));
    // Members forwarding a proposal to the leader.
    coordination.handle("raftPropose", forwardedProposalSchema, async (b) => {
      if (!this.isLeader()) throw coded("not_leader", `not the leader (leader: ${this.raft.lead ?? "unknown"})`);
      const cmd = b.command as { requestId: string } & Record<string, unknown>;
      try {
        return { committed: true, requestId: cmd.requestId, leader: this.peer.id, result: await this.proposeAndWait(cmd, b.timeoutMs) };
      } catch (e) {
        throw coded(codeOf(e) === "not_accepted" ? "not_leader" : (codeOf(e) ?? "not_committed"), (e as Error).message);
      }
    });
    coordination.handle("raftJoin", joinSchema, async (b, ctx) => {
      const joiner = b.peer ?? ctx.peer;
      if (this.isLeader()) {
        await this.rememberAddrs(joiner, b.addrs ?? []);
        return await this.admit(joiner, b.durable, b.lastIndex);
      }
      const lead = this.raft.lead;
      if (b.peer !== undefined || lead === null || lead === this.peer.id) throw coded("no_leader", "no leader known here; retry");
      return await coordination.request(peerIdFromString(lead), "raftJoin", { ...b, peer: joiner }, { timeoutMs: 5000 });
    });
    coordination.handle("raftStatus", z.unknown(), () => this.describe());
    this.timer = setInterval(() => {
      this.raft.tick();
      this.drain();
      this.maintain();
    }, this.tickMs);
    this.timer.unref();
    peer.consensus = { status: () => ({ ...this.raft.status(), role: this.role() }), topology: () => this.state.topology?.name, lmLimits: () => this.state.lmLimits };
  }

  status(): RaftStatus {
    return this.raft.status();
  }

  /** Tell libp2p where a joiner listens (bad addresses are skipped: they come from the wire). */
  private async rememberAddrs(peer: string, addrs: string[]): Promise<void> {
    const valid = dialableAddrs(addrs, 8);
    if (valid.length === 0) return;
    await this.peer.node.peerStore.merge(peerIdFromString(peer), { multiaddrs: valid.map((a) => multiaddr(a)) }).catch(() => undefined);
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

  /** leader, follower (a voter), candidate, preCandidate, learner, or joining (not a member yet). */
  role(): string {
    const r = this.raft;
    if (r.role === "leader") return "leader";
    if (r.conf.learners.includes(this.peer.id)) return "learner";
    if (!r.conf.voters.includes(this.peer.id)) return "joining";
    return r.role;
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
      let set = this.waiters.get(key);
      if (set === undefined) this.waiters.set(key, (set = new Set()));
      const waiters = set;
      const done = (r: ApplyResult) => {
        clearTimeout(timer);
        resolve(r);
      };
      const drop = () => {
        waiters.delete(done);
        if (waiters.size === 0 && this.waiters.get(key) === waiters) this.waiters.delete(key);
      };
      const timer = setTimeout(() => {
        drop();
        reject(Object.assign(new Error(`command ${command.type as string} (${key}) not committed within ${timeoutMs} ms (no quorum or leader change); retry`), { code: "not_committed" }));
      }, timeoutMs);
      timer.unref();
      waiters.add(done);
      const r = this.propose(command);
      if (!r.ok) {
        clearTimeout(timer);
        drop();
        reject(Object.assign(new Error(r.message), { code: "not_accepted" }));
      }
    });
  }

  /**
   * Propose from any member (voter or learner) and resolve once the leader has committed
   * and applied the command, with its ApplyResult (which may be a rejection by the state
   * machine). A non-leader forwards it to the leader it knows, retrying while leadership
   * moves; a requestId is added if missing, so a retry never applies it twice. Rejects
   * with code `not_committed` when the time is up (retry with the same requestId),
   * `bad_request` for a command that is not an object.
   */
  async submit(command: unknown, timeoutMs = 8000): Promise<SubmitResult> {
    if (typeof command !== "object" || command === null || Array.isArray(command)) throw coded("bad_request", "a cluster command is a JSON object with a 'type' (e.g. {\"type\": \"setTopology\", \"name\": \"hyparview\"})");
    const given = (command as { requestId?: unknown }).requestId;
    if (given !== undefined && (typeof given !== "string" || given.length === 0 || given.length > 256)) throw coded("bad_request", "requestId must be a string of 1 to 256 characters");
    const cmd = { ...(command as Record<string, unknown>), requestId: (given as string | undefined) ?? `${this.peer.id.slice(-8)}-${randomUUID()}` } as { requestId: string } & Record<string, unknown>;
    const deadline = performance.now() + timeoutMs;
    let why = "no leader known";
    for (;;) {
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) throw coded("not_committed", `command ${String(cmd.type)} (${cmd.requestId}) not committed within ${timeoutMs} ms (${why}); retry with the same requestId`);
      if (this.isLeader()) {
        try {
          return { committed: true, requestId: cmd.requestId, leader: this.peer.id, result: await this.proposeAndWait(cmd, left) };
        } catch (e) {
          if (codeOf(e) !== "not_accepted") throw e;
          why = (e as Error).message; // e.g. leadership transfer: wait for the next leader
          await sleep(Math.min(100, left));
          continue;
        }
      }
      const lead = this.raft.lead;
      if (lead === null || lead === this.peer.id) {
        await sleep(Math.min(100, left));
        continue;
      }
      try {
        const reply = await this.peer.channels.coordination.request(peerIdFromString(lead), "raftPropose", { command: cmd, timeoutMs: left }, { timeoutMs: left + 500 });
        const parsed = submitReplySchema.safeParse(reply);
        if (!parsed.success) throw coded("bad_reply", `leader ${lead} answered a proposal with something unexpected`);
        return parsed.data;
      } catch (e) {
        const code = codeOf(e);
        if (code === "not_committed" || code === "timeout" || code === "bad_request" || code === "bad_reply") {
          throw coded(code === "timeout" ? "not_committed" : code, `${(e as Error).message}${code === "timeout" ? " (retry with the same requestId)" : ""}`);
        }
        // Not (or no longer) the leader, or unreachable: nothing was proposed; try again.
        why = `leader ${lead}: ${(e as Error).message}`;
        await sleep(Math.min(100, left));
      }
    }
  }

  /** Membership and state as this peer sees them (the "raftStatus" coordination method). */
  describe(): {
    id: string;
    role: string;
    term: number;
    lead: string | null;
    commit: number;
    applied: number;
    lastIndex: number;
    voters: string[];
    learners: string[];
    durable: boolean;
    topology: string | null;
    voterChanges: VoterChangeRecord[];
  } {
    const st = this.raft.status();
    return {
      id: this.peer.id,
      role: this.role(),
      term: st.term,
      lead: st.lead,
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      voters: [...st.conf.voters],
      learners: [...st.conf.learners],
      durable: this.durable,
      topology: this.state.topology?.name ?? null,
      voterChanges: this.voterChanges.slice(-10),
    };
  }

  // ---- Membership ------------------------------------------------------------------

  /** Leader: add `joiner` as a learner (once the change commits), or confirm it is a member. */
  private async admit(joiner: string, durable: boolean, lastIndex: number): Promise<{ member: "voter" | "learner"; leader: string; added?: boolean }> {
    try {
      peerIdFromString(joiner);
    } catch {
      throw coded("bad_request", `'${joiner}' is not a peer id`);
    }
    this.durableOf.set(joiner, durable);
    const conf = this.raft.conf;
    if (conf.voters.includes(joiner)) return { member: "voter", leader: this.peer.id };
    if (conf.learners.includes(joiner)) {
      const pr = this.raft.status().progress?.[joiner];
      if (pr !== undefined && lastIndex < pr.match) {
        // It lost entries it acknowledged (in-memory storage, restarted): start it over.
        const r = this.raft.relearn(joiner);
        this.drain();
        if (r.ok) this.log.info("learner lost its log; replicating from the start", { learner: joiner, hadMatch: r.value.match });
      }
      return { member: "learner", leader: this.peer.id };
    }
    const r = this.raft.proposeConfChange({ type: "addLearner", node: joiner });
    this.drain();
    if (!r.ok) throw coded(r.error.code === "CONF_CHANGE_PENDING" ? "busy" : r.error.code.toLowerCase(), r.error.message);
    this.log.info("adding learner", { learner: joiner, durable, index: r.value.index });
    const e = await this.waitApplied(r.value.index, 4000); // within the joiner's (and a forwarder's) request timeout
    if (e.term !== r.value.term) throw coded("not_committed", `adding ${joiner} as a learner was overtaken by a leader change; retry`);
    return { member: "learner", leader: this.peer.id, added: true };
  }

  private waitApplied(index: number, timeoutMs: number): Promise<Entry> {
    return new Promise<Entry>((resolve, reject) => {
      if (this.raft.log.applied >= index) {
        const e = this.raft.log.entry(index);
        if (e) return resolve(e);
      }
      const list = this.indexWaiters.get(index) ?? [];
      const fn = (e: Entry) => {
        clearTimeout(timer);
        resolve(e);
      };
      const timer = setTimeout(() => {
        const l = this.indexWaiters.get(index);
        if (l) {
          const i = l.indexOf(fn);
          if (i >= 0) l.splice(i, 1);
          if (l.length === 0) this.indexWaiters.delete(index);
        }
        reject(coded("not_committed", `entry ${index} not committed within ${timeoutMs} ms; retry`));
      }, timeoutMs);
      timer.unref();
      list.push(fn);
      this.indexWaiters.set(index, list);
    });
  }

  /** Every tick, after Raft: the leader's voter selection, a non-member's join. */
  private maintain(): void {
    if (this.stopped) return;
    this.ticks++;
    const now = performance.now();
    // Silence is measured on this clock, not in ticks (a loaded event loop delays ticks).
    // After a stall of this process (or on becoming leader) nobody's silence is known:
    // start counting again, like a new leader does.
    const stalled = now - this.lastTickAt > Math.max(1000, 5 * this.tickMs);
    this.lastTickAt = now;
    if (this.raft.role === "leader") {
      if (!this.wasLeader || stalled) this.heardAt.clear();
      this.wasLeader = true;
      this.heardLeaderAt = now;
      if (this.autoVoters) this.selectVoters(now);
      return;
    }
    this.wasLeader = false;
    if (!this.joinEnabled || this.joining || now - this.lastJoinAt < 2000) return;
    const conf = this.raft.conf;
    const member = conf.voters.includes(this.peer.id) || conf.learners.includes(this.peer.id);
    const silent = now - this.heardLeaderAt > Math.max(3000, 4 * this.raft.electionTick * this.tickMs);
    // Not a member yet; or cut off: a learner removed while away, or a voter removed while
    // away that does not know it (its campaigns are ignored, so it never hears a leader).
    if (member && !(silent && (!this.raft.isVoter() || this.raft.lead === null))) return;
    this.lastJoinAt = now;
    this.joining = true;
    void this.join().finally(() => (this.joining = false));
  }

  private async join(): Promise<void> {
    const lead = this.raft.lead;
    const others = (await this.peer.dspexPeers()).map(String).filter((id) => id !== lead && id !== this.peer.id);
    const k = others.length > 0 ? this.joinRound++ % others.length : 0;
    const targets = [...(lead !== null && lead !== this.peer.id ? [lead] : []), ...others.slice(k), ...others.slice(0, k)].slice(0, 3);
    for (const t of targets) {
      if (this.stopped) return;
      try {
        const addrs = this.peer.multiaddrs().slice(0, 8);
        const r = await this.peer.channels.coordination.request(peerIdFromString(t), "raftJoin", { durable: this.durable, lastIndex: this.raft.log.lastIndex(), addrs }, { timeoutMs: 6000 });
        this.log.info("joined the Raft cluster", { via: t, reply: r });
        return;
      } catch (e) {
        this.log.debug("raft join attempt failed", { via: t, error: (e as Error).message });
      }
    }
  }

  private selectVoters(now: number): void {
    const st = this.raft.status();
    // Learners' storage: ask the ones this leader has not heard about (e.g. after an election).
    for (const l of st.conf.learners) if (!this.durableOf.has(l)) this.askDurable(l, now);
    const idle = (id: string): number => {
      const at = this.heardAt.get(id);
      if (at !== undefined) return now - at;
      this.heardAt.set(id, now); // first seen (new leader, or a new member): count from now
      return 0;
    };
    const d = decideVoterChange(
      {
        targetVoters: this.targetVoters,
        deadAfter: this.deadVoterMs,
        freshWithin: 2 * this.raft.electionTick * this.tickMs,
        removeLearnersAfter: this.deadLearnerMs,
      },
      policyViewOf(st, (id) => this.durableOf.get(id) === true, idle),
    );
    if (d === null) return;
    const r = this.raft.proposeConfChange(d.change);
    this.drain();
    if (!r.ok) {
      // E.g. this new leader's first entry is not committed yet: decided again next tick.
      this.log.debug("voter selection refused", { change: d.change, error: r.error.message });
      return;
    }
    this.voterChanges.push({ ...d, at: Date.now(), index: r.value.index });
    if (this.voterChanges.length > 100) this.voterChanges.shift();
    this.log.info("voter selection", { change: d.change, rule: d.rule, reason: d.reason, index: r.value.index });
  }

  private askDurable(learner: string, now: number): void {
    if (now - (this.asking.get(learner) ?? -Infinity) < 2000) return;
    this.asking.set(learner, now);
    let id;
    try {
      id = peerIdFromString(learner);
    } catch {
      return;
    }
    this.peer.channels.coordination
      .request(id, "raftStatus", null, { timeoutMs: 2000 })
      .then((r) => {
        const durable = (r as { durable?: unknown } | null)?.durable;
        if (typeof durable === "boolean") this.durableOf.set(learner, durable);
      })
      .catch(() => undefined);
  }

  // ---- Ready loop ------------------------------------------------------------------

  private applied(e: Entry): void {
    const r = this.state.apply(e);
    const data = e.data as { requestId?: unknown } | null;
    if (data && typeof data === "object" && typeof data.requestId === "string") {
      const set = this.waiters.get(data.requestId);
      if (set !== undefined) {
        this.waiters.delete(data.requestId);
        for (const fn of set) fn(r);
      }
    }
    const iw = this.indexWaiters.get(e.index);
    if (iw !== undefined) {
      this.indexWaiters.delete(e.index);
      for (const fn of iw) fn(e);
    }
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
          this.maybeCompact();
        }
      } while (this.again);
    } finally {
      this.draining = false;
    }
  }

  /**
   * Without compaction the WAL, the in-memory log and a restart's replay grow with every
   * command ever committed (job checkpoints carry results). The snapshot is the state at
   * exactly the applied index; the next Ready persists it and rewrites the WAL.
   */
  private maybeCompact(): void {
    const log = this.raft.log;
    if (log.applied - log.snapIndex < this.compactEvery || this.state.appliedIndex !== log.applied) return;
    const r = this.raft.compact(log.applied, this.state.snapshot());
    if (r.ok) this.log.info("raft log compacted", { index: log.applied });
    else this.log.warn("raft log compaction failed", { error: r.error.message });
  }

  private send(m: Message): void {
    let to;
    try {
      to = peerIdFromString(String(m.to));
    } catch {
      return;
    }
    // Raft tolerates loss: a failed send is retried by the protocol itself.
    const channel = m.type === "snap" ? this.peer.channels.inference : this.peer.channels.coordination;
    channel.send(to, "raft", m).catch((e: unknown) => this.log.debug("raft send failed", { to: String(m.to), type: m.type, error: (e as Error).message }));
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.storage.close?.();
  }
}
