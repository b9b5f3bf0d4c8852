// Token buckets for per-peer inbound budgets.
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number = ratePerSecond,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }
  /** Take n tokens; false when the budget is exhausted (nothing is taken then). */
  take(n: number): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSecond);
    this.last = t;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
  /** Give back tokens taken for something that did not happen after all. */
  refund(n: number): void {
    this.tokens = Math.min(this.burst, this.tokens + n);
  }
}
