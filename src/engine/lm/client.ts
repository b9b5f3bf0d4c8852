// LMClient: the LM implementation. One call goes
//   cache lookup -> [per HTTP attempt: breaker -> limits -> timeout(HTTP) -> decode] with retries
//   -> usage/cost -> history -> span end -> cache store.
// The request body is serialised once and reused by every retry; nothing on the hot path
// re-serialises or copies messages.
import type { ChatMessage, LM, LMRequest, LMResponse, LMSettings, LMUsage } from "./types.js";
import { zeroUsage } from "./types.js";
import { LMError } from "./errors.js";
import { poolFor, postJson } from "./http.js";
import type { Provider, ProviderReply, WireRequest } from "./provider.js";
import { Resilience, type BreakerOptions, type BreakerState, type ExecuteResult, type RetryOptions } from "./resilience.js";
import { Limiter, estimateTokens, type LimitOptions } from "./limits.js";
import { LMCache, cacheKey, defaultCache } from "./cache.js";
import { costUsd, priceOf, recordCall, type ModelPrice } from "./usage.js";
import { CallHistory, globalHistory, type HistoryEntry } from "./history.js";
import { endLMSpan, failLMSpan, startLMSpan } from "./telemetry.js";

export interface LMTransportOptions {
  /** Per-attempt timeout in ms (0 = none). Default 120,000. At >= 10 s it fires with ~1 s resolution. */
  timeoutMs?: number;
  /** Retry policy, or false for none. */
  retry?: RetryOptions | false;
  /** Circuit breaker for the endpoint, or false for none. */
  breaker?: BreakerOptions | false;
  /** Client-side limits (a Limiter instance is shared as is, e.g. by several LMs on one key). */
  limits?: LimitOptions | Limiter;
  /** true/undefined = the process-wide cache; false = no caching; or a cache of its own. */
  cache?: boolean | LMCache;
  /** Entries kept in this LM's `history`. Default 100. */
  historySize?: number;
  /** Price override (USD per 1M tokens) when the model is not in the built-in table. */
  price?: ModelPrice;
}

export interface LMClientStats {
  calls: number;
  cacheHits: number;
  /** HTTP requests sent (attempts, fan-out included). */
  requests: number;
  retries: number;
  errors: number;
}

export class LMClient implements LM {
  readonly model: string;
  readonly settings: LMSettings;
  readonly provider: Provider;
  readonly history: CallHistory;
  readonly stats: LMClientStats = { calls: 0, cacheHits: 0, requests: 0, retries: 0, errors: 0 };
  readonly cache: LMCache | undefined;
  readonly limiter: Limiter | undefined;
  private readonly resilience: Resilience;
  private readonly timeoutMs: number;
  private readonly price: ModelPrice | undefined;
  private readonly bareModel: string;
  private readonly serverAddress: string;
  private readonly serverPort: number;
  private readonly configError: LMError | undefined;

  constructor(
    model: string,
    bareModel: string,
    provider: Provider,
    settings: LMSettings,
    private readonly transport: LMTransportOptions = {},
    configError?: LMError,
  ) {
    this.model = model;
    this.bareModel = bareModel;
    this.provider = provider;
    this.settings = settings;
    this.configError = configError;
    this.history = new CallHistory(transport.historySize ?? 100);
    this.cache = transport.cache === false ? undefined : transport.cache instanceof LMCache ? transport.cache : defaultCache();
    this.limiter = transport.limits instanceof Limiter ? transport.limits : transport.limits ? new Limiter(transport.limits) : undefined;
    this.timeoutMs = transport.timeoutMs ?? 120_000;
    if (!(this.timeoutMs > 0)) this.timeoutMs = 0; // 0 = no timeout (undici treats 0 as disabled)
    this.resilience = new Resilience(`${provider.origin}${provider.path}`, {
      retry: transport.retry,
      breaker: transport.breaker,
    });
    this.price = transport.price ?? priceOf(bareModel);
    const url = new URL(provider.origin);
    this.serverAddress = url.hostname;
    this.serverPort = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  }

  /** Endpoint URL (no secrets). */
  get endpoint(): string {
    return `${this.provider.origin}${this.provider.path}`;
  }

  get breakerState(): BreakerState {
    return this.resilience.breakerState;
  }

  /** A new LM with other default settings, sharing cache, limiter and breaker. */
  copy(overrides: LMSettings): LMClient {
    const transport = { ...this.transport, cache: this.cache ?? false, limits: this.limiter };
    return new LMClient(this.model, this.bareModel, this.provider, { ...this.settings, ...overrides }, transport, this.configError);
  }

