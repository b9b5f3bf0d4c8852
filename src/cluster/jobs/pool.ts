// The coordinator's view of the workers: which peers take tasks (they have an LM and can
// resolve the job's metric and module kinds), their advertised capacity, and how to reach
// them (in process for this peer, the inference channel for the others).
import { peerIdFromString } from "@libp2p/peer-id";
import type { Peer } from "../peer.js";
import { providerOf } from "./limits.js";
import type { TaskWorker } from "./worker.js";
import { runTaskReplySchema, workerInfoReplySchema, type RunTaskReply, type RunTaskRequest, type WorkerInfo } from "./wire.js";

export interface WorkerState {
  id: string;
  capacity: number;
  inflight: number;
  /** Program keys this worker has been sent. */
  sent: Set<string>;
  /** Attempts to abort if the peer is lost. */
  attempts: Set<AbortController>;
  local: boolean;
  /** Its LM's provider ("openai", ...): cluster-wide LM budgets are per provider. */
  provider: string;
}

export interface Question {
  metric?: string;
  modules?: string[];
}

export class WorkerPool {
  readonly workers = new Map<string, WorkerState>();
  /** Peers that sent malformed results: not leased tasks again during this job. */
  readonly banned = new Set<string>();
  private readonly strikes = new Map<string, number>();
  private readonly onDisconnect: (evt: CustomEvent) => void;
  private readonly listeners = new Set<() => void>();
  private refreshing: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly peer: Peer,
    private readonly local: TaskWorker | undefined,
    private readonly question: Question,
    private readonly hasLocalLM: boolean,
  ) {
    if (local && hasLocalLM && local.info(question).missing.length === 0) {
      this.workers.set(peer.id, { id: peer.id, capacity: local.capacity, inflight: 0, sent: new Set(), attempts: new Set(), local: true, provider: providerOf(local.info({}).lm) });
    }
    this.onDisconnect = (evt) => this.drop(String(evt.detail));
    peer.node.addEventListener("peer:disconnect", this.onDisconnect as never);
  }

  /** Called whenever workers join or leave. */
  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  drop(id: string): void {
    const w = this.workers.get(id);
    if (!w || w.local) return;
    this.workers.delete(id);
    for (const a of w.attempts) a.abort();
    for (const fn of this.listeners) fn();
  }

  /** Count a malformed reply; the third gets the peer banned from this job. */
  strike(id: string): void {
    const n = (this.strikes.get(id) ?? 0) + 1;
    this.strikes.set(id, n);
    if (n >= 3) {
      this.banned.add(id);
      this.drop(id);
    }
  }

  /** Ask connected peers that are not workers yet whether they can take this job's tasks. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const peers = await this.peer.dspexPeers();
        await Promise.all(
          peers.map(async (p) => {
            const id = p.toString();
            if (this.workers.has(id) || this.banned.has(id)) return;
            const info = await askInfo(this.peer, id, this.question).catch(() => undefined);
            if (this.closed || !info || info.lm === null || info.missing.length > 0 || this.workers.has(id) || this.banned.has(id)) return;
            this.workers.set(id, { id, capacity: info.capacity, inflight: 0, sent: new Set(), attempts: new Set(), local: false, provider: providerOf(info.lm) });
            for (const fn of this.listeners) fn();
          }),
        );
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  async call(w: WorkerState, req: RunTaskRequest, leaseMs: number, signal: AbortSignal): Promise<RunTaskReply> {
    if (w.local) return await this.local!.run(req);
    const raw = await this.peer.channels.inference.request(peerIdFromString(w.id), "task.run", req, { timeoutMs: leaseMs, signal });
    const parsed = runTaskReplySchema.safeParse(raw);
    if (!parsed.success) throw Object.assign(new Error(`malformed task result from ${w.id}: ${parsed.error.issues[0]?.message}`), { code: "bad_result" });
    return parsed.data;
  }

  close(): void {
    this.closed = true;
    this.peer.node.removeEventListener("peer:disconnect", this.onDisconnect as never);
    for (const w of this.workers.values()) for (const a of w.attempts) a.abort();
  }
}

export async function askInfo(peer: Peer, id: string, question: Question, timeoutMs = 5000): Promise<WorkerInfo> {
  const raw = await peer.channels.coordination.request(peerIdFromString(id), "worker.info", question, { timeoutMs });
  return workerInfoReplySchema.parse(raw);
}
