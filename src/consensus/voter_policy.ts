// Automatic voter selection: which single-server membership change (if any) the leader
// should propose now, so the cluster keeps `targetVoters` live voters. A pure function of
// the leader's view (its Raft status plus what it knows about learners' storage): no
// clock, no I/O, deterministic, so the simulator tests it with fixed seeds and the real
// driver (src/cluster/raft_driver.ts) and the simulator node run the same code.
//
// Liveness is the time since a member last answered an append or a heartbeat, in whatever
// unit the thresholds use: leader ticks in the simulator (`RaftStatus.progress[id].idle`),
// wall-clock ms on real peers (the driver's own clock, so a slow event loop does not stretch
// the bound). A new leader counts everyone's silence from its own election, so after a
// leader change a dead voter is replaced one bound later.
//
// Rules, first match wins (each is one change; Raft refuses a second while one is
// uncommitted, and this function proposes nothing until then):
//   0. Not the leader, leaving the voter set, transferring, a change still uncommitted,
//      or fewer live voters than a quorum: nothing.
//   1. A voter silent for >= deadAfter, and either an eligible learner exists to take
//      its place or there are more voters than the target: remove it (the most silent
//      first, then the lowest id). Eligible learner: heard within freshWithin, durable
//      storage (a voter must never forget its vote or acknowledged entries), replicating
//      and at most maxLag entries behind the leader's log.
//   2. Fewer voters than the target: promote the eligible learner with the lowest id.
//   3. More voters than the target, all live: demote the highest-id voter other than the
//      leader to learner.
//   4. A learner silent for >= removeLearnersAfter (if > 0): remove it.
//
// So a dead voter is replaced in two steps: removed (rule 1), then the lowest-id eligible
// learner promoted (rule 2). Removing first, not promoting first, is deliberate: the
// learner's liveness is an estimate (it answered within freshWithin), and if it dies just
// as it is promoted, promote-first leaves n+1 voters with two dead (3 voters + 1: two of
// four live, no quorum, stuck until one returns), while remove-first leaves n voters with
// one dead, which still commits and gets the next replacement. Both pass through a state
// that tolerates no further failure (3 voters: 4 with one dead, or 2 all live), for one
// commit round. The randomized simulator test found the promote-first hang.
//
// Quorum safety: rule 1 keeps the live voters and the quorum does not grow; rule 2 adds a
// live voter (quorum(n+1) <= live+1 whenever quorum(n) <= live); rule 3 runs only when
// all n voters are live, and n-1 live voters are a quorum of n-1. So a change never
// leaves fewer live voters than a quorum of the new configuration.

import type { RaftStatus } from "./raft.js";
import type { ConfChange, ConfState, RaftId } from "./types.js";

/** Thresholds are in the unit of `PolicyMember.idle` (ticks in the simulator, ms on peers). */
export interface VoterPolicy {
  /** Voters the cluster keeps (3 or 5 are the sensible values). */
  targetVoters: number;
  /** A voter silent this long is dead and gets replaced. */
  deadAfter: number;
  /** A learner is promoted only if it answered within this. */
  freshWithin: number;
  /** A learner is promoted only if at most this many entries behind the leader. Default 32. */
  maxLag?: number;
  /** Remove learners silent this long (0: never). Default 0. */
  removeLearnersAfter?: number;
}

export interface PolicyMember {
  /** Time since the member last answered (the policy's unit). */
  idle: number;
  match: number;
  /** Replication state (probe, replicate, snapshot). */
  state: string;
}

/** What the leader knows when it decides. */
export interface PolicyView {
  self: RaftId;
  isLeader: boolean;
  /** Latest configuration in the leader's log, and the index of its entry. */
  conf: ConfState;
  confIndex: number;
  commit: number;
  lastIndex: number;
  transferring: boolean;
  members: Readonly<Record<RaftId, PolicyMember>>;
  /** Learners known to keep their Raft state on disk (only they may become voters). */
  durable: (id: RaftId) => boolean;
}

