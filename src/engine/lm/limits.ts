// Client-side limits: max concurrent requests, requests per minute, tokens per minute.
// Each HTTP attempt (retries included, since the provider counts them) takes a permit.
// Waiters are served strictly FIFO so a big request cannot be starved by small ones.
//
// RPM and TPM are token buckets refilled continuously (rpm/60 s, tpm/60 s). A bucket holds
// at most `burst` seconds' worth (default 1 s), so any 60 s window sees at most
// rpm * (1 + burst/60) requests. TPM charges an estimate up front (prompt chars / 4 plus
// maxTokens × n) and settles with the real usage when the permit is released; a single
// request bigger than the bucket is let through once the bucket is full (it goes into debt).
import { LMError } from "./errors.js";
import { abortedError } from "./http.js";

export interface LimitOptions {
  /** Max requests in flight at once. */
  maxConcurrency?: number;
  /** Max requests started per minute. */
  rpm?: number;
  /** Max tokens (prompt + completion) per minute. */
  tpm?: number;
  /** Seconds of rate a bucket may bank for bursts. Default 1. */
  burstSeconds?: number;
}

export interface Permit {
  /** Give the slot back; `actualTokens` settles the TPM estimate with real usage. */
  release(actualTokens?: number): void;
}

interface Waiter {
  tokens: number;
  resolve: (p: Permit) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

class Bucket {
  level: number;
  private last: number;
  constructor(
    readonly capacity: number,
    readonly ratePerMs: number,
  ) {
    this.level = capacity;
    this.last = performance.now();
  }
  refill(now: number): void {
    if (this.level < this.capacity) this.level = Math.min(this.capacity, this.level + (now - this.last) * this.ratePerMs);
    this.last = now;
  }
  /** ms until `need` (capped at capacity) is available. */
  waitFor(need: number): number {
    const want = Math.min(need, this.capacity);
    return this.level >= want ? 0 : (want - this.level) / this.ratePerMs;
  }
}

export class Limiter {
  readonly maxConcurrency: number;
  private readonly rpm: Bucket | undefined;
  private readonly tpm: Bucket | undefined;
  private inFlight = 0;
  private queue: Waiter[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Highest number of permits held at once. */
  peakInFlight = 0;
  /** Permits granted so far. */
  granted = 0;

  constructor(options: LimitOptions = {}) {
    const check = (name: string, v: number | undefined) => {
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) {
        throw new LMError("config", `limits.${name} must be a positive number (got ${v}); omit it for no limit`);
      }
    };
    check("maxConcurrency", options.maxConcurrency);
    check("rpm", options.rpm);
    check("tpm", options.tpm);
    check("burstSeconds", options.burstSeconds);
    const burst = options.burstSeconds ?? 1;
    this.maxConcurrency = options.maxConcurrency ?? Infinity;
    if (options.rpm) this.rpm = new Bucket(Math.max(1, (options.rpm * burst) / 60), options.rpm / 60_000);
    if (options.tpm) this.tpm = new Bucket(Math.max(1, (options.tpm * burst) / 60), options.tpm / 60_000);
  }

  get active(): number {
    return this.inFlight;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Wait for a permit (FIFO). `tokens` is the TPM estimate for this request. */
  acquire(tokens: number, signal?: AbortSignal): Promise<Permit> {
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    if (this.waiting === 0 && this.tryTake(tokens, performance.now()) === 0) return Promise.resolve(this.permit(tokens));
    return new Promise<Permit>((resolve, reject) => {
      const w: Waiter = { tokens, resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w, this.head);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortedError(signal));
          this.drain();
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.drain();
    });
  }

  /** Take capacity now if possible; else ms to wait (Infinity = wait for a release). */
  private tryTake(tokens: number, now: number): number {
    if (this.inFlight >= this.maxConcurrency) return Infinity;
    let wait = 0;
    if (this.rpm) {
      this.rpm.refill(now);
      wait = this.rpm.waitFor(1);
    }
    if (this.tpm) {
      this.tpm.refill(now);
      wait = Math.max(wait, this.tpm.waitFor(tokens));
    }
    if (wait > 0) return wait;
    if (this.rpm) this.rpm.level -= 1;
    if (this.tpm) this.tpm.level -= tokens;
    return 0;
  }

  private permit(tokens: number): Permit {
    this.inFlight++;
    this.granted++;
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
    // The closure comes from a function call, not an arrow written as `release: (...) =>`,
    // which tsx (esbuild keepNames) would wrap in a defineProperty call on every permit.
    return { release: Limiter.releaser(this, tokens) };
  }

  private static releaser(limiter: Limiter, tokens: number): (actual?: number) => void {
    let released = false;
    return (actual?: number) => {
      if (released) return;
      released = true;
      limiter.inFlight--;
      const tpm = limiter.tpm;
      if (tpm && actual !== undefined) tpm.level = Math.min(tpm.capacity, tpm.level + tokens - actual);
      if (limiter.waiting > 0) limiter.drain();
    };
  }

  private drain(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.head < this.queue.length) {
      const w = this.queue[this.head];
      const wait = this.tryTake(w.tokens, performance.now());
      if (wait === Infinity) return; // a release will call drain again
      if (wait > 0) {
        this.timer = setTimeout(() => this.drain(), Math.max(1, Math.ceil(wait)));
        return;
      }
      this.head++;
      if (this.head > 1024) {
        // Under a steady backlog the queue never empties: drop the served prefix now and then.
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
      w.resolve(this.permit(w.tokens));
    }
    // Compact the queue once drained.
    this.queue = [];
    this.head = 0;
  }
}

/** Rough token estimate for TPM charging: ~4 characters per token. */
export function estimateTokens(promptChars: number, maxTokens: number | undefined, n: number): number {
  return Math.ceil(promptChars / 4) + (maxTokens ?? 256) * n;
}
