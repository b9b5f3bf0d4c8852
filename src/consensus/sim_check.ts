// Randomized fault schedules for Raft in the simulator, with online checks of the Raft
// safety properties (Figure 3 of the paper) and a liveness measurement after faults heal.
// Used by the property test (test/consensus/property.test.ts) and bench/consensus.ts.
//
// Replay a schedule: runSchedule({ ...options, seed }) is a pure function of its options;
// pass `trace: true` to collect a readable log of the run.

import { createRng, type Rng } from "../sim/rng.js";
import { randomFaultPlan, type TimedFault } from "../sim/faults.js";
import { SimProtocolError, Simulator } from "../sim/simulator.js";
import { fnv64, type ClusterCommand } from "./cluster_state.js";
import { raftSimFactory, RaftSimNode, type RaftSimObserver } from "./sim_node.js";
import type { ConfChange, Entry, Message } from "./types.js";

export interface ScheduleOptions {
  seed: number;
  /** Cluster size (all start as voters, unless `membership`). */
  nodes: number;
  /** Faults happen in [0, faultMs); at faultMs everything restarts and heals. Default 1500. */
  faultMs?: number;
  /** Time allowed after the heal for a leader to emerge (virtual ms). Default 3000. */
  boundMs?: number;
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Core switches and limits (default: drawn per seed, so schedules cover every mode). */
  preVote?: boolean;
  checkQuorum?: boolean;
  maxEntriesPerMsg?: number;
  /** Mean gap between client proposals (virtual ms). Default 30. */
  proposalEveryMs?: number;
  /** Compact logs every N applied entries (exercises InstallSnapshot). Default 8. */
  compactEvery?: number;
  /** Start with 3 voters + learners and apply random single-server changes during faults. */
  membership?: boolean;
  /** Fault mix (maxima; actual counts are drawn per seed). */
  maxCrashes?: number;
  maxPartitions?: number;
  maxDegradations?: number;
  /** Most adversarial crashes (of a fresh leader or a node that just voted). Default 6. */
  maxLeaderCrashes?: number;
  /** Restart delay range for random crashes, ms. Default [5, 150]. */
  restartDelayMs?: readonly [number, number];
  /** Collect a human-readable trace (slow). */
  trace?: boolean;
  /**
   * Paranoid mode (slower): structured-clone durable storage on every write and read, and
   * deep-freeze every message, so aliasing between memory, storage and peers cannot hide;
   * and validate every received message with the wire schema.
   * Default false: the core never mutates entries, hard states or snapshots it handed out.
   */
  paranoid?: boolean;
}

export interface ScheduleResult {
  seed: number;
  nodes: number;
  membership: boolean;
  violations: string[];
  /** Virtual ms from the heal until a leader is known by every member in its term; null if not within boundMs. */
  leaderAfterHealMs: number | null;
  /** Virtual ms from the heal until a command proposed after it is applied by every member; null if not within boundMs. */
  commitAfterHealMs: number | null;
  /** Highest term reached, leaders elected (distinct terms), highest commit index. */
  maxTerm: number;
  leaders: number;
  maxCommit: number;
  snapshotsInstalled: number;
  confChanges: number;
  events: number;
  messages: number;
  plan: TimedFault[];
  /** Final status of every live node (for failure reports). */
  final: Array<{ id: string; role: string; term: number; lead: string | null; commit: number; applied: number; last: number; voters: readonly string[]; learners: readonly string[]; progress?: unknown }>;
  trace?: string[];
}

interface CommitRecord {
  entryTerm: number;
  /** Upper bound on the term in which the entry was committed (lowest term of a node seen knowing it committed). */
  commitTerm: number;
  digest: string;
}

const digestCache = new WeakMap<Entry, string>();
function entryDigest(e: Entry): string {
  let d = digestCache.get(e);
  if (d === undefined) {
    d = fnv64(e.type + ":" + JSON.stringify(e.data ?? null));
    digestCache.set(e, d);
  }
  return d;
}

