// Where a RaftNode's durable state lives. The core never calls storage itself: the driver
// loads a PersistedState once at start, then hands each Ready's durable part to
// `persist` before sending that Ready's messages.
//
// Contract for every implementation (and what a disk implementation must fsync):
//
//   persist(u) applies, in this order, and is durable when it returns (or its promise
//   resolves):
//     1. u.snapshot: store it. If u.resetLog, discard every stored entry; otherwise
//        discard stored entries with index <= snapshot.index (may be done lazily: load()
//        skips them).
//     2. u.entries: discard stored entries with index >= entries[0].index, then append.
//     3. u.hardState: store it (term, vote, commit).
//
//   Why before sending: a vote grant promises the voter will not vote for anyone else in
//   that term (vote must survive a crash); an append ack lets the leader count this node
//   towards a commit (entries must survive a crash); a snapshot ack moves the leader past
//   entries it may then discard. The commit index in the hard state is an optimisation
//   only (losing it is safe: it is relearned from the leader).
//
//   A crash in the middle of persist must leave a state from which load() returns either
//   the old or the new snapshot/hard state and a log that is a prefix of the new one
//   (e.g. append-only WAL records with checksums, torn tail ignored; snapshot files
//   written to a temp name, fsynced, renamed, and the directory fsynced, before the WAL
//   record that refers to them).

import type { Entry, HardState, PersistedState, Ready, Snapshot } from "./types.js";

/** The durable part of one Ready. */
export interface PersistUpdate {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  /** The snapshot came from the leader and replaces the whole log. */
  readonly resetLog: boolean;
}

export function persistUpdateOf(rd: Ready): PersistUpdate {
  return { hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, resetLog: rd.installSnapshot };
}

export interface RaftStorage {
  /** Everything persisted so far (called once, when the node starts). */
  load(): PersistedState;
  /** Make `u` durable (see the contract above) before the Ready's messages are sent. */
  persist(u: PersistUpdate): void | Promise<void>;
}

/** True if `s` holds no Raft state at all (a fresh node: bootstrap or join). */
export function isEmptyState(s: PersistedState): boolean {
  return s.snapshot === null && s.entries.length === 0 && s.hardState.term === 0 && s.hardState.vote === null;
}

const ZERO_HS: HardState = { term: 0, vote: null, commit: 0 };

/** In-memory storage (unit tests; a process that accepts losing everything on exit). */
export class MemoryRaftStorage implements RaftStorage {
  private hs: HardState = ZERO_HS;
  private snap: Snapshot | null = null;
  private log: Entry[] = [];
  /** Number of persist calls that had something durable to write. */
  syncs = 0;

  constructor(initial?: PersistedState) {
    if (initial) {
      this.hs = initial.hardState;
      this.snap = initial.snapshot;
      this.log = [...initial.entries];
    }
  }

  load(): PersistedState {
    return { hardState: this.hs, snapshot: this.snap, entries: [...this.log] };
  }

  persist(u: PersistUpdate): void {
    if (u.snapshot === null && u.entries.length === 0 && u.hardState === null) return;
    this.syncs++;
    if (u.snapshot !== null) {
      const si = u.snapshot.index;
      this.snap = u.snapshot;
      this.log = u.resetLog ? [] : this.log.filter((e) => e.index > si);
    }
    if (u.entries.length > 0) {
      const first = u.entries[0]!.index;
      this.log = this.log.filter((e) => e.index < first);
      this.log.push(...u.entries);
    }
    if (u.hardState !== null) this.hs = u.hardState;
  }
}

/** A minimal durable key-value store (the simulator's DurableStorage fits it). */
export interface KvStore {
  get<T = unknown>(key: string): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): boolean;
}

interface Range {
  first: number;
  last: number;
}

/**
 * Raft storage over a key-value store, one key per entry, so each persist writes only what
 * changed: "raft/hs", "raft/snap", "raft/range" {first, last}, "raft/e/<index>". Each `set`
 * is assumed durable and the whole persist atomic w.r.t. crashes (true in the simulator,
 * where a crash cannot interrupt a handler).
 */
export class KvRaftStorage implements RaftStorage {
  private range: Range;

  constructor(private readonly kv: KvStore, private readonly prefix = "raft/") {
    this.range = kv.get<Range>(prefix + "range") ?? { first: 1, last: 0 };
  }

  load(): PersistedState {
    const hardState = this.kv.get<HardState>(this.prefix + "hs") ?? ZERO_HS;
    const snapshot = this.kv.get<Snapshot>(this.prefix + "snap") ?? null;
    const entries: Entry[] = [];
    const from = Math.max(this.range.first, (snapshot?.index ?? 0) + 1);
    for (let i = from; i <= this.range.last; i++) {
      const e = this.kv.get<Entry>(this.prefix + "e/" + i);
      if (e === undefined) break;
      entries.push(e);
    }
    return { hardState, snapshot, entries };
  }

  persist(u: PersistUpdate): void {
    const p = this.prefix;
    let { first, last } = this.range;
    let rangeChanged = false;
    if (u.snapshot !== null) {
      const si = u.snapshot.index;
      this.kv.set(p + "snap", u.snapshot);
      const dropTo = u.resetLog ? last : Math.min(si, last);
      for (let i = first; i <= dropTo; i++) this.kv.delete(p + "e/" + i);
      if (u.resetLog) {
        first = si + 1;
        last = si;
      } else {
        first = Math.max(first, si + 1);
        if (last < si) last = si;
      }
      rangeChanged = true;
    }
    if (u.entries.length > 0) {
      const start = u.entries[0]!.index;
      for (let i = Math.max(start, first); i <= last; i++) this.kv.delete(p + "e/" + i);
      if (last < start - 1 || first > start) first = start; // (re)start the range
      for (const e of u.entries) this.kv.set(p + "e/" + e.index, e);
      last = u.entries[u.entries.length - 1]!.index;
      rangeChanged = true;
    }
    if (rangeChanged) {
      this.range = { first, last };
      this.kv.set(p + "range", this.range);
    }
    if (u.hardState !== null) this.kv.set(p + "hs", u.hardState);
  }
}
