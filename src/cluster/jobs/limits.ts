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

/**
 * Requests and tokens per minute, paced by token buckets with bursts of one second's worth
 * (at least one). A job's own rpm/tpm and each provider's cluster-wide limit are one each.
 */
export class RateBudget {
  private readonly rpm: TokenBucket | undefined;
  private readonly tpm: TokenBucket | undefined;
  /** The tpm bucket's size: a task's estimate is capped at it, or a big task could never start. */
  private readonly tpmBurst: number;

  constructor(limit: { rpm?: number | undefined; tpm?: number | undefined }) {
    this.rpm = limit.rpm !== undefined ? new TokenBucket(limit.rpm / 60, Math.max(1, limit.rpm / 60)) : undefined;
    this.tpm = limit.tpm !== undefined ? new TokenBucket(limit.tpm / 60, Math.max(1, limit.tpm / 60)) : undefined;
    this.tpmBurst = Math.max(1, (limit.tpm ?? 0) / 60);
  }

  /**
   * May a task start now, expecting `tokens` tokens (0 while unknown)? When it may, its
   * share is taken; when it may not, nothing is.
   */
  take(tokens: number): boolean {
    const t = this.tpm && tokens > 0 ? Math.min(tokens, this.tpmBurst) : 0;
    if (t > 0 && !this.tpm!.take(t)) return false;
    if (this.rpm && !this.rpm.take(1)) {
      if (t > 0) this.tpm!.refund(t);
      return false;
    }
    return true;
  }

  /** Undo a take() for a task that did not start after all. */
  refund(tokens: number): void {
    this.rpm?.refund(1);
    if (this.tpm && tokens > 0) this.tpm.refund(Math.min(tokens, this.tpmBurst));
  }
}

export class ProviderBudgets {
  private readonly budgets = new Map<string, { index: number; budget: RateBudget }>();

  /** Follow the committed limits; a provider's buckets restart only when its limit changed. */
  configure(limits: Readonly<Record<string, LmLimit>>): void {
    for (const p of this.budgets.keys()) if (!(p in limits)) this.budgets.delete(p);
    for (const [p, l] of Object.entries(limits)) {
      if (this.budgets.get(p)?.index !== l.index) this.budgets.set(p, { index: l.index, budget: new RateBudget(l) });
    }
  }

  /** RateBudget.take for `provider`'s budget (always true for a provider without one). */
  take(provider: string, tokens: number): boolean {
    return this.budgets.get(provider)?.budget.take(tokens) ?? true;
  }

  /** Undo a take() for a task that did not start after all. */
  refund(provider: string, tokens: number): void {
    this.budgets.get(provider)?.budget.refund(tokens);
  }

  get size(): number {
    return this.budgets.size;
  }
}