/** Online checker of Election Safety, Log Matching, Leader Completeness and State Machine Safety. */
export class SafetyMonitor implements RaftSimObserver {
  readonly violations: string[] = [];
  /** term -> leader id */
  readonly leaders = new Map<number, string>();
  /** "index:term" -> digest of data + term of the previous entry (Log Matching, by induction) */
  private readonly logIndex = new Map<string, { digest: string; prevTerm: number | undefined }>();
  /** index -> what was committed there */
  readonly committed: Array<CommitRecord | undefined> = [];
  maxCommit = 0;
  private readonly leaderSeen = new WeakMap<RaftSimNode, { term: number; commit: number }>();
  snapshotsInstalled = 0;
  confChanges = 0;

  /** Called the first time a leader of a new term is seen (adversarial schedules hook in here). */
  onNewLeader: ((node: RaftSimNode, now: number) => void) | undefined;
  /** Called when a node grants a (real) vote. */
  onVoteGranted: ((node: RaftSimNode, now: number) => void) | undefined;

  constructor(private readonly seed: number) {}

  private fail(now: number, what: string): void {
    if (this.violations.length < 20) this.violations.push(`seed=${this.seed} t=${now.toFixed(3)}: ${what}`);
  }

  onReady(node: RaftSimNode, rd: import("./types.js").Ready, now: number): void {
    if (rd.installSnapshot) this.snapshotsInstalled++;
    if (this.onVoteGranted !== undefined) {
      for (const m of rd.messages) if (m.type === "voteResp" && !m.reject) this.onVoteGranted(node, now);
    }
    for (const e of rd.entries) {
      const key = e.index + ":" + e.term;
      const prevTerm = node.raft.log.term(e.index - 1);
      const d = entryDigest(e);
      const seen = this.logIndex.get(key);
      if (seen === undefined) this.logIndex.set(key, { digest: d, prevTerm });
      else {
        if (seen.digest !== d) this.fail(now, `Log Matching: node ${node.id} has a different entry at index ${e.index} term ${e.term}`);
        if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
          this.fail(now, `Log Matching: node ${node.id} entry ${e.index}@${e.term} follows term ${prevTerm}, elsewhere ${seen.prevTerm}`);
        }
        if (seen.prevTerm === undefined && prevTerm !== undefined) seen.prevTerm = prevTerm;
      }
    }
  }

  private recordCommitted(node: RaftSimNode, index: number, entryTerm: number, digest: string | undefined, now: number): void {
    const term = node.raft.term;
    const c = this.committed[index];
    if (c === undefined) {
      this.committed[index] = { entryTerm, commitTerm: term, digest: digest ?? "" };
      if (index > this.maxCommit) this.maxCommit = index;
      return;
    }
    if (c.entryTerm !== entryTerm) this.fail(now, `State Machine Safety: node ${node.id} committed term ${entryTerm} at index ${index}, elsewhere term ${c.entryTerm}`);
    if (digest !== undefined) {
      if (c.digest === "") c.digest = digest;
      else if (c.digest !== digest) this.fail(now, `State Machine Safety: node ${node.id} applied different data at index ${index}`);
    }
    if (term < c.commitTerm) c.commitTerm = term;
  }

  onApply(node: RaftSimNode, e: Entry, _r: unknown, now: number): void {
    if (e.type === "config") this.confChanges++;
    this.recordCommitted(node, e.index, e.term, entryDigest(e), now);
  }

  afterEvent(node: RaftSimNode, now: number): void {
    const raft = node.raft;
    if (raft.role !== "leader") return;
    const term = raft.term;
    const known = this.leaders.get(term);
    if (known === undefined) {
      this.leaders.set(term, node.id);
      this.checkCompleteness(node, now);
      this.onNewLeader?.(node, now);
    } else if (known !== node.id) {
      this.fail(now, `Election Safety: ${known} and ${node.id} are both leaders of term ${term}`);
    }
    // Leaders advance the commit index: record what they commit.
    const log = raft.log;
    const seen = this.leaderSeen.get(node);
    const from = seen !== undefined && seen.term === term ? seen.commit + 1 : 1;
    for (let i = Math.max(log.snapIndex + 1, from); i <= log.committed; i++) {
      if (this.committed[i] === undefined || this.committed[i]!.commitTerm > term) this.recordCommitted(node, i, log.term(i)!, entryDigest(log.entry(i)!), now);
    }
    this.leaderSeen.set(node, { term, commit: log.committed });
  }

  private checkCompleteness(node: RaftSimNode, now: number): void {
    const log = node.raft.log;
    const T = node.raft.term;
    for (let i = 1; i <= this.maxCommit; i++) {
      const c = this.committed[i];
      if (c === undefined || c.commitTerm >= T) continue;
      if (i < log.snapIndex) continue; // inside the snapshot (committed prefix)
      const t = log.term(i);
      if (t !== c.entryTerm) {
        this.fail(now, `Leader Completeness: leader ${node.id} of term ${T} lacks entry ${i}@${c.entryTerm} committed by term ${c.commitTerm} (has ${t ?? "nothing"})`);
        return;
      }
    }
  }
}

