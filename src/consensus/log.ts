// The in-memory Raft log: a snapshot boundary (snapIndex, snapTerm) followed by
// contiguous entries. It also tracks what the driver still has to persist (`unstable`)
// and apply (`applying` / `applied`).

import type { Entry, Snapshot } from "./types.js";

/** Thrown only when the core detects a broken Raft invariant (a bug, never bad input). */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RaftInvariantError";
  }
}

export class RaftLog {
  snapIndex = 0;
  snapTerm = 0;
  /** entries[k].index === snapIndex + 1 + k */
  entries: Entry[] = [];
  committed = 0;
  /** Highest index the application acknowledged as applied (advance). */
  applied = 0;
  /** Highest index handed to the application in a Ready. */
  applying = 0;
  /** First index not yet handed out for persistence. */
  unstable = 1;
  /** Latest snapshot (sent to followers whose next entry was compacted away). */
  snapshot: Snapshot | null = null;
  /** Snapshot to hand out in the next Ready. */
  pendingSnapshot: Snapshot | null = null;
  pendingInstall = false;
  /** Set by maybeAppend: first index written (entries from there on are new), or 0. */
  appendedFrom = 0;

  lastIndex(): number {
    return this.snapIndex + this.entries.length;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n === 0 ? this.snapTerm : this.entries[n - 1]!.term;
  }

  /** Term of the entry at `i`, or undefined if compacted away or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.snapIndex + this.entries.length) return undefined;
    return this.entries[i - this.snapIndex - 1]!.term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapIndex) return undefined;
    return this.entries[i - this.snapIndex - 1];
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi). Caller guarantees lo > snapIndex. */
  slice(lo: number, hi: number): Entry[] {
    const off = this.snapIndex + 1;
    return this.entries.slice(lo - off, hi - off);
  }

  /** Index of the first entry of `ents` that conflicts with (or extends) the log; 0 if all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (e.index <= this.snapIndex) continue; // covered by our snapshot: committed, so it matches
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (etcd's findConflictByTerm): the
   * follower's hint and the leader's probe target for fast backtracking.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.snapIndex; i--) {
      if (this.entries[i - this.snapIndex - 1]!.term <= term) return i;
    }
    return i; // snapIndex (its term is committed; the leader settles it with a snapshot if needed)
  }

  /** Append `ents` (contiguous), discarding any existing entries from ents[0].index on. */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    if (first <= this.committed) {
      throw new RaftInvariantError(`truncating committed entries: append at ${first} <= commit ${this.committed}`);
    }
    if (first > this.lastIndex() + 1) throw new RaftInvariantError(`gap in log: append at ${first} after ${this.lastIndex()}`);
    this.entries.length = first - this.snapIndex - 1;
    for (const e of ents) this.entries.push(e);
    if (first < this.unstable) this.unstable = first;
  }

  /**
   * Follower side of AppendEntries: if (index, logTerm) matches, append what is new and
   * advance commit; returns the last index covered by the message, or -1 on mismatch.
   */
  maybeAppend(index: number, logTerm: number, commit: number, ents: readonly Entry[]): number {
    this.appendedFrom = 0;
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      this.appendedFrom = ci;
      if (ci <= this.committed) throw new RaftInvariantError(`entry ${ci} conflicts with committed entry (commit ${this.committed})`);
      this.append(ents.slice(ci - index - 1));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  commitTo(i: number): boolean {
    if (i <= this.committed) return false;
    if (i > this.lastIndex()) throw new RaftInvariantError(`commit ${i} beyond last index ${this.lastIndex()}`);
    this.committed = i;
    return true;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restore(s: Snapshot): void {
    this.snapIndex = s.index;
    this.snapTerm = s.term;
    this.entries = [];
    this.committed = s.index;
    this.unstable = s.index + 1;
    this.snapshot = s;
    this.pendingSnapshot = s;
    this.pendingInstall = true;
  }

  /** Drop entries up to `s.index` (already applied and captured by the application's snapshot). */
  compact(s: Snapshot): void {
    const drop = s.index - this.snapIndex;
    this.entries = this.entries.slice(drop);
    this.snapIndex = s.index;
    this.snapTerm = s.term;
    this.snapshot = s;
    if (this.unstable <= s.index) this.unstable = s.index + 1;
    if (this.pendingInstall && this.pendingSnapshot !== null) {
      throw new RaftInvariantError("compaction while a received snapshot is still to be installed");
    }
    this.pendingSnapshot = s;
    this.pendingInstall = false;
  }

  hasUnstable(): boolean {
    return this.unstable <= this.lastIndex();
  }

  /** Committed entries not yet handed to the application. */
  hasNextCommitted(): boolean {
    return this.committed > Math.max(this.applying, this.snapIndex);
  }

  nextCommitted(): Entry[] {
    const lo = Math.max(this.applying, this.snapIndex) + 1;
    if (lo > this.committed) return [];
    return this.slice(lo, this.committed + 1);
  }
}
