// RaftNode: Raft as a pure state machine, after etcd/raft (raft.go + rawnode.go).
//
// No timers, no I/O, no clock, no Math.random: time arrives as `tick()`, randomness from
// an injected source, messages through `step()`, and everything the node wants done comes
// back as a `Ready` (persist, send, apply), acknowledged with `advance()`.
//
// Implemented: elections with randomized timeouts, PreVote, CheckQuorum (a leader that
// cannot hear a quorum for an election timeout steps down; followers that heard a leader
// within the timeout ignore vote requests: the leader lease), log replication with
// probe/replicate flow control and fast backtracking by term, commitment by counting only
// for current-term entries, read-index reads, snapshots and log compaction,
// single-server membership changes, learners, and leadership transfer.

import { Progress } from "./progress.js";
import { RaftInvariantError, RaftLog } from "./log.js";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  MsgApp,
  MsgAppResp,
  MsgHeartbeat,
  MsgHeartbeatResp,
  MsgSnap,
  MsgVote,
  MsgVoteResp,
  PersistedState,
  RaftError,
  RaftId,
  RaftResult,
  RaftRole,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
} from "./types.js";

export { RaftInvariantError } from "./log.js";

/** Tunables. Ticks are the only notion of time; the driver decides how long a tick is. */
export interface RaftConfig {
  id: RaftId;
  /** Uniform random numbers in [0, 1) (seeded in the simulator). */
  random: () => number;
  /** Followers campaign after a random timeout in [electionTick, 2*electionTick) ticks. Default 10. */
  electionTick?: number;
  /** The leader sends heartbeats every heartbeatTick ticks. Default 1. */
  heartbeatTick?: number;
  /** Pre-vote round before bumping the term (a rejoining node cannot disrupt a leader). Default true. */
  preVote?: boolean;
  /** Leader steps down without a quorum; followers honour a leader lease. Default true. */
  checkQuorum?: boolean;
  /** Max entries per append message. Default 64. */
  maxEntriesPerMsg?: number;
  /** Max unacknowledged append messages per follower in replicate state. Default 32. */
  maxInflightMsgs?: number;
  /**
   * Index the application's state machine already reflects (if it is durable). Default:
   * the snapshot index; committed entries after it are handed out again.
   */
  applied?: number;
}

/** What `status()` reports. */
export interface RaftStatus {
  id: RaftId;
  term: number;
  vote: RaftId | null;
  lead: RaftId | null;
  role: RaftRole;
  commit: number;
  applied: number;
  lastIndex: number;
  lastTerm: number;
  snapIndex: number;
  conf: ConfState;
  /** Index of the config entry `conf` comes from (committed once `commit >= confIndex`). */
  confIndex: number;
  leadTransferee: RaftId | null;
  /**
   * Leader only: per member replication progress. `idle`: leader ticks since the member
   * last answered (counted from this leader's election, or from when the member was added).
   */
  progress?: Record<RaftId, { match: number; next: number; state: string; learner: boolean; active: boolean; idle: number }>;
}

/** Outcome of `propose`: appended locally (leader) or forwarded to the leader. */
export type Proposed = { index: number; term: number; forwardedTo?: undefined } | { forwardedTo: RaftId; index?: undefined; term?: undefined };

interface ReadRequest {
  key: string; // unique heartbeat context
  index: number;
  from: RaftId;
  context: string;
  acks: Set<RaftId>;
}

const EMPTY_CONF: ConfState = Object.freeze({ voters: Object.freeze([]) as readonly RaftId[], learners: Object.freeze([]) as readonly RaftId[] });

function err(code: RaftError["code"], message: string, leader?: RaftId | null): { ok: false; error: RaftError } {
  return { ok: false, error: leader === undefined ? { code, message } : { code, message, leader } };
}

/** The initial persisted state of a founding member: the first configuration at index 1, term 1, committed. */
export function bootstrapState(conf: ConfState): PersistedState {
  const entry: Entry = { index: 1, term: 1, type: "config", data: normConf(conf) };
  return { hardState: { term: 1, vote: null, commit: 1 }, snapshot: null, entries: [entry] };
}

/** An empty persisted state: a node that joins an existing cluster (it learns everything from the leader). */
export function emptyState(): PersistedState {
  return { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] };
}

function normConf(c: ConfState): ConfState {
  const voters = [...new Set(c.voters)].sort();
  const learners = [...new Set(c.learners)].filter((l) => !voters.includes(l)).sort();
  return { voters, learners };
}

