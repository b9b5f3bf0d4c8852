// A hand-driven network of RaftNodes for unit tests: messages queue up and are delivered
// only when the test says so, optionally filtered, so scenarios (Figure 8, partitions,
// lost messages) are exact. Every failure names its seed.
import { expect } from "vitest";
import { createRng } from "../../src/sim/rng.js";
import { ClusterState } from "../../src/consensus/cluster_state.js";
import { bootstrapState, emptyState, RaftNode, type RaftConfig } from "../../src/consensus/raft.js";
import { MemoryRaftStorage, persistUpdateOf } from "../../src/consensus/storage.js";
import type { ConfState, Entry, Message, ReadState } from "../../src/consensus/types.js";

export function expectFor(seed: number | string, what = ""): <T>(actual: T, detail?: string) => ReturnType<typeof expect<T>> {
  const tag = `seed=${String(seed)}${what ? " " + what : ""} (replay: this test is deterministic; rerun it)`;
  return <T>(actual: T, detail?: string) => expect<T>(actual, detail ? `${tag} ${detail}` : tag);
}

export interface TestMember {
  raft: RaftNode;
  storage: MemoryRaftStorage;
  state: ClusterState;
  applied: Entry[];
  readStates: ReadState[];
}

export type Filter = (m: Message) => boolean;

export class TestNet {
  readonly members = new Map<string, TestMember>();
  queue: Message[] = [];
  /** Delivered unless this returns false. */
  filter: Filter = () => true;
  private readonly cut = new Set<string>();
  delivered = 0;

  constructor(
    readonly seed: number,
    ids: readonly string[],
    readonly cfg: Omit<Partial<RaftConfig>, "id" | "random"> = {},
    initial: ConfState = { voters: ids, learners: [] },
  ) {
    for (const id of ids) {
      const founding = initial.voters.includes(id) || initial.learners.includes(id);
      this.add(id, new MemoryRaftStorage(founding ? bootstrapState(initial) : emptyState()));
    }
  }

  add(id: string, storage: MemoryRaftStorage = new MemoryRaftStorage(emptyState())): TestMember {
    const rng = createRng(this.seed, "node", id, this.members.has(id) ? 1 : 0);
    const persisted = storage.load();
    const state = new ClusterState();
    if (persisted.snapshot) state.restore(persisted.snapshot.data);
    const m: TestMember = {
      raft: new RaftNode({ ...this.cfg, id, random: () => rng.next() }, persisted),
      storage,
      state,
      applied: [],
      readStates: [],
    };
    this.members.set(id, m);
    return m;
  }

  get(id: string): TestMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  raft(id: string): RaftNode {
    return this.get(id).raft;
  }

  /** Process every Ready of `id`: persist, queue messages, apply, advance. */
  drain(id: string): void {
    const m = this.members.get(id);
    if (!m) return;
    while (m.raft.hasReady()) {
      const rd = m.raft.ready();
      m.storage.persist(persistUpdateOf(rd));
      this.queue.push(...rd.messages);
      if (rd.installSnapshot && rd.snapshot) {
        const r = m.state.restore(rd.snapshot.data);
        if (!r.ok) throw new Error(r.message);
      }
      for (const e of rd.committedEntries) {
        m.applied.push(e);
        m.state.apply(e);
      }
      m.readStates.push(...rd.readStates);
      m.raft.advance(rd);
    }
  }

  drainAll(): void {
    for (const id of this.members.keys()) this.drain(id);
  }

  /** Deliver queued messages (and the ones they cause) until quiet. */
  deliver(maxMessages = 100_000): number {
    this.drainAll();
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > maxMessages) throw new Error(`seed=${this.seed}: message storm`);
      const msg = this.queue.shift()!;
      const to = this.members.get(msg.to);
      if (!to || this.cut.has(`${msg.from}>${msg.to}`) || !this.filter(msg)) continue;
      this.delivered++;
      to.raft.step(msg);
      this.drain(msg.to);
    }
    return n;
  }

  /** Deliver the oldest queued message (if it passes the cuts and filter); returns it, or undefined when the queue is empty. */
  deliverOne(): Message | undefined {
    this.drainAll();
    while (this.queue.length > 0) {
      const msg = this.queue.shift()!;
      const to = this.members.get(msg.to);
      if (!to || this.cut.has(`${msg.from}>${msg.to}`) || !this.filter(msg)) continue;
      this.delivered++;
      to.raft.step(msg);
      this.drain(msg.to);
      return msg;
    }
    return undefined;
  }

  /** Drop every queued message (lost in flight). */
  dropQueued(): void {
    this.queue = [];
  }

  tick(id: string, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.raft(id).tick();
      this.drain(id);
    }
  }

  /** Tick every member n times, delivering after each round. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of this.members.keys()) this.raft(id).tick();
      this.deliver();
    }
  }

  campaign(id: string): void {
    this.raft(id).campaign();
    this.deliver();
  }

  isolate(id: string): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  cutLink(a: string, b: string): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Simulate a crash and restart: memory is rebuilt from the member's storage. */
  restart(id: string): TestMember {
    const old = this.get(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    return this.add(id, old.storage);
  }

  propose(id: string, data: unknown): void {
    const r = this.raft(id).propose(data);
    if (!r.ok) throw new Error(`seed=${this.seed}: propose on ${id} failed: ${r.error.code} ${r.error.message}`);
    this.deliver();
  }

  leaders(): string[] {
    return [...this.members.entries()].filter(([, m]) => m.raft.role === "leader").map(([id]) => id);
  }
}

export function terms(entries: readonly Entry[]): number[] {
  return entries.map((e) => e.term);
}