export interface VoterDecision {
  change: ConfChange;
  rule: "remove-dead-voter" | "promote" | "demote" | "remove-dead-learner";
  reason: string;
  /** remove-dead-voter: the learner that will take its place (promoted next), if any. */
  successor?: RaftId;
}

export function quorumOf(n: number): number {
  return (n >> 1) + 1;
}

/** The change the leader should propose now, or null. Pure and deterministic. */
export function decideVoterChange(p: VoterPolicy, v: PolicyView): VoterDecision | null {
  const { voters, learners } = v.conf;
  if (!v.isLeader || v.transferring || !voters.includes(v.self)) return null;
  if (v.confIndex > v.commit) return null; // the previous change is not committed yet
  const idle = (id: RaftId): number => (id === v.self ? 0 : (v.members[id]?.idle ?? Infinity));
  const dead = voters.filter((id) => idle(id) >= p.deadAfter);
  const live = voters.length - dead.length;
  if (live < quorumOf(voters.length)) return null; // cannot commit anything anyway: change nothing
  dead.sort((a, b) => idle(b) - idle(a) || (a < b ? -1 : a > b ? 1 : 0));

  const maxLag = p.maxLag ?? 32;
  const eligible = learners
    .filter((id) => {
      const m = v.members[id];
      return m !== undefined && m.idle <= p.freshWithin && m.state === "replicate" && v.lastIndex - m.match <= maxLag && v.durable(id);
    })
    .sort();

  if (dead.length > 0 && (eligible.length > 0 || voters.length > p.targetVoters)) {
    const d = dead[0]!;
    const next = voters.length - 1 < p.targetVoters ? eligible[0] : undefined;
    const why = next !== undefined ? `learner ${next} takes its place next` : `${voters.length} voters > target ${p.targetVoters}`;
    return { change: { type: "removeNode", node: d }, rule: "remove-dead-voter", ...(next !== undefined ? { successor: next } : {}), reason: `voter ${d} silent for ${idle(d)} (>= ${p.deadAfter}); ${why}` };
  }

  if (voters.length < p.targetVoters && eligible.length > 0) {
    const c = eligible[0]!;
    return { change: { type: "addVoter", node: c }, rule: "promote", reason: `${voters.length} voters < target ${p.targetVoters}: promoting learner ${c}` };
  }

  if (dead.length === 0 && voters.length > p.targetVoters) {
    const others = voters.filter((id) => id !== v.self).sort();
    const d = others[others.length - 1];
    if (d !== undefined) return { change: { type: "addLearner", node: d }, rule: "demote", reason: `${voters.length} live voters > target ${p.targetVoters}: demoting ${d} to learner` };
  }

  const gc = p.removeLearnersAfter ?? 0;
  if (gc > 0) {
    const gone = learners.filter((id) => idle(id) >= gc).sort();
    if (gone.length > 0) return { change: { type: "removeNode", node: gone[0]! }, rule: "remove-dead-learner", reason: `learner ${gone[0]} silent for ${idle(gone[0]!)} (>= ${gc})` };
  }
  return null;
}

/**
 * The policy view of a node from its status. `conf` is the latest configuration in the
 * log (what the leader replicates to), which is what `status().conf` reports. `idle`
 * defaults to the status' leader ticks; real peers pass their own clock's measure.
 */
export function policyViewOf(st: RaftStatus, durable: (id: RaftId) => boolean, idle?: (id: RaftId, ticks: number) => number): PolicyView {
  const members: Record<RaftId, PolicyMember> = {};
  for (const [id, pr] of Object.entries(st.progress ?? {})) members[id] = { idle: idle ? idle(id, pr.idle) : pr.idle, match: pr.match, state: pr.state };
  return {
    self: st.id,
    isLeader: st.role === "leader",
    conf: st.conf,
    confIndex: st.confIndex,
    commit: st.commit,
    lastIndex: st.lastIndex,
    transferring: st.leadTransferee !== null,
    members,
    durable,
  };
}