  async call(request: LMRequest): Promise<LMResponse> {
    const d = this.settings;
    const wire: WireRequest = {
      model: this.bareModel,
      messages: request.messages,
      temperature: request.temperature ?? d.temperature,
      maxTokens: request.maxTokens ?? d.maxTokens,
      n: request.n ?? d.n,
      stop: request.stop ?? d.stop,
      topP: request.topP ?? d.topP,
      responseFormat: request.responseFormat ?? d.responseFormat,
    };
    const rolloutId = request.rolloutId ?? d.rolloutId;
    const timestamp = Date.now();
    const t0 = performance.now();
    this.stats.calls++;
    const span = startLMSpan({
      provider: this.provider.otelName,
      model: this.bareModel,
      serverAddress: this.serverAddress,
      serverPort: this.serverPort,
      temperature: wire.temperature,
      maxTokens: wire.maxTokens,
      topP: wire.topP,
      n: wire.n,
    });
    const cache = (request.cache ?? d.cache) === false ? undefined : this.cache;
    let key: string | undefined;
    let attempts = 0;
    try {
      if (this.configError) throw this.configError;
      if (cache) {
        key = cacheKey({
          model: this.model,
          messages: wire.messages,
          temperature: wire.temperature,
          maxTokens: wire.maxTokens,
          n: wire.n,
          stop: wire.stop,
          topP: wire.topP,
          responseFormat: wire.responseFormat,
          rolloutId,
        });
        // Memory-only caches answer without a promise.
        const hit = cache.dir === undefined ? cache.getNow(key) : await cache.get(key);
        if (hit) {
          this.stats.cacheHits++;
          const response: LMResponse = {
            outputs: hit.outputs.slice(),
            usage: zeroUsage(),
            model: hit.model,
            cached: true,
            finishReasons: hit.finishReasons?.slice(),
          };
          this.finish(wire, rolloutId, response, timestamp, t0, 0);
          endLMSpan(span, {
            responseModel: hit.model,
            inputTokens: 0,
            outputTokens: 0,
            finishReasons: hit.finishReasons ?? [],
            cached: true,
            attempts: 0,
          });
          return response;
        }
      }
      const sent = await this.send(wire, request.signal);
      attempts = sent.attempts;
      const reply = sent.value;
      const usage: LMUsage = {
        promptTokens: reply.promptTokens,
        completionTokens: reply.completionTokens,
        totalTokens: reply.promptTokens + reply.completionTokens,
        costUsd: costUsd(this.price, reply.promptTokens, reply.completionTokens),
      };
      const response: LMResponse = { outputs: reply.outputs, usage, model: reply.model, finishReasons: reply.finishReasons };
      if (cache && key !== undefined) {
        cache.set(key, { outputs: reply.outputs.slice(), finishReasons: reply.finishReasons.slice(), model: reply.model, usage });
      }
      this.finish(wire, rolloutId, response, timestamp, t0, attempts);
      endLMSpan(span, {
        responseModel: reply.model,
        inputTokens: reply.promptTokens,
        outputTokens: reply.completionTokens,
        finishReasons: reply.finishReasons,
        cached: false,
        attempts,
      });
      return response;
    } catch (err) {
      const e = this.asLMError(err);
      attempts = e.attempts ?? attempts;
      this.stats.errors++;
      if (attempts > 1) this.stats.retries += attempts - 1;
      recordCall({ model: this.model, usage: zeroUsage(), cached: false, retries: Math.max(0, attempts - 1), error: true });
      this.remember({
        timestamp,
        model: this.model,
        messages: request.messages,
        settings: settingsOf(wire, rolloutId),
        outputs: [],
        usage: zeroUsage(),
        cached: false,
        attempts,
        durationMs: performance.now() - t0,
        error: { code: e.code, message: e.message },
      });
      failLMSpan(span, e.code, e.message, attempts);
      throw e;
    }
  }

  private finish(wire: WireRequest, rolloutId: number | undefined, response: LMResponse, timestamp: number, t0: number, attempts: number): void {
    const retries = attempts > 1 ? attempts - 1 : 0;
    this.stats.retries += retries;
    recordCall({ model: this.model, usage: response.usage, cached: response.cached === true, retries, error: false });
    this.remember({
      timestamp,
      model: this.model,
      messages: wire.messages,
      settings: settingsOf(wire, rolloutId),
      outputs: response.outputs,
      usage: response.usage,
      cached: response.cached === true,
      attempts,
      durationMs: performance.now() - t0,
      responseModel: response.model,
    });
  }

