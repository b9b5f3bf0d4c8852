// HTTP transport: one undici Pool per origin, keep-alive, shared by every LM in the process.
// Requests go through Pool.dispatch with a handler that gathers the reply (see ReplyHandler):
// cheaper per call than Pool.request, which wraps every reply in a Readable stream, and far
// cheaper than fetch's WHATWG objects.
import { Pool, errors, type Dispatcher } from "undici";
import type { IncomingHttpHeaders } from "node:http";
import { LMError } from "./errors.js";

/** The typed error for a caller's abort. */
export function abortedError(signal: AbortSignal): LMError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new LMError("aborted", `LM call aborted by the caller${reason}`, { cause: signal.reason });
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface PoolOptions {
  /** Max sockets per origin (requests beyond it queue in undici). Default 256. */
  connections?: number;
  /** Idle keep-alive time for a socket when the server gives no hint. Default 30 s. */
  keepAliveTimeoutMs?: number;
}

const pools = new Map<string, Pool>();

export function poolFor(origin: string, options: PoolOptions = {}): Pool {
  let pool = pools.get(origin);
  if (pool === undefined || pool.closed || pool.destroyed) {
    pool = new Pool(origin, {
      connections: options.connections ?? 256,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      keepAliveMaxTimeout: 600_000,
      // Each request sets its own headersTimeout/bodyTimeout (the LM's timeoutMs).
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    pools.set(origin, pool);
  }
  return pool;
}

/** Close every pool (CLI shutdown, end of tests). */
export async function closeAllPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.close().catch(() => p.destroy())));
}

/** Timeouts at or above this use undici's coarse (~1 s resolution) built-in timers. */
export const COARSE_TIMEOUT_MS = 10_000;

/**
 * Collects one reply for postJson: status, headers and the body as UTF-8 text (BOM skipped,
 * as undici's body.text() does). A caller's signal, or the short-timeout timer, aborts the
 * request through the dispatch controller; before the request has a connection (queued in
 * the pool) the call fails at once and the request is aborted when undici starts it.
 */
class ReplyHandler implements Dispatcher.DispatchHandler {
  timedOut = false;
  private controller: Dispatcher.DispatchController | undefined;
  private pendingAbort: Error | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders | undefined;
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly resolve: (res: HttpResponse) => void,
    private readonly reject: (err: unknown) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    if (signal) {
      if (signal.aborted) this.abort(abortReason(signal));
      else {
        this.onAbort = () => this.abort(abortReason(signal));
        signal.addEventListener("abort", this.onAbort, { once: true });
      }
    }
  }

  abort(reason: Error): void {
    if (this.controller) this.controller.abort(reason);
    else if (this.pendingAbort === undefined) {
      this.pendingAbort = reason;
      this.done();
      this.reject(reason);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.controller !== undefined) {
      // Started again (undici retried it on a new connection): drop the partial reply.
      this.chunks = [];
      this.length = 0;
    }
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational, the real reply follows
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
    // A reply this large is not an LM answer; stop before it exhausts memory.
    if (this.length > MAX_REPLY_BYTES) controller.abort(new Error(`reply larger than ${MAX_REPLY_BYTES} bytes; is the base URL an LM API?`));
  }

  onResponseEnd(): void {
    this.done();
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    const bom = buf.length > 2 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
    this.resolve({ status: this.status, headers: this.headers ?? {}, text: buf.toString("utf8", bom) });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.done();
    this.reject(err);
  }

  private done(): void {
    if (this.onAbort) this.signal?.removeEventListener("abort", this.onAbort);
  }
}

const MAX_REPLY_BYTES = 64 * 1024 * 1024;

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new errors.RequestAbortedError();
}

function fireTimeout(handler: ReplyHandler): void {
  handler.timedOut = true;
  handler.abort(new errors.RequestAbortedError("LM request timed out"));
}

/**
 * POST a JSON string, read the whole reply as text and return `decode` of it, within
 * `timeoutMs` (0 = none). Long timeouts (the common case: LM calls take seconds) use undici's
 * own headersTimeout / bodyTimeout, which cost nothing extra per call but fire with ~1 s
 * resolution; short ones use a precise timer. Transport failures become
 * LMError("connection" | "timeout"); a caller abort becomes LMError("aborted"); what `decode`
 * throws passes through as is. Not async, and decoding in the same .then(): each promise
 * costs async-hook work once AsyncLocalStorage is in use.
 */
export function postJson<T>(
  pool: Pool,
  path: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal | undefined,
  timeoutMs: number,
  decode: (res: HttpResponse) => T,
): Promise<T> {
  const coarse = timeoutMs <= 0 || timeoutMs >= COARSE_TIMEOUT_MS;
  let handler: ReplyHandler | undefined;
  let timer: NodeJS.Timeout | undefined;
  return new Promise<HttpResponse>((resolve, reject) => {
    handler = new ReplyHandler(resolve, reject, signal);
    if (!coarse) timer = setTimeout(fireTimeout, timeoutMs, handler);
    pool.dispatch(
      coarse ? { path, method: "POST", headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs } : { path, method: "POST", headers, body },
      handler,
    );
  }).then(
    (res) => {
      if (timer !== undefined) clearTimeout(timer);
      return decode(res);
    },
    (err: unknown) => {
      if (timer !== undefined) clearTimeout(timer);
      if (signal?.aborted) throw abortedError(signal);
      if (handler?.timedOut) {
        throw new LMError("timeout", `no complete reply within ${timeoutMs} ms; raise timeoutMs or lower maxTokens`, { cause: err });
      }
      throw transportError(err, timeoutMs);
    },
  );
}

export function transportError(err: unknown, timeoutMs?: number): LMError {
  const e = err as { code?: string; message?: string };
  const detail = e?.code ? `${e.code}: ${e.message ?? ""}` : String(e?.message ?? err);
  const timeoutCodes = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
  if (e?.code && timeoutCodes.has(e.code)) {
    const limit = timeoutMs ? ` after ${timeoutMs} ms` : "";
    return new LMError("timeout", `no complete reply${limit} (${detail}); raise timeoutMs or lower maxTokens`, { cause: err });
  }
  return new LMError(
    "connection",
    `LM connection failed (${detail}); check the base URL and that the server is running`,
    { cause: err },
  );
}