function member(ids: readonly string[], k: number): string {
  return ids[k % ids.length]!;
}

function command(rng: Rng, n: number): ClusterCommand | unknown {
  const r = rng.next();
  if (r < 0.1) return { type: "setTopology", name: rng.pick(["full-mesh", "hyparview", "client-server", "static"]), options: { k: rng.int(8) } };
  if (r < 0.25) return { type: "createJob", jobId: `job${rng.int(5)}`, spec: { kind: "evaluate", n } };
  if (r < 0.3) return { type: "setJobStatus", jobId: `job${rng.int(5)}`, status: rng.pick(["running", "done", "pending", "failed"]) };
  if (r < 0.33) return { type: "bogus", junk: n }; // rejected identically everywhere
  return { type: "checkpoint", jobId: `job${rng.int(5)}`, tasks: [{ taskId: `t${n}`, digest: `d${n}` }], requestId: `r${n}` };
}

/** Current leader with the highest term among live nodes (undefined if none). */
function currentLeader(sim: Simulator<Message>, ids: readonly string[]): RaftSimNode | undefined {
  let best: RaftSimNode | undefined;
  for (const id of ids) {
    const n = sim.node<RaftSimNode>(id);
    if (n !== undefined && n.raft.role === "leader" && (best === undefined || n.raft.term > best.raft.term)) best = n;
  }
  return best;
}

/** A leader whose whole configuration is up, in its term, and following it. */
function stableLeader(sim: Simulator<Message>, ids: readonly string[]): RaftSimNode | undefined {
  const l = currentLeader(sim, ids);
  if (l === undefined || !l.raft.isVoter()) return undefined; // a leader leaving the voter set is not settled
  const conf = l.raft.conf;
  for (const id of [...conf.voters, ...conf.learners]) {
    const n = sim.node<RaftSimNode>(id);
    if (n === undefined || n.raft.term !== l.raft.term || n.raft.lead !== l.id) return undefined;
  }
  return l;
}

