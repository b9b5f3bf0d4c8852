// Runs a RaftNode + the cluster state machine as a simulator ProtocolNode (connectionless
// mode). It is also the reference driver: a real peer does the same with a disk storage,
// setInterval ticks and the coordination channel.
//
// Per event: feed the core (tick / step), then drain Readys: persist (term, vote, commit,
// entries, snapshot into the node's durable simulator storage) -> send -> install snapshot
// / apply committed entries -> advance. On restart the factory reloads the persisted state,
// restores the state machine from the persisted snapshot, and the core re-delivers the
// committed entries after it.

import type { NodeContext, NodeEvent, NodeFactory, NodeInit, ProtocolNode } from "../sim/protocol.js";
import { ClusterState, type ApplyResult, type ClusterCommand } from "./cluster_state.js";
import { parseRaftMessage } from "./messages.js";
import { bootstrapState, RaftNode, type Proposed, type RaftConfig } from "./raft.js";
import { isEmptyState, KvRaftStorage, persistUpdateOf } from "./storage.js";
import type { ConfChange, ConfState, Entry, Message, RaftResult, ReadState, Ready } from "./types.js";
import { decideVoterChange, policyViewOf, type VoterDecision, type VoterPolicy } from "./voter_policy.js";

export interface RaftSimObserver {
  /** After the Ready was persisted, before its messages are sent. */
  onReady?(node: RaftSimNode, rd: Ready, now: number): void;
  onApply?(node: RaftSimNode, entry: Entry, result: ApplyResult, now: number): void;
  /** After every handled event (and every external call), once all Readys are drained. */
  afterEvent?(node: RaftSimNode, now: number): void;
  /** The leader's voter policy chose a change (called before it is proposed). */
  onVoterDecision?(node: RaftSimNode, d: VoterDecision, now: number): void;
}

export interface RaftSimOptions {
  /** The founding configuration. Nodes named in it bootstrap with it; others start empty and join. */
  initial: ConfState;
  /** Virtual ms per Raft tick. Default 10. */
  tickMs?: number;
  /** Core tunables (id and random are supplied by the adapter). */
  raft?: Omit<Partial<RaftConfig>, "id" | "random">;
  /** Compact the log when this many applied entries are above the snapshot (0: never). Default 0. */
  compactEvery?: number;
  /** Validate every received message with zod (as a real peer must). Default false (speed). */
  validate?: boolean;
  observer?: RaftSimObserver;
  /**
   * Run automatic voter selection on the leader after every tick (as the real driver does).
   * `durable` says which members keep state on disk (default: all; in the simulator every
   * node's storage survives crashes).
   */
  voterPolicy?: VoterPolicy & { durable?: (id: string) => boolean };
}

export class RaftSimNode implements ProtocolNode<Message> {
  readonly id: string;
  readonly raft: RaftNode;
  readonly state = new ClusterState();
  readonly storage: KvRaftStorage;
  readonly incarnation: number;
  /** Read states delivered to this node, oldest first (served once applied >= index). */
  readonly readStates: ReadState[] = [];
  /** Messages rejected by validation. */
  invalidMessages = 0;
  private ctx: NodeContext<Message> | null = null;
  private readonly tickMs: number;
  private readonly compactEvery: number;
  private readonly validate: boolean;
  private readonly observer: RaftSimObserver | undefined;
  private readonly voterPolicy: RaftSimOptions["voterPolicy"];
  /** Changes this node's voter policy proposed (and whether Raft accepted them). */
  readonly voterDecisions: Array<VoterDecision & { at: number; accepted: boolean }> = [];

  constructor(init: NodeInit, opts: RaftSimOptions) {
    if (typeof init.id !== "string") throw new TypeError("raft simulator node ids must be strings");
    this.id = init.id;
    this.incarnation = init.incarnation;
    this.tickMs = opts.tickMs ?? 10;
    this.compactEvery = opts.compactEvery ?? 0;
    this.validate = opts.validate ?? false;
    this.observer = opts.observer;
    this.voterPolicy = opts.voterPolicy;
    this.storage = new KvRaftStorage(init.storage);
    let persisted = this.storage.load();
    const founding = opts.initial.voters.includes(this.id) || opts.initial.learners.includes(this.id);
    if (isEmptyState(persisted) && founding) {
      const b = bootstrapState(opts.initial);
      this.storage.persist({ hardState: b.hardState, entries: b.entries, snapshot: null, resetLog: false });
      persisted = this.storage.load();
    }
    if (persisted.snapshot !== null) {
      const r = this.state.restore(persisted.snapshot.data);
      if (!r.ok) throw new Error(`node ${this.id}: persisted snapshot unusable: ${r.message}`);
    }
    const rng = init.rng;
    this.raft = new RaftNode({ ...opts.raft, id: this.id, random: () => rng.next() }, persisted);
  }

