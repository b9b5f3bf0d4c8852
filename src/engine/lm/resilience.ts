// Retries and a per-endpoint circuit breaker, built from cockatiel policies:
// retry( breaker( attempt ) ), where the caller's attempt acquires client-side limits and
// sends its HTTP request. The per-attempt timeout lives in http.ts (undici's own timers, or
// a plain timer for short timeouts), not in cockatiel's TimeoutPolicy: that policy
// (AbortController + timer + event listeners per call) measured ~20 us CPU per call here,
// several times the rest of the LM layer together.
//
// - Retries: transient codes only (LMError.retryable), jittered exponential backoff
//   (cockatiel's decorrelated jitter), but a server-sent Retry-After / retry-after-ms /
//   Gemini RetryInfo wins over the computed delay. A Retry-After longer than
//   maxRetryAfterMs is not waited for: the rate_limited error surfaces at once.
// - Breaker: a count-based sliding window (cockatiel CountBreaker) opens when more than
//   `threshold` of the last `windowSize` attempts failed with an outage-like code
//   (server_error, overloaded, timeout, connection, bad_response) once `minimumCalls`
//   were seen. 429s do not count: they mean "slow down", handled by Retry-After. While
//   open, attempts fail fast with LMError("circuit_open"); after halfOpenAfterMs one test
//   attempt goes through and closes or re-opens it. A ratio (not N consecutive failures)
//   keeps the breaker shut under a steady 20% fault rate.
import {
  BrokenCircuitError,
  CircuitBreakerPolicy,
  CircuitState,
  CountBreaker,
  ExponentialBackoff,
  TaskCancelledError,
  circuitBreaker,
  decorrelatedJitterGenerator,
  handleWhen,
  retry,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
  type RetryPolicy,
} from "cockatiel";
import { LMError, type LMErrorCode } from "./errors.js";
import { abortedError } from "./http.js";

export interface RetryOptions {
  /** Retries after the first attempt. Default 8 (with a breaker guarding outages). */
  maxRetries?: number;
  /** First backoff (median ~this), doubling per retry with jitter. Default 500 ms. */
  initialDelayMs?: number;
  /** Cap on one backoff. Default 20 s. */
  maxDelayMs?: number;
  /** Longest server-requested wait we honour; longer ones surface the error. Default 60 s. */
  maxRetryAfterMs?: number;
}

export interface BreakerOptions {
  /** Failure ratio (0..1, exclusive) over the window that opens the breaker. Default 0.5. */
  threshold?: number;
  /** Attempts in the sliding window. Default 40. */
  windowSize?: number;
  /** Attempts needed before the breaker may open. Default 20. */
  minimumCalls?: number;
  /** Time open before one test attempt is let through. Default 10 s. */
  halfOpenAfterMs?: number;
}

export interface ResilienceOptions {
  retry?: RetryOptions | false;
  breaker?: BreakerOptions | false;
}

export type BreakerState = "closed" | "open" | "half_open" | "isolated" | "none";

const BREAKER_CODES: ReadonlySet<LMErrorCode> = new Set<LMErrorCode>([
  "server_error",
  "overloaded",
  "timeout",
  "connection",
  "bad_response",
]);

/** Retry-After-aware backoff: the server's wait when it sent one, else jittered exponential. */
class ServerAwareBackoff implements IBackoff<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly factory: IBackoffFactory<unknown>,
    private readonly exp: IBackoff<unknown> | undefined,
    readonly duration: number,
  ) {}

  next(ctx: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const exp = this.exp ? this.exp.next(ctx) : this.factory.next(ctx);
    const err = "error" in ctx.result ? ctx.result.error : undefined;
    const ra = err instanceof LMError ? err.retryAfterMs : undefined;
    // A little jitter on the server's wait keeps many clients from retrying in lockstep.
    const duration = ra !== undefined ? ra * (1 + Math.random() * 0.1) : exp.duration;
    return new ServerAwareBackoff(this.factory, exp, duration);
  }
}

class ServerAwareBackoffFactory implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(private readonly exp: IBackoffFactory<unknown>) {}
  next(ctx: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    return new ServerAwareBackoff(this.exp, undefined, 0).next(ctx);
  }
}

// Breakers are shared per endpoint (and configuration) by every LM in the process.
const breakers = new Map<string, CircuitBreakerPolicy>();

function breakerFor(endpoint: string, o: BreakerOptions): CircuitBreakerPolicy {
  const threshold = o.threshold ?? 0.5;
  const windowSize = o.windowSize ?? 40;
  const minimumCalls = Math.min(o.minimumCalls ?? 20, windowSize);
  const halfOpenAfter = o.halfOpenAfterMs ?? 10_000;
  const key = `${endpoint}|${threshold}|${windowSize}|${minimumCalls}|${halfOpenAfter}`;
  let b = breakers.get(key);
  if (b === undefined) {
    b = circuitBreaker(
      handleWhen((e) => e instanceof LMError && BREAKER_CODES.has(e.code)),
      { halfOpenAfter, breaker: new CountBreaker({ threshold, size: windowSize, minimumNumberOfCalls: minimumCalls }) },
    );
    breakers.set(key, b);
  }
  return b;
}

