// Leader-side replication progress of one follower or learner (etcd's tracker.Progress).
//
// probe:     next is a guess; at most one append in flight, then wait for the answer
//            (or the next heartbeat) before sending another.
// replicate: the follower is caught up to `match`; appends stream optimistically, at most
//            `maxInflight` messages unacknowledged.
// snapshot:  a snapshot was sent; wait for its acknowledgement (or re-probe after an
//            election timeout, in case it was lost).

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** Probe state: an append is in flight. */
  probeSent = false;
  /** Snapshot state: index of the snapshot sent, and the leader tick it was sent at. */
  pendingSnapshot = 0;
  snapshotSentAt = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Leader tick at which this member last answered (or joined the leader's view). */
  lastHeard = 0;
  /** Last indexes of unacknowledged appends (replicate state). */
  inflights: number[] = [];

  constructor(
    next: number,
    readonly maxInflight: number,
    public isLearner: boolean,
  ) {
    this.next = next;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.length = 0;
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      const ps = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, ps + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number, tick: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = index;
    this.snapshotSentAt = tick;
  }

  /** An append was acknowledged up to `n`. Returns true if `match` moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /**
   * An append with prev index `rejected` was refused; `matchHint` is where the logs may
   * match. Returns false if the rejection is stale (out of order).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.length >= this.maxInflight;
      case "snapshot":
        return true;
    }
  }

  /** Acknowledge in-flight appends up to `index`. */
  freeLE(index: number): void {
    let k = 0;
    while (k < this.inflights.length && this.inflights[k]! <= index) k++;
    if (k > 0) this.inflights.splice(0, k);
  }

  freeFirst(): void {
    this.inflights.shift();
  }
}