  handle(ev: NodeEvent<Message>, ctx: NodeContext<Message>): void {
    switch (ev.type) {
      case "start":
        this.ctx = ctx;
        ctx.setTimer("tick", this.tickMs);
        break;
      case "timer":
        if (ev.name !== "tick") return;
        this.raft.tick();
        ctx.setTimer("tick", this.tickMs);
        if (this.voterPolicy !== undefined && this.raft.role === "leader") {
          this.drain(ctx.now);
          const durable = this.voterPolicy.durable ?? (() => true);
          const d = decideVoterChange(this.voterPolicy, policyViewOf(this.raft.status(), durable));
          if (d !== null) {
            this.observer?.onVoterDecision?.(this, d, ctx.now);
            this.voterDecisions.push({ ...d, at: ctx.now, accepted: this.raft.proposeConfChange(d.change).ok });
          }
        }
        break;
      case "message": {
        let m = ev.msg;
        if (this.validate) {
          const r = parseRaftMessage(m, String(ev.from));
          if (!r.ok) {
            this.invalidMessages++;
            return;
          }
          m = r.message;
        }
        this.raft.step(m);
        break;
      }
      default:
        return;
    }
    this.drain(ctx.now);
  }

  /** Propose a cluster command (callable from `sim.at` callbacks while the node is up). */
  propose(cmd: ClusterCommand | unknown): RaftResult<Proposed> {
    const r = this.raft.propose(cmd);
    this.drainExternal();
    return r;
  }

  proposeConfChange(cc: ConfChange): ReturnType<RaftNode["proposeConfChange"]> {
    const r = this.raft.proposeConfChange(cc);
    this.drainExternal();
    return r;
  }

  readIndex(context: string): ReturnType<RaftNode["readIndex"]> {
    const r = this.raft.readIndex(context);
    this.drainExternal();
    return r;
  }

  transferLeadership(target: string): ReturnType<RaftNode["transferLeadership"]> {
    const r = this.raft.transferLeadership(target);
    this.drainExternal();
    return r;
  }

  campaign(): void {
    this.raft.campaign();
    this.drainExternal();
  }

  private drainExternal(): void {
    if (this.ctx === null) throw new Error(`node ${this.id} has not started`);
    this.drain(this.ctx.now);
  }

  private drain(now: number): void {
    const raft = this.raft;
    const ctx = this.ctx!;
    while (raft.hasReady()) {
      const rd = raft.ready();
      this.storage.persist(persistUpdateOf(rd));
      this.observer?.onReady?.(this, rd, now);
      for (const m of rd.messages) ctx.send(m.to, m);
      if (rd.installSnapshot && rd.snapshot !== null) {
        const r = this.state.restore(rd.snapshot.data);
        if (!r.ok) throw new Error(`node ${this.id}: snapshot from leader unusable: ${r.message}`);
      }
      for (const e of rd.committedEntries) {
        const res = this.state.apply(e);
        this.observer?.onApply?.(this, e, res, now);
      }
      for (const rs of rd.readStates) this.readStates.push(rs);
      raft.advance(rd);
      const applied = raft.log.applied;
      if (this.compactEvery > 0 && applied - raft.log.snapIndex >= this.compactEvery && this.state.appliedIndex === applied) {
        raft.compact(applied, this.state.snapshot());
      }
    }
    this.observer?.afterEvent?.(this, now);
  }
}

/** A simulator node factory for `sim.addNode(id, raftSimFactory(opts))`. */
export function raftSimFactory(opts: RaftSimOptions): NodeFactory<Message> {
  return (init) => new RaftSimNode(init, opts);
}
