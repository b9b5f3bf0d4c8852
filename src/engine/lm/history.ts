// Bounded history of recent LM calls for inspection (like dspy.inspect_history). Entries keep
// references to the request's messages (no copies) so recording is O(1) per call.
import type { ChatMessage, LMSettings, LMUsage } from "./types.js";

export interface HistoryEntry {
  /** Epoch ms when the call started. */
  timestamp: number;
  model: string;
  messages: readonly ChatMessage[];
  settings: LMSettings;
  outputs: string[];
  usage: LMUsage;
  cached: boolean;
  /** HTTP attempts (0 for cache hits). */
  attempts: number;
  durationMs: number;
  responseModel?: string;
  error?: { code: string; message: string };
}

/** Fixed-size ring buffer of entries, oldest dropped first. */
export class CallHistory {
  private buf: (HistoryEntry | undefined)[];
  private next = 0;
  private count = 0;
  private cap: number;

  constructor(capacity = 100) {
    this.cap = Math.max(0, Math.floor(capacity));
    this.buf = new Array(this.cap);
  }

  get capacity(): number {
    return this.cap;
  }

  /** Change the capacity, keeping the most recent entries (0 turns recording off). */
  resize(capacity: number): void {
    const keep = this.last(Math.max(0, Math.floor(capacity)));
    this.cap = Math.max(0, Math.floor(capacity));
    this.buf = new Array(this.cap);
    this.next = 0;
    this.count = 0;
    for (const e of keep) this.push(e);
  }

  push(e: HistoryEntry): void {
    if (this.cap <= 0) return;
    this.buf[this.next] = e;
    this.next = (this.next + 1) % this.cap;
    if (this.count < this.cap) this.count++;
  }

  /** The last n entries, oldest first. */
  last(n = this.count): HistoryEntry[] {
    const k = Math.min(n, this.count);
    const out: HistoryEntry[] = [];
    for (let i = k; i > 0; i--) out.push(this.buf[(this.next - i + this.cap) % this.cap] as HistoryEntry);
    return out;
  }

  get size(): number {
    return this.count;
  }

  clear(): void {
    this.buf.fill(undefined);
    this.next = 0;
    this.count = 0;
  }
}

/** Calls of every LM in the process (each LM also keeps its own `history`); resize(0) turns it off. */
export const globalHistory = new CallHistory(200);

/** Human-readable rendering of entries, in DSPy's inspect_history layout. */
export function formatHistory(entries: readonly HistoryEntry[]): string {
  const parts: string[] = [];
  for (const e of entries) {
    const lines: string[] = [];
    const flags = [e.cached ? "cached" : "", e.attempts > 1 ? `${e.attempts} attempts` : "", e.error ? `error ${e.error.code}` : ""]
      .filter(Boolean)
      .join(", ");
    lines.push(`[${new Date(e.timestamp).toISOString()}] ${e.model}${flags ? ` (${flags})` : ""} ${e.durationMs.toFixed(1)} ms`);
    for (const m of e.messages) lines.push("", `${m.role.charAt(0).toUpperCase()}${m.role.slice(1)} message:`, "", m.content);
    if (e.error) lines.push("", "Error:", "", e.error.message);
    e.outputs.forEach((o, i) => lines.push("", e.outputs.length > 1 ? `Response ${i + 1}:` : "Response:", "", o));
    lines.push(
      "",
      `Usage: ${e.usage.promptTokens} prompt + ${e.usage.completionTokens} completion tokens, $${e.usage.costUsd.toFixed(6)}`,
    );
    parts.push(lines.join("\n"));
  }
  return parts.join("\n\n\n");
}

/** Print (and return) the last n calls, from one LM's history or the process-wide one. */
export function inspectHistory(n = 1, history: CallHistory = globalHistory, print: (s: string) => void = console.log): string {
  const text = formatHistory(history.last(n));
  print(text);
  return text;
}