function sameConf(a: ConfState, b: ConfState): boolean {
  return a.voters.length === b.voters.length && a.learners.length === b.learners.length && a.voters.every((v, i) => v === b.voters[i]) && a.learners.every((v, i) => v === b.learners[i]);
}

/** Apply a single-server change to `c`; an error string if it is not a valid single change. */
export function applyConfChange(c: ConfState, cc: ConfChange): ConfState | string {
  const voters = new Set(c.voters);
  const learners = new Set(c.learners);
  const n = cc.node;
  if (typeof n !== "string" || n.length === 0) return "node id must be a non-empty string";
  switch (cc.type) {
    case "addVoter":
      if (voters.has(n)) return `${n} is already a voter`;
      learners.delete(n);
      voters.add(n);
      break;
    case "addLearner":
      if (learners.has(n)) return `${n} is already a learner`;
      voters.delete(n);
      learners.add(n);
      break;
    case "removeNode":
      if (!voters.has(n) && !learners.has(n)) return `${n} is not a member`;
      voters.delete(n);
      learners.delete(n);
      break;
    default:
      return `unknown change type ${JSON.stringify((cc as { type: unknown }).type)}`;
  }
  if (voters.size === 0) return "cannot remove the last voter";
  return normConf({ voters: [...voters], learners: [...learners] });
}

export class RaftNode {
  readonly id: RaftId;
  private readonly random: () => number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  private readonly maxEntries: number;
  private readonly maxInflight: number;

  term = 0;
  vote: RaftId | null = null;
  lead: RaftId | null = null;
  role: RaftRole = "follower";
  readonly log = new RaftLog();
  /** Configuration in effect: the latest config entry in the log (committed or not). */
  conf: ConfState = EMPTY_CONF;
  private confIndex = 0;
  /** Config entries above the snapshot (committed or not), in index order. */
  private confHistory: Array<{ index: number; conf: ConfState }> = [];
  /** Configuration at the snapshot index. */
  private snapConf: ConfState = EMPTY_CONF;
  private voterSet = new Set<RaftId>();

  private prs = new Map<RaftId, Progress>();
  private votes = new Map<RaftId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks spent as leader (for snapshot resend timing). */
  private leaderTicks = 0;
  leadTransferee: RaftId | null = null;
  /** Index of the latest config entry proposed by this leader (or of its first no-op). */
  private pendingConfIndex = 0;

  private readQueue: ReadRequest[] = [];
  private readSeq = 0;
  /** Read requests received before this leader committed an entry of its term. */
  private pendingReads: Array<{ from: RaftId; context: string }> = [];

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevHS: HardState;
  private prevSoft: SoftState;

  constructor(cfg: RaftConfig, persisted: PersistedState) {
    this.id = cfg.id;
    this.random = cfg.random;
    this.electionTick = cfg.electionTick ?? 10;
    this.heartbeatTick = cfg.heartbeatTick ?? 1;
    if (!(this.heartbeatTick >= 1 && this.electionTick > this.heartbeatTick)) {
      throw new RangeError(`need 1 <= heartbeatTick < electionTick (got ${this.heartbeatTick}, ${this.electionTick})`);
    }
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.maxEntries = cfg.maxEntriesPerMsg ?? 64;
    this.maxInflight = cfg.maxInflightMsgs ?? 32;

    const log = this.log;
    const s = persisted.snapshot;
    if (s !== null) {
      log.snapIndex = s.index;
      log.snapTerm = s.term;
      log.snapshot = s;
      this.snapConf = normConf(s.conf);
    }
    let expect = log.snapIndex + 1;
    for (const e of persisted.entries) {
      if (e.index <= log.snapIndex) continue; // leftovers a lazy storage has not compacted yet
      if (e.index !== expect) throw new RaftInvariantError(`persisted log has a gap at ${expect} (found ${e.index})`);
      log.entries.push(e);
      if (e.type === "config") this.confHistory.push({ index: e.index, conf: normConf(e.data as ConfState) });
      expect++;
    }
    log.unstable = log.lastIndex() + 1;
    const hs = persisted.hardState;
    this.term = hs.term;
    this.vote = hs.vote;
    log.committed = Math.min(Math.max(hs.commit, log.snapIndex), log.lastIndex());
    const applied = Math.min(Math.max(cfg.applied ?? log.snapIndex, log.snapIndex), log.committed);
    log.applied = applied;
    log.applying = applied;
    this.refreshConf();
    this.prevHS = this.hardState();
    this.becomeFollower(this.term, null);
    this.prevSoft = this.softState();
  }