  private remember(e: HistoryEntry): void {
    this.history.push(e);
    globalHistory.push(e);
  }

  private asLMError(err: unknown): LMError {
    const e =
      err instanceof LMError
        ? err
        : new LMError("bad_response", `unexpected failure calling ${this.endpoint}: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
    e.provider ??= this.provider.name;
    e.model ??= this.model;
    return e;
  }

  /** One logical call: fan out n requests when the API has no `n`, else one request. */
  private send(wire: WireRequest, signal: AbortSignal | undefined): Promise<ExecuteResult<ProviderReply>> {
    const n = wire.n ?? 1;
    // Not async on the common path: every extra async frame is a promise (and async-hook
    // work once AsyncLocalStorage is active) per call.
    if (n <= 1 || this.provider.supportsN) return this.sendOne(wire, signal);
    return this.fanOut(wire, n, signal);
  }

  private async fanOut(wire: WireRequest, n: number, signal: AbortSignal | undefined): Promise<ExecuteResult<ProviderReply>> {
    const one: WireRequest = { ...wire, n: 1 };
    const parts = await Promise.all(Array.from({ length: n }, () => this.sendOne(one, signal)));
    const reply: ProviderReply = { outputs: [], finishReasons: [], model: parts[0].value.model, promptTokens: 0, completionTokens: 0 };
    let attempts = 0;
    for (const p of parts) {
      reply.outputs.push(...p.value.outputs);
      reply.finishReasons.push(...p.value.finishReasons);
      reply.promptTokens += p.value.promptTokens;
      reply.completionTokens += p.value.completionTokens;
      attempts += p.attempts;
    }
    // Report retries across the fan-out as attempts beyond one per logical call.
    return { value: reply, attempts: attempts - (n - 1) };
  }

  private sendOne(wire: WireRequest, signal: AbortSignal | undefined): Promise<ExecuteResult<ProviderReply>> {
    const provider = this.provider;
    const body = provider.encode(wire); // serialised once, reused by every retry
    const limiter = this.limiter;
    if (limiter === undefined) {
      return this.resilience.execute(() => {
        this.stats.requests++;
        return postJson(poolFor(provider.origin), provider.path, provider.headers, body, signal, this.timeoutMs, (res) => provider.decode(res, wire));
      }, signal);
    }
    const tokens = estimateTokens(promptChars(wire.messages), wire.maxTokens, wire.n ?? 1);
    return this.resilience.execute(async () => {
      this.stats.requests++;
      const permit = await limiter.acquire(tokens, signal);
      try {
        const reply = await postJson(poolFor(provider.origin), provider.path, provider.headers, body, signal, this.timeoutMs, (res) => provider.decode(res, wire));
        permit.release(reply.promptTokens + reply.completionTokens);
        return reply;
      } catch (err) {
        permit.release();
        throw err;
      }
    }, signal);
  }

  /** DSPy-format `lm` entry for saved programs (no keys, no URLs). */
  dumpState(): Record<string, unknown> {
    const s = this.settings;
    const retry = this.transport.retry;
    const state: Record<string, unknown> = {
      model: this.model,
      model_type: "chat",
      cache: this.cache !== undefined,
      num_retries: retry === false ? 0 : (retry?.maxRetries ?? 8),
    };
    if (s.temperature !== undefined) state.temperature = s.temperature;
    if (s.maxTokens !== undefined) state.max_tokens = s.maxTokens;
    if (s.topP !== undefined) state.top_p = s.topP;
    if (s.n !== undefined) state.n = s.n;
    if (s.stop !== undefined) state.stop = s.stop;
    return state;
  }
}

function promptChars(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += m.content.length;
  return n;
}

function settingsOf(wire: WireRequest, rolloutId: number | undefined): LMSettings {
  const s: LMSettings = {};
  if (wire.temperature !== undefined) s.temperature = wire.temperature;
  if (wire.maxTokens !== undefined) s.maxTokens = wire.maxTokens;
  if (wire.n !== undefined) s.n = wire.n;
  if (wire.stop !== undefined) s.stop = wire.stop;
  if (wire.topP !== undefined) s.topP = wire.topP;
  if (wire.responseFormat !== undefined) s.responseFormat = wire.responseFormat;
  if (rolloutId !== undefined) s.rolloutId = rolloutId;
  return s;
}