/** Forget every breaker (tests). */
export function resetBreakers(): void {
  breakers.clear();
}

export interface ExecuteResult<T> {
  value: T;
  /** HTTP attempts made (1 = no retry). */
  attempts: number;
}

export class Resilience {
  private readonly retryPolicy: RetryPolicy | undefined;
  private readonly breaker: CircuitBreakerPolicy | undefined;

  constructor(
    readonly endpoint: string,
    options: ResilienceOptions = {},
  ) {
    const r = options.retry === false ? { maxRetries: 0 } : (options.retry ?? {});
    const maxRetries = r.maxRetries ?? 8;
    if (maxRetries > 0) {
      const maxRetryAfter = r.maxRetryAfterMs ?? 60_000;
      const exp = new ExponentialBackoff({
        generator: decorrelatedJitterGenerator,
        initialDelay: r.initialDelayMs ?? 500,
        maxDelay: r.maxDelayMs ?? 20_000,
      });
      this.retryPolicy = retry(
        handleWhen((e) => e instanceof LMError && e.retryable && !((e.retryAfterMs ?? 0) > maxRetryAfter)),
        { maxAttempts: maxRetries, backoff: new ServerAwareBackoffFactory(exp) },
      );
    }
    if (options.breaker !== false) this.breaker = breakerFor(endpoint, options.breaker ?? {});
  }

  get breakerState(): BreakerState {
    if (!this.breaker) return "none";
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return "closed";
      case CircuitState.Open:
        return "open";
      case CircuitState.HalfOpen:
        return "half_open";
      default:
        return "isolated";
    }
  }

  /**
   * Run `attempt` with retries behind the breaker. `attempt(n)` gets the 1-based attempt
   * number; it acquires limits and sends the request.
   */
  execute<T>(attempt: (n: number) => Promise<T>, signal?: AbortSignal): Promise<ExecuteResult<T>> {
    // Attempt count lives in an object, and closures are passed inline, not bound to named
    // consts: tsx/esbuild's keepNames wraps every named closure in a defineProperty call,
    // which showed up in CPU profiles of this hot path.
    const state = { attempts: 0 };
    // The first attempt runs outside the retry policy: most calls succeed at once, and the
    // policy's async frames cost every call. A failure is handed to the policy as its own
    // first result (see retry), so filters, backoff and the attempt budget are unchanged.
    const first = this.once(attempt, state, signal);
    if (this.retryPolicy === undefined) {
      return first.then(
        (value) => ({ value, attempts: state.attempts }),
        (err: unknown) => {
          throw this.normalize(err, state.attempts, signal);
        },
      );
    }
    // cockatiel's backoff sleep ignores the signal: don't make a cancelled caller wait it out.
    const run = signal ? raceAbort(first.catch((err: unknown) => this.retry(err, attempt, state, signal)), signal) : first;
    return run.then(
      (value) => ({ value, attempts: state.attempts }),
      (err: unknown) => {
        // With a signal, run already includes the retries.
        if (signal) throw this.normalize(err, state.attempts, signal);
        return this.retry(err, attempt, state, undefined).then(
          (value) => ({ value, attempts: state.attempts }),
          (e: unknown) => {
            throw this.normalize(e, state.attempts, undefined);
          },
        );
      },
    );
  }

  /** The rest of a call whose first attempt failed with `first`, under the retry policy. */
  private retry<T>(first: unknown, attempt: (n: number) => Promise<T>, state: { attempts: number }, signal: AbortSignal | undefined): Promise<T> {
    let replay = true;
    return (this.retryPolicy as RetryPolicy).execute(() => {
      if (replay) {
        replay = false;
        return Promise.reject(first);
      }
      return this.once(attempt, state, signal);
    }, signal);
  }

  private once<T>(attempt: (n: number) => Promise<T>, state: { attempts: number }, signal: AbortSignal | undefined): Promise<T> {
    const n = ++state.attempts;
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    if (this.breaker) return this.breaker.execute(() => attempt(n));
    try {
      return attempt(n);
    } catch (err) {
      return Promise.reject(err); // execute() is not async: keep a throw a rejection
    }
  }

  private normalize(err: unknown, attempts: number, signal?: AbortSignal): LMError {
    let e: LMError;
    if (err instanceof LMError) e = err;
    else if (err instanceof BrokenCircuitError) {
      const last = this.breaker?.lastFailure;
      const lastMsg = last && "error" in last && last.error instanceof Error ? `; last failure: ${last.error.message}` : "";
      e = new LMError(
        "circuit_open",
        `circuit breaker for ${this.endpoint} is open after sustained failures, failing fast${lastMsg}; it half-opens after a cool-down`,
        { cause: err },
      );
    } else if (err instanceof TaskCancelledError || signal?.aborted) {
      e = signal?.aborted ? abortedError(signal) : new LMError("aborted", `LM call to ${this.endpoint} was cancelled`, { cause: err });
    } else {
      const msg = err instanceof Error ? err.message : String(err);
      e = new LMError("bad_response", `unexpected failure calling ${this.endpoint}: ${msg}`, { cause: err });
    }
    e.attempts = attempts;
    return e;
  }
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(abortedError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