/** Run one randomized fault schedule. Deterministic in its options. */
export function runSchedule(o: ScheduleOptions): ScheduleResult {
  const seed = o.seed;
  const faultMs = o.faultMs ?? 1500;
  const boundMs = o.boundMs ?? 3000;
  const membership = o.membership ?? false;
  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const shape = createRng(seed, "shape");
  const work = createRng(seed, "workload");
  const monitor = new SafetyMonitor(seed);
  const traceLines: string[] | undefined = o.trace ? [] : undefined;
  const sim = new Simulator<Message>({
    seed,
    connectionless: true,
    cloneStorage: o.paranoid ?? false,
    freezeMessages: o.paranoid ?? false,
    network: { minLatencyMs: 1, maxLatencyMs: 10, lossRate: 0.01, duplicateRate: 0.01, reorderRate: 0.02, reorderDelayMs: 30 },
    trace: traceLines
      ? (r) => {
          if (r.kind === "event" && r.event.type === "timer") return;
          traceLines.push(`${r.time.toFixed(3)} ${JSON.stringify(r, (_k, v) => (typeof v === "object" && v !== null && "entries" in v ? { ...v, entries: `[${(v as { entries: unknown[] }).entries.length}]` } : v))}`);
        }
      : undefined,
  });
  const voters = membership ? ids.slice(0, 3) : ids;
  const learners = membership ? ids.slice(3) : [];
  const factory = raftSimFactory({
    initial: { voters, learners },
    tickMs: o.tickMs ?? 10,
    raft: {
      electionTick: o.electionTick ?? 10,
      heartbeatTick: o.heartbeatTick ?? 2,
      preVote: o.preVote ?? shape.next() < 0.75,
      checkQuorum: o.checkQuorum ?? shape.next() < 0.75,
      maxEntriesPerMsg: o.maxEntriesPerMsg ?? shape.pick([1, 2, 64]),
    },
    compactEvery: o.compactEvery ?? 8,
    validate: o.paranoid ?? false,
    observer: monitor,
  });
  for (const id of ids) sim.addNode(id, factory);

  const plan = randomFaultPlan(seed, {
    nodes: ids,
    durationMs: faultMs,
    crashes: shape.int((o.maxCrashes ?? 8) + 1),
    partitions: shape.int((o.maxPartitions ?? 2) + 1),
    degradations: shape.int((o.maxDegradations ?? 1) + 1),
    restartDelayMs: o.restartDelayMs ?? [5, 150],
    degradedNetwork: { lossRate: 0.2, duplicateRate: 0.1, reorderRate: 0.3, reorderDelayMs: 150 },
  });
  // Adversary: crash fresh leaders and fresh voters right after they act (Figure 8 and
  // lost-vote interleavings), restart them shortly after. Drawn from the seed like the rest.
  const adversary = createRng(seed, "adversary");
  let budget = shape.int((o.maxLeaderCrashes ?? 6) + 1);
  const [rmin, rmax] = o.restartDelayMs ?? [5, 150];
  const strike = (id: string, now: number, within: number, p: number): void => {
    if (budget <= 0 || now >= faultMs || adversary.next() >= p) return;
    budget--;
    const at = now + adversary.range(0, within);
    const back = Math.min(at + adversary.range(1, rmax - rmin + 1), faultMs);
    sim.at(at, () => {
      if (sim.crash(id)) sim.at(back, () => sim.restart(id));
    });
  };
  monitor.onNewLeader = (node, now) => strike(node.id, now, 15, 0.3);
  monitor.onVoteGranted = (node, now) => strike(node.id, now, 3, 0.05);
  sim.schedule(plan);

  // Client workload: proposals to random live nodes (followers forward to the leader).
  let n = 0;
  const every = o.proposalEveryMs ?? 30;
  for (let t = work.range(0, every); t < faultMs; t += work.range(0.5 * every, 1.5 * every)) {
    const target = member(ids, work.int(ids.length));
    const cmd = command(work, n++);
    sim.at(t, () => sim.node<RaftSimNode>(target)?.propose(cmd));
  }
  // Membership churn: random single-server changes on the current leader.
  if (membership) {
    for (let t = work.range(50, 250); t < faultMs; t += work.range(100, 300)) {
      const pick = work.next();
      const who = member(ids, work.int(ids.length));
      sim.at(t, () => {
        const l = currentLeader(sim, ids);
        if (l === undefined) return;
        const c = l.raft.conf;
        // Keep 3..5 voters; any member may be demoted or removed, the leader included.
        let cc: ConfChange;
        const nonVoter = ids.find((x) => !c.voters.includes(x) && x >= who) ?? ids.find((x) => !c.voters.includes(x));
        if (c.voters.length < 3 || (pick < 0.4 && c.voters.length < 5 && nonVoter !== undefined)) {
          if (nonVoter === undefined) return;
          cc = { type: "addVoter", node: nonVoter };
        } else if (pick < 0.7 && (c.voters.length > 3 || !c.voters.includes(who))) cc = { type: "removeNode", node: who };
        else if (c.voters.length > 3 || !c.voters.includes(who)) cc = { type: "addLearner", node: who };
        else return;
        l.proposeConfChange(cc);
      });
    }
  }

  const violations = monitor.violations;
  let leaderAfterHealMs: number | null = null;
  let commitAfterHealMs: number | null = null;
  try {
    sim.run({ until: faultMs });
    // After the heal: wait for a stable leader, then for one command proposed on it to
    // be applied by every member of its configuration (re-proposed if a leader change
    // swallowed it). Polled every 5 virtual ms.
    let target: { index: number; members: string[] } | undefined;
    let tries = 0;
    const poll = (): void => {
      if (leaderAfterHealMs === null) {
        if (stableLeader(sim, ids) !== undefined) leaderAfterHealMs = sim.now - faultMs;
      }
      if (leaderAfterHealMs !== null && commitAfterHealMs === null) {
        if (target !== undefined && target.members.every((id) => (sim.node<RaftSimNode>(id)?.raft.log.applied ?? 0) >= target!.index)) {
          commitAfterHealMs = sim.now - faultMs;
          return;
        }
        const l = stableLeader(sim, ids);
        if (l !== undefined && (target === undefined || l.raft.log.term(target.index) === undefined || tries % 20 === 19)) {
          const p = l.propose({ type: "noop", requestId: `after-heal-${seed}-${tries}` });
          if (p.ok && p.value.index !== undefined) target = { index: p.value.index, members: [...l.raft.conf.voters, ...l.raft.conf.learners] };
        }
        tries++;
      }
      if (commitAfterHealMs === null && sim.now < faultMs + boundMs) sim.after(5, poll);
    };
    sim.at(faultMs, poll);
    sim.run({ until: faultMs + boundMs, stopWhen: () => commitAfterHealMs !== null, checkEvery: 1 });
    // Same applied index => same state machine.
    const byIndex = new Map<number, string>();
    for (const id of ids) {
      const node = sim.node<RaftSimNode>(id);
      if (node === undefined) continue;
      const d = node.state.digest();
      const prev = byIndex.get(node.state.appliedIndex);
      if (prev !== undefined && prev !== d) violations.push(`seed=${seed}: state machines differ at applied index ${node.state.appliedIndex}`);
      byIndex.set(node.state.appliedIndex, d);
    }
  } catch (e) {
    violations.push(e instanceof SimProtocolError ? e.message : `seed=${seed}: ${e instanceof Error ? e.stack : String(e)}`);
  }
  let maxTerm = 0;
  for (const id of ids) maxTerm = Math.max(maxTerm, sim.node<RaftSimNode>(id)?.raft.term ?? 0);
  const final: ScheduleResult["final"] = [];
  for (const id of ids) {
    const r = sim.node<RaftSimNode>(id)?.raft;
    if (r) final.push({ id, role: r.role, term: r.term, lead: r.lead, commit: r.log.committed, applied: r.log.applied, last: r.log.lastIndex(), voters: r.conf.voters, learners: r.conf.learners, progress: r.status().progress });
  }
  const m = sim.metrics();
  const result: ScheduleResult = {
    seed,
    nodes: o.nodes,
    membership,
    violations,
    leaderAfterHealMs,
    commitAfterHealMs,
    maxTerm,
    leaders: monitor.leaders.size,
    maxCommit: monitor.maxCommit,
    snapshotsInstalled: monitor.snapshotsInstalled,
    confChanges: monitor.confChanges,
    events: m.events,
    messages: m.messages.sent,
    plan,
    final,
  };
  if (traceLines) result.trace = traceLines;
  return result;
}

/** The standard mix of the property test: seed -> options. */
export function propertyScheduleOptions(seed: number): ScheduleOptions {
  const kind = seed % 4;
  return { seed, nodes: kind === 1 || kind === 3 ? 5 : 3, membership: kind === 3 };
}
