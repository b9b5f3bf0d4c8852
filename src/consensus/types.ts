// Plain-data types of the Raft core: entries, hard state, snapshots, configurations,
// messages and the Ready batch. Everything here is JSON-able (no Maps, no classes), so a
// driver can put messages on the wire and entries on disk as they are.

/** A Raft member id (a libp2p peer id string on real peers, "n1".."n5" in the simulator). */
export type RaftId = string;

export type EntryType = "normal" | "config";

/**
 * One log entry. `normal` entries carry application data (a cluster-state command, or
 * null for the no-op a new leader appends); `config` entries carry the complete
 * {@link ConfState}, in effect on a node as soon as the entry is in its log (until a
 * truncation removes it).
 * Entries are immutable once created: the core shares them by reference.
 */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: unknown;
}

/** The voter set and the learners (non-voting members that receive the log). */
export interface ConfState {
  readonly voters: readonly RaftId[];
  readonly learners: readonly RaftId[];
}

/** What must be durable before any message of the same Ready is sent. */
export interface HardState {
  readonly term: number;
  /** Candidate voted for in `term`, or null. */
  readonly vote: RaftId | null;
  /** Highest index known committed (persisting it only saves work on restart). */
  readonly commit: number;
}

/** A snapshot of the application state machine covering the log up to `index`. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  /** The configuration in effect at `index`. */
  readonly conf: ConfState;
  /** Opaque, JSON-able application state (the cluster state machine's `snapshot()`). */
  readonly data: unknown;
}

/** Everything a node persisted; what a storage hands back on restart. */
export interface PersistedState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Contiguous entries starting at (snapshot?.index ?? 0) + 1. */
  readonly entries: readonly Entry[];
}

// ---- Messages ------------------------------------------------------------------------

interface Base {
  readonly from: RaftId;
  readonly to: RaftId;
  /** Sender's term; 0 for forwarded local requests (prop, readIndex, transferLeader). */
  readonly term: number;
}

/** AppendEntries: `entries` follow (index, logTerm); `commit` is the leader's commit index. */
export interface MsgApp extends Base {
  readonly type: "app";
  readonly index: number;
  readonly logTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * AppendEntries response. Accept: `index` is the follower's last matching index.
 * Reject: `index` echoes the rejected prev index, and (`rejectHint`, `logTerm`) name the
 * follower's best guess for where the logs may match (fast backtracking by term).
 */
export interface MsgAppResp extends Base {
  readonly type: "appResp";
  readonly index: number;
  readonly reject: boolean;
  readonly rejectHint: number;
  readonly logTerm: number;
}

/** RequestVote / PreVote. For preVote, `term` is the term the sender would campaign in. */
export interface MsgVote extends Base {
  readonly type: "vote" | "preVote";
  readonly index: number;
  readonly logTerm: number;
  /** Campaign started by a leadership transfer: bypasses the voters' leader lease. */
  readonly transfer: boolean;
}

export interface MsgVoteResp extends Base {
  readonly type: "voteResp" | "preVoteResp";
  readonly reject: boolean;
}

export interface MsgHeartbeat extends Base {
  readonly type: "heartbeat";
  readonly commit: number;
  /** Read-index round this heartbeat confirms leadership for, if any. */
  readonly context: string | null;
}

export interface MsgHeartbeatResp extends Base {
  readonly type: "heartbeatResp";
  readonly context: string | null;
}

/** InstallSnapshot (whole snapshot in one message: cluster state is small). */
export interface MsgSnap extends Base {
  readonly type: "snap";
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the target campaigns at once, skipping pre-vote. */
export interface MsgTimeoutNow extends Base {
  readonly type: "timeoutNow";
}

/** A proposal forwarded by a follower to its leader (term 0). */
export interface MsgProp extends Base {
  readonly type: "prop";
  readonly data: unknown;
}

/** A read-index request forwarded to the leader (term 0). */
export interface MsgReadIndex extends Base {
  readonly type: "readIndex";
  readonly context: string;
}

export interface MsgReadIndexResp extends Base {
  readonly type: "readIndexResp";
  readonly index: number;
  readonly context: string;
}

/** A leadership-transfer request forwarded to the leader (term 0). */
export interface MsgTransferLeader extends Base {
  readonly type: "transferLeader";
  readonly target: RaftId;
}

export type Message =
  | MsgApp
  | MsgAppResp
  | MsgVote
  | MsgVoteResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgTimeoutNow
  | MsgProp
  | MsgReadIndex
  | MsgReadIndexResp
  | MsgTransferLeader;

export type MessageType = Message["type"];

// ---- Outputs -------------------------------------------------------------------------

export type RaftRole = "follower" | "preCandidate" | "candidate" | "leader";

/** Volatile state worth showing (`dspex status`); not persisted. */
export interface SoftState {
  readonly lead: RaftId | null;
  readonly role: RaftRole;
  readonly term: number;
}

/** A linearizable read is safe once the state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

/**
 * One batch of work for the driver. Handle it in this order:
 *
 * 1. Persist, durably (fsync), in this order: `snapshot` (if any), then `entries`
 *    (first discarding stored entries with index >= entries[0].index), then `hardState`.
 * 2. Only then send `messages` (vote grants and append acks promise that step 1 happened).
 * 3. Install `snapshot` into the state machine if `installSnapshot`, then apply
 *    `committedEntries` in order; serve `readStates` once applied >= their index.
 * 4. Call `advance(ready)`.
 *
 * Readys must be processed one at a time, in the order they were produced.
 */
export interface Ready {
  /** Set when term, vote or commit changed since the last Ready. */
  readonly hardState: HardState | null;
  /** New or rewritten log entries (contiguous). */
  readonly entries: readonly Entry[];
  /**
   * A snapshot to persist. Stored entries with index <= snapshot.index become redundant;
   * when `installSnapshot` is true (it came from the leader) the whole stored log is
   * replaced by it, and the state machine must be restored from `snapshot.data`.
   */
  readonly snapshot: Snapshot | null;
  readonly installSnapshot: boolean;
  readonly messages: readonly Message[];
  /** Committed entries to apply to the state machine, in order. */
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Set when leader, role or term changed since the last Ready. */
  readonly softState: SoftState | null;
  /** True if anything must be fsynced before `messages` are sent. */
  readonly mustSync: boolean;
}

// ---- Errors as values ----------------------------------------------------------------

export type RaftErrorCode =
  | "NOT_LEADER" // this node is not the leader (leader hint given if known)
  | "NO_LEADER" // no leader known to forward to; retry after an election
  | "TRANSFER_IN_PROGRESS" // leadership is being transferred; retry on the new leader
  | "CONF_CHANGE_PENDING" // a membership change is not committed yet (one at a time)
  | "INVALID_CONF_CHANGE" // the change makes no sense for the current configuration
  | "NOT_APPLIED" // compaction past the applied index
  | "INVALID_ARGUMENT";

export interface RaftError {
  readonly code: RaftErrorCode;
  readonly message: string;
  readonly leader?: RaftId | null;
}

export type RaftResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: RaftError };

/** A single-server membership change (see README: one voter at a time). */
export type ConfChange =
  | { readonly type: "addVoter"; readonly node: RaftId } // also promotes a learner
  | { readonly type: "addLearner"; readonly node: RaftId } // also demotes a voter
  | { readonly type: "removeNode"; readonly node: RaftId };