  // ---- Introspection ---------------------------------------------------------------

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.role, term: this.term };
  }

  isVoter(id: RaftId = this.id): boolean {
    return this.voterSet.has(id);
  }

  status(): RaftStatus {
    const st: RaftStatus = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      lead: this.lead,
      role: this.role,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapIndex: this.log.snapIndex,
      conf: this.conf,
      confIndex: this.confIndex,
      leadTransferee: this.leadTransferee,
    };
    if (this.role === "leader") {
      st.progress = {};
      for (const [id, pr] of this.prs) {
        const idle = id === this.id ? 0 : this.leaderTicks - pr.lastHeard;
        st.progress[id] = { match: pr.match, next: pr.next, state: pr.state, learner: pr.isLearner, active: pr.recentActive, idle };
      }
    }
    return st;
  }

  /** The latest configuration in the log (committed or not). */
  latestConf(): ConfState {
    const h = this.confHistory;
    return h.length > 0 ? h[h.length - 1]!.conf : this.snapConf;
  }

  // ---- Driver API ------------------------------------------------------------------

  /** Advance logical time by one tick. */
  tick(): void {
    if (this.role === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  /** Start an election now (as if the election timeout elapsed). */
  campaign(): void {
    if (this.role !== "leader") this.hup(false);
  }

  /** Propose application data. Leader: appended. Follower: forwarded to the known leader. */
  propose(data: unknown): RaftResult<Proposed> {
    if (this.role === "leader") {
      if (this.leadTransferee !== null) return err("TRANSFER_IN_PROGRESS", `leadership is being transferred to ${this.leadTransferee}`, this.leadTransferee);
      if (!this.isVoter()) return err("TRANSFER_IN_PROGRESS", "this leader is leaving the voter set; retry on the next leader", null);
      const e = this.appendEntry("normal", data);
      this.bcastAppend();
      return { ok: true, value: { index: e.index, term: e.term } };
    }
    if (this.lead === null) return err("NO_LEADER", "no leader known; retry after the election", null);
    this.send({ type: "prop", from: this.id, to: this.lead, term: 0, data });
    return { ok: true, value: { forwardedTo: this.lead } };
  }

  /** Propose a single-server membership change. Leader only; one change at a time. */
  proposeConfChange(cc: ConfChange): RaftResult<{ index: number; term: number; conf: ConfState }> {
    if (this.role !== "leader") return err("NOT_LEADER", "membership changes are proposed on the leader", this.lead);
    if (this.leadTransferee !== null) return err("TRANSFER_IN_PROGRESS", `leadership is being transferred to ${this.leadTransferee}`, this.leadTransferee);
    if (this.pendingConfIndex > this.log.committed) {
      return err("CONF_CHANGE_PENDING", `a membership change (or this leader's first entry) at index ${this.pendingConfIndex} is not committed yet; retry later`, this.id);
    }
    const next = applyConfChange(this.conf, cc);
    if (typeof next === "string") return err("INVALID_CONF_CHANGE", next, this.id);
    const e = this.appendEntry("config", next);
    this.pendingConfIndex = e.index;
    this.bcastAppend();
    return { ok: true, value: { index: e.index, term: e.term, conf: next } };
  }

  /**
   * Request a linearizable read. When a quorum confirms this node's leadership, a
   * ReadState {index, context} appears in a Ready (here, or on the follower that asked);
   * the read is safe once the state machine has applied `index`.
   */
  readIndex(context: string): RaftResult<{ forwardedTo?: RaftId }> {
    if (this.role === "leader") {
      this.handleReadIndex(this.id, context);
      return { ok: true, value: {} };
    }
    if (this.lead === null) return err("NO_LEADER", "no leader known; retry after the election", null);
    this.send({ type: "readIndex", from: this.id, to: this.lead, term: 0, context });
    return { ok: true, value: { forwardedTo: this.lead } };
  }

  /** Hand leadership to `target` (a voter). Forwarded if this node is not the leader. */
  transferLeadership(target: RaftId): RaftResult<{ forwardedTo?: RaftId }> {
    if (this.role === "leader") {
      const r = this.handleTransfer(target);
      return r === null ? { ok: true, value: {} } : err("INVALID_ARGUMENT", r, this.id);
    }
    if (this.lead === null) return err("NO_LEADER", "no leader known", null);
    this.send({ type: "transferLeader", from: this.id, to: this.lead, term: 0, target });
    return { ok: true, value: { forwardedTo: this.lead } };
  }

  /**
   * Leader only: `learner` lost its log (e.g. it restarted with in-memory storage), so the
   * entries it acknowledged are gone; replicate to it again from the start (entries, or
   * the snapshot if they were compacted). Voters are refused: a voter that loses
   * acknowledged entries breaks Raft's assumptions and cannot be repaired this way.
   */
  relearn(learner: RaftId): RaftResult<{ match: number }> {
    if (this.role !== "leader") return err("NOT_LEADER", "only the leader tracks replication progress", this.lead);
    const pr = this.prs.get(learner);
    if (pr === undefined || !pr.isLearner || learner === this.id) return err("INVALID_ARGUMENT", `${learner} is not a learner`, this.id);
    const before = pr.match;
    pr.match = 0;
    pr.becomeProbe();
    pr.next = 1; // from the first entry, or the snapshot if that was compacted away
    pr.recentActive = true;
    pr.lastHeard = this.leaderTicks;
    this.sendAppend(learner, true);
    return { ok: true, value: { match: before } };
  }

  /**
   * Compact the log up to `index` (<= applied), keeping `data` (the state machine's
   * snapshot at exactly `index`) as the snapshot sent to lagging followers.
   */
  compact(index: number, data: unknown): RaftResult<Snapshot> {
    const log = this.log;
    if (index > log.applied) return err("NOT_APPLIED", `cannot compact to ${index}: only ${log.applied} applied`);
    if (index <= log.snapIndex) return err("INVALID_ARGUMENT", `already compacted to ${log.snapIndex}`);
    const s: Snapshot = { index, term: log.term(index)!, conf: this.confAt(index), data };
    const h = this.confHistory;
    let k = 0;
    while (k < h.length && h[k]!.index <= index) k++;
    if (k > 0) {
      this.snapConf = h[k - 1]!.conf;
      this.confHistory = h.slice(k);
    }
    log.compact(s);
    return { ok: true, value: s };
  }

  hasReady(): boolean {
    const log = this.log;
    if (this.msgs.length > 0 || this.readStates.length > 0) return true;
    if (log.hasUnstable() || log.pendingSnapshot !== null || log.hasNextCommitted()) return true;
    const hs = this.prevHS;
    if (hs.term !== this.term || hs.vote !== this.vote || hs.commit !== log.committed) return true;
    const ss = this.prevSoft;
    return ss.lead !== this.lead || ss.role !== this.role || ss.term !== this.term;
  }

  /** Collect the next batch of work. Everything in it counts as handed out. */
  ready(): Ready {
    const log = this.log;
    const entries = log.hasUnstable() ? log.slice(log.unstable, log.lastIndex() + 1) : [];
    log.unstable = log.lastIndex() + 1;
    const snapshot = log.pendingSnapshot;
    const installSnapshot = snapshot !== null && log.pendingInstall;
    log.pendingSnapshot = null;
    log.pendingInstall = false;
    if (installSnapshot && log.applying < snapshot.index) log.applying = snapshot.index;
    const committedEntries = log.nextCommitted();
    if (committedEntries.length > 0) log.applying = committedEntries[committedEntries.length - 1]!.index;
    let hardState: HardState | null = null;
    const hs = this.prevHS;
    if (hs.term !== this.term || hs.vote !== this.vote || hs.commit !== log.committed) {
      hardState = this.hardState();
      this.prevHS = hardState;
    }
    let softState: SoftState | null = null;
    const ss = this.prevSoft;
    if (ss.lead !== this.lead || ss.role !== this.role || ss.term !== this.term) {
      softState = this.softState();
      this.prevSoft = softState;
    }
    const messages = this.msgs;
    this.msgs = [];
    const readStates = this.readStates;
    if (readStates.length > 0) this.readStates = [];
    const mustSync = entries.length > 0 || snapshot !== null || (hardState !== null && (hardState.term !== hs.term || hardState.vote !== hs.vote));
    return { hardState, entries, snapshot, installSnapshot, messages, committedEntries, readStates, softState, mustSync };
  }

  /** The driver persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    const log = this.log;
    const ce = rd.committedEntries;
    if (ce.length > 0) log.applied = Math.max(log.applied, ce[ce.length - 1]!.index);
    if (rd.installSnapshot && rd.snapshot !== null) log.applied = Math.max(log.applied, rd.snapshot.index);
    if (this.role === "leader" && this.pendingReads.length > 0) this.releasePendingReads();
  }

  // ---- Ticks -----------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.isVoter() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.leaderTicks++;
    if (this.electionElapsed >= this.electionTick) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, null);
          return;
        }
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // transfer did not finish in time
      if (!this.isVoter() && this.log.committed >= this.confIndex) {
        this.becomeFollower(this.term, null); // removed, and the hand-over failed: stand down
        return;
      }
      this.leaveIfRemoved();
    }
    if (this.heartbeatElapsed >= this.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readQueue.length > 0 ? this.readQueue[this.readQueue.length - 1]!.key : null);
    }
  }

  /** Voters heard from since the last check (self included) form a quorum; resets the marks. */
  private quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.prs) {
      if (pr.isLearner) continue;
      if (id === this.id || pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= this.quorum();
  }

  private quorum(): number {
    return (this.voterSet.size >> 1) + 1;
  }

  // ---- Role transitions ------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTick + Math.floor(this.random() * this.electionTick);
    this.leadTransferee = null;
    this.votes.clear();
    this.prs = new Map();
    this.readQueue = [];
    this.pendingReads = [];
    this.pendingConfIndex = 0;
  }

  private becomeFollower(term: number, lead: RaftId | null): void {
    this.reset(term);
    this.lead = lead;
    this.role = "follower";
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  private becomePreCandidate(): void {
    // Neither the term nor the vote changes: a failed pre-vote leaves no trace.
    this.votes.clear();
    this.lead = null;
    this.role = "preCandidate";
    this.randomizedElectionTimeout = this.electionTick + Math.floor(this.random() * this.electionTick);
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    this.leaderTicks = 0;
    const next = this.log.lastIndex() + 1;
    for (const id of this.conf.voters) this.prs.set(id, this.newProgress(id, next, false));
    for (const id of this.conf.learners) this.prs.set(id, this.newProgress(id, next, true));
    // Members must answer within the first election timeout (only members added later by a
    // config change get a grace round).
    for (const [id, pr] of this.prs) pr.recentActive = id === this.id;
    const self = this.prs.get(this.id);
    if (self !== undefined) {
      self.match = next - 1;
      self.becomeReplicate();
    }
    // A no-op of the new term: committing it commits everything before it (§5.4.2), and
    // no membership change may be proposed until it is committed (the single-server
    // change safety fix).
    const e = this.appendEntry("normal", null);
    this.pendingConfIndex = e.index;
  }

  private newProgress(id: RaftId, next: number, learner: boolean): Progress {
    const pr = new Progress(next, this.maxInflight, learner);
    pr.recentActive = true; // give new members one check-quorum round
    pr.lastHeard = this.leaderTicks; // and count their silence from now
    if (id === this.id) pr.match = next - 1;
    return pr;
  }

  private hup(transfer: boolean): void {
    if (this.role === "leader" || !this.isVoter()) return;
    if (this.preVote && !transfer) this.campaignRound(true, false);
    else this.campaignRound(false, transfer);
  }

  private campaignRound(pre: boolean, transfer: boolean): void {
    let term: number;
    if (pre) {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (this.poll(this.id, true) === "won") {
      if (pre) this.campaignRound(false, transfer);
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    const type = pre ? "preVote" : "vote";
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      this.send({ type, from: this.id, to: v, term, index, logTerm, transfer });
    }
  }

  private poll(from: RaftId, granted: boolean): "won" | "lost" | "pending" {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.conf.voters) {
      const g = this.votes.get(v);
      if (g === true) yes++;
      else if (g === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return "won";
    if (no > this.voterSet.size - q) return "lost";
    return "pending";
  }

  // ---- Configuration ---------------------------------------------------------------

  private confAt(index: number): ConfState {
    let c = this.snapConf;
    for (const h of this.confHistory) {
      if (h.index > index) break;
      c = h.conf;
    }
    return c;
  }

  /**
   * Make the latest configuration in the log the one in effect (Raft dissertation §4.1:
   * a server uses the latest configuration in its log, committed or not; a truncation
   * that removes a config entry reverts to the previous one).
   */
  private refreshConf(): void {
    const h = this.confHistory;
    const c = h.length > 0 ? h[h.length - 1]!.conf : this.snapConf;
    const ci = h.length > 0 ? h[h.length - 1]!.index : this.log.snapIndex;
    if (ci === this.confIndex && sameConf(c, this.conf)) return;
    this.switchToConfig(c, ci);
  }

  private switchToConfig(c: ConfState, index: number): void {
    this.conf = c;
    this.confIndex = index;
    this.voterSet = new Set(c.voters);
    if (this.role !== "leader") {
      if ((this.role === "candidate" || this.role === "preCandidate") && !this.isVoter()) this.becomeFollower(this.term, null);
      return;
    }
    const next = this.log.lastIndex() + 1;
    const members = new Set([...c.voters, ...c.learners]);
    for (const id of [...this.prs.keys()]) if (id !== this.id && !members.has(id)) this.prs.delete(id);
    for (const id of members) {
      const learner = !this.voterSet.has(id);
      const pr = this.prs.get(id);
      if (pr === undefined) this.prs.set(id, this.newProgress(id, next, learner));
      else pr.isLearner = learner;
    }
    // A leader that is no longer a voter keeps leading (without counting itself) until the
    // change commits, then hands over (see leaveIfRemoved).
    const self = this.prs.get(this.id);
    if (self !== undefined) self.isLearner = !this.isVoter();
    if (this.leadTransferee !== null && !this.voterSet.has(this.leadTransferee)) this.leadTransferee = null;
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id, false);
  }

  /**
   * A leader whose removal (or demotion) is committed stops taking proposals and
   * transfers leadership to the most caught-up voter; if that does not finish within an
   * election timeout it steps down (tickHeartbeat).
   */
  private leaveIfRemoved(): void {
    if (this.role !== "leader" || this.isVoter() || this.log.committed < this.confIndex || this.leadTransferee !== null) return;
    let best: RaftId | null = null;
    let bestMatch = -1;
    for (const [id, pr] of this.prs) {
      if (pr.isLearner || id === this.id) continue;
      if (pr.match > bestMatch || (pr.match === bestMatch && best !== null && id < best)) {
        best = id;
        bestMatch = pr.match;
      }
    }
    if (best !== null) this.handleTransfer(best);
  }

  private commitTo(i: number): void {
    if (this.log.commitTo(i)) this.leaveIfRemoved();
  }

  // ---- Messages in -----------------------------------------------------------------

  /**
   * Feed one message received from the network. Messages are trusted to be well-formed
   * (validate wire input with `raftMessageSchema` first); stale, duplicated, reordered or
   * misaddressed messages are handled.
   */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term === 0) {
      if (m.type === "prop" || m.type === "readIndex" || m.type === "transferLeader") this.stepLocal(m);
      return;
    }
    if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        const inLease = this.checkQuorum && this.lead !== null && this.electionElapsed < this.electionTick;
        if (!m.transfer && inLease) return; // leader lease: ignore disruptive campaigns
      }
      if (m.type === "preVote") {
        // Never change term in response to a pre-vote.
      } else if (m.type === "preVoteResp" && !m.reject) {
        // The term moves only when the pre-vote wins.
      } else if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "heartbeat" || m.type === "app")) {
        // A stale leader (e.g. back from a partition): our higher term makes it step down.
        this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === "preVote") {
        this.send({ type: "preVoteResp", from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case "vote":
      case "preVote":
        this.handleVote(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case "leader":
        this.stepLeader(m);
        return;
      case "candidate":
      case "preCandidate":
        this.stepCandidate(m);
        return;
      case "follower":
        this.stepFollower(m);
        return;
    }
  }

  private handleVote(m: MsgVote): void {
    const canVote = this.vote === m.from || (this.vote === null && this.lead === null) || (m.type === "preVote" && m.term > this.term);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepLocal(m: Message): void {
    if (m.type === "prop") {
      if (this.role === "leader") {
        if (this.leadTransferee === null && this.isVoter()) {
          this.appendEntry("normal", m.data);
          this.bcastAppend();
        }
      } else if (this.lead !== null && this.lead !== m.from) {
        this.send({ ...m, from: this.id, to: this.lead });
      }
    } else if (m.type === "readIndex") {
      // Not re-forwarded when leadership moved: the answer would reach us, not the asker.
      if (this.role === "leader") this.handleReadIndex(m.from, m.context);
    } else if (m.type === "transferLeader") {
      if (this.role === "leader") this.handleTransfer(m.target);
      else if (this.lead !== null && this.lead !== m.from) this.send({ ...m, from: this.id, to: this.lead });
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    if (pr === undefined) return; // not a member
    switch (m.type) {
      case "appResp":
        this.handleAppResp(m, pr);
        return;
      case "heartbeatResp":
        this.handleHeartbeatResp(m, pr);
        return;
      default:
        return; // same-term app/heartbeat/snap cannot come from another leader
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case "heartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "snap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "voteResp":
      case "preVoteResp":
        this.handleVoteResp(m);
        return;
      default:
        return;
    }
  }

  private handleVoteResp(m: MsgVoteResp): void {
    const mine = this.role === "preCandidate" ? "preVoteResp" : "voteResp";
    if (m.type !== mine) return;
    const r = this.poll(m.from, !m.reject);
    if (r === "won") {
      if (this.role === "preCandidate") this.campaignRound(false, false);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (r === "lost") {
      this.becomeFollower(this.term, null);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "app":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case "heartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "snap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "timeoutNow":
        if (this.isVoter()) this.hup(true);
        return;
      case "readIndexResp":
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  // ---- Follower handlers -----------------------------------------------------------

  private handleAppend(m: MsgApp): void {
    const log = this.log;
    if (m.index < log.committed) {
      this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: log.committed, reject: false, rejectHint: 0, logTerm: 0 });
      return;
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      if (log.appendedFrom !== 0) {
        this.rescanConfigs(log.appendedFrom);
        this.refreshConf();
      }
      this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: lastNew, reject: false, rejectHint: 0, logTerm: 0 });
      return;
    }
    const hintIndex = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
    this.send({
      type: "appResp",
      from: this.id,
      to: m.from,
      term: this.term,
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTerm: log.term(hintIndex) ?? 0,
    });
  }

  /** Entries from `from` on were (re)written: rebuild the config history above it. */
  private rescanConfigs(from: number): void {
    const kept = this.confHistory.filter((h) => h.index < from);
    const last = this.log.lastIndex();
    for (let i = Math.max(from, this.log.snapIndex + 1); i <= last; i++) {
      const e = this.log.entry(i)!;
      if (e.type === "config") kept.push({ index: i, conf: normConf(e.data as ConfState) });
    }
    this.confHistory = kept;
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    const c = Math.min(m.commit, this.log.lastIndex());
    this.commitTo(c);
    this.send({ type: "heartbeatResp", from: this.id, to: m.from, term: this.term, context: m.context });
  }

  private handleSnapshot(m: MsgSnap): void {
    const s = m.snapshot;
    const log = this.log;
    if (s.index <= log.committed) {
      this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: log.committed, reject: false, rejectHint: 0, logTerm: 0 });
      return;
    }
    if (log.matchTerm(s.index, s.term)) {
      // We already have the snapshot's last entry: just fast-forward the commit index.
      this.commitTo(s.index);
      this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: log.committed, reject: false, rejectHint: 0, logTerm: 0 });
      return;
    }
    log.restore(s);
    this.snapConf = normConf(s.conf);
    this.confHistory = [];
    this.refreshConf();
    this.send({ type: "appResp", from: this.id, to: m.from, term: this.term, index: log.lastIndex(), reject: false, rejectHint: 0, logTerm: 0 });
  }

  // ---- Leader handlers -------------------------------------------------------------

  private appendEntry(type: Entry["type"], data: unknown): Entry {
    const e: Entry = { index: this.log.lastIndex() + 1, term: this.term, type, data };
    this.log.append([e]);
    const self = this.prs.get(this.id);
    if (self !== undefined) self.maybeUpdate(e.index);
    if (type === "config") {
      this.confHistory.push({ index: e.index, conf: data as ConfState });
      this.refreshConf();
    }
    // Single-voter clusters commit at once; others when followers acknowledge.
    if (this.role === "leader") this.maybeCommit();
    return e;
  }

  /** Commit the highest index replicated on a quorum of voters, if it is of this term. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.conf.voters) {
      const pr = this.prs.get(id);
      matches.push(pr === undefined ? 0 : pr.match);
    }
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const mci = matches[this.quorum() - 1]!;
    // Figure 8: never commit an entry of an earlier term by counting replicas.
    if (mci > this.log.committed && this.log.term(mci) === this.term) {
      this.commitTo(mci);
      if (this.pendingReads.length > 0) this.releasePendingReads();
      return true;
    }
    return false;
  }

  private handleAppResp(m: MsgAppResp, pr: Progress): void {
    pr.recentActive = true;
    pr.lastHeard = this.leaderTicks;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "replicate") pr.freeLE(m.index);
    if (this.maybeCommit()) {
      if (this.role !== "leader") return; // a committed config removed us
      this.bcastAppend();
    } else if (oldPaused) {
      this.sendAppend(m.from, true);
    }
    const p = this.prs.get(m.from);
    if (p === undefined) return;
    while (this.sendAppend(m.from, false)) {
      /* stream what is left */
    }
    if (m.from === this.leadTransferee && p.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResp(m: MsgHeartbeatResp, pr: Progress): void {
    pr.recentActive = true;
    pr.lastHeard = this.leaderTicks;
    pr.probeSent = false;
    if (pr.state === "replicate" && pr.inflights.length >= pr.maxInflight) pr.freeFirst();
    if (pr.state === "snapshot" && this.leaderTicks - pr.snapshotSentAt >= this.electionTick) pr.becomeProbe(); // lost snapshot: resend
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.context !== null) this.ackRead(m.from, m.context);
  }

  private handleTransfer(target: RaftId): string | null {
    const pr = this.prs.get(target);
    if (pr === undefined || pr.isLearner) return `${target} is not a voter`;
    if (target === this.id) return "already the leader";
    if (this.leadTransferee === target) return null; // in progress
    this.leadTransferee = target;
    this.electionElapsed = 0; // must finish within one election timeout
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target, true);
    return null;
  }

  private sendTimeoutNow(to: RaftId): void {
    this.send({ type: "timeoutNow", from: this.id, to, term: this.term });
  }

  // ---- Read index ------------------------------------------------------------------

  private handleReadIndex(from: RaftId, context: string): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Not yet sure what is committed: wait for this term's first commit.
      this.pendingReads.push({ from, context });
      return;
    }
    if (this.voterSet.size === 1 && this.isVoter()) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    const key = `${this.term}:${++this.readSeq}`;
    const req: ReadRequest = { key, index: this.log.committed, from, context, acks: new Set([this.id]) };
    this.readQueue.push(req);
    this.bcastHeartbeat(key);
  }

  private releasePendingReads(): void {
    if (this.log.term(this.log.committed) !== this.term) return;
    const reads = this.pendingReads;
    this.pendingReads = [];
    for (const r of reads) this.handleReadIndex(r.from, r.context);
  }

  private ackRead(from: RaftId, key: string): void {
    const q = this.readQueue;
    const at = q.findIndex((r) => r.key === key);
    if (at < 0) return;
    const req = q[at]!;
    if (this.voterSet.has(from)) req.acks.add(from);
    let n = 0;
    for (const a of req.acks) if (this.voterSet.has(a)) n++;
    if (n < this.quorum()) return;
    // Leadership confirmed as of this round: every earlier request is safe too.
    const done = q.splice(0, at + 1);
    for (const r of done) this.answerRead(r.from, r.index, r.context);
  }

  private answerRead(from: RaftId, index: number, context: string): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: "readIndexResp", from: this.id, to: from, term: this.term, index, context });
  }

  // ---- Messages out ----------------------------------------------------------------

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  private bcastHeartbeat(context: string | null): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.send({ type: "heartbeat", from: this.id, to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), context });
    }
  }

  /** Send entries (or a snapshot) to `to` if its progress allows; returns true if something was sent. */
  private sendAppend(to: RaftId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const log = this.log;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries it needs were compacted away: send the snapshot.
      const s = log.snapshot;
      if (s === null || !pr.recentActive) return false;
      this.send({ type: "snap", from: this.id, to, term: this.term, snapshot: s });
      pr.becomeSnapshot(s.index, this.leaderTicks);
      return true;
    }
    const last = log.lastIndex();
    const hi = Math.min(last + 1, pr.next + this.maxEntries);
    const entries = pr.next <= last ? log.slice(pr.next, hi) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: "app", from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: log.committed });
    if (entries.length > 0) {
      if (pr.state === "replicate") {
        const li = entries[entries.length - 1]!.index;
        pr.next = li + 1;
        pr.inflights.push(li);
      } else if (pr.state === "probe") {
        pr.probeSent = true;
      }
    }
    return true;
  }
}
