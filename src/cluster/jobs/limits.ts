// Cluster-wide LM budgets per provider (`dspex limits set openai --rpm 500`, committed
// through Raft so every coordinator after a failover uses the same), shared by all jobs the
// coordinator runs. The coordinator is the only dispatcher, so pacing task starts here
// paces the whole cluster; a task counts against the provider of the peer that runs it.
import { TokenBucket } from "../../../channels/limits.js";
import type { LmLimit } from "../../consensus/cluster_state.js";
import { parseModelString } from "../../engine/lm/index.js";

/**
 * The provider of a peer's model string, as the LM layer reads it ("openai/gpt-4o-mini" and
 * "gpt-4o-mini" -> "openai"); a string it does not know counts under its own prefix.
 */
export function providerOf(model: string | null | undefined): string {
  if (!model) return "";
  try {
    return parseModelString(model).provider;
  } catch {
    const i = model.indexOf("/");
    return (i > 0 ? model.slice(0, i) : model).toLowerCase();
  }
}

interface Budget {
  index: number;
  rpm?: TokenBucket;
  tpm?: TokenBucket;
  /** The tpm bucket's size: a task's estimate is capped at it, or a big task could never start. */
  tpmBurst: number;
}

export class ProviderBudgets {
  private readonly budgets = new Map<string, Budget>();

  /** Follow the committed limits; a provider's buckets restart only when its limit changed. */
  configure(limits: Readonly<Record<string, LmLimit>>): void {
    for (const p of this.budgets.keys()) if (!(p in limits)) this.budgets.delete(p);
    for (const [p, l] of Object.entries(limits)) {
      if (this.budgets.get(p)?.index === l.index) continue;
      // Bursts of one second's worth (at least one request), like the per-job budgets.
      this.budgets.set(p, {
        index: l.index,
        ...(l.rpm !== undefined ? { rpm: new TokenBucket(l.rpm / 60, Math.max(1, l.rpm / 60)) } : {}),
        ...(l.tpm !== undefined ? { tpm: new TokenBucket(l.tpm / 60, Math.max(1, l.tpm / 60)) } : {}),
        tpmBurst: Math.max(1, (l.tpm ?? 0) / 60),
      });
    }
  }

  /**
   * May a task for `provider` start now, expecting `tokens` tokens (0 while unknown)? When
   * it may, its share is taken from the budget.
   */
  take(provider: string, tokens: number): boolean {
    const b = this.budgets.get(provider);
    if (!b) return true;
    const t = b.tpm && tokens > 0 ? Math.min(tokens, b.tpmBurst) : 0;
    if (b.tpm && t > 0 && !b.tpm.take(t)) return false;
    if (b.rpm && !b.rpm.take(1)) {
      if (t > 0) b.tpm!.refund(t);
      return false;
    }
    return true;
  }

  /** Undo a take() for a task that did not start after all. */
  refund(provider: string, tokens: number): void {
    const b = this.budgets.get(provider);
    if (!b) return;
    b.rpm?.refund(1);
    if (b.tpm && tokens > 0) b.tpm.refund(Math.min(tokens, b.tpmBurst));
  }

  get size(): number {
    return this.budgets.size;
  }
}
