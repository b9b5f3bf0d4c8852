// HTTP transport: one undici Pool per origin, keep-alive, shared by every LM in the process.
// Pool.request is undici's cheapest API (no WHATWG fetch objects), which matters for CPU/call.
import { Pool } from "undici";
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

function fireTimeout(ctl: AbortController): void {
  ctl.abort();
}

/**
 * POST a JSON string and read the whole reply as text, within `timeoutMs` (0 = none).
 * Long timeouts (the common case: LM calls take seconds) use undici's own headersTimeout /
 * bodyTimeout, which cost nothing extra per call but fire with ~1 s resolution; short ones
 * use a precise timer + AbortSignal (~2-4 us more CPU per call). Transport failures become
 * LMError("connection" | "timeout"); a caller abort becomes LMError("aborted").
 */
export async function postJson(
  pool: Pool,
  path: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<HttpResponse> {
  const coarse = timeoutMs <= 0 || timeoutMs >= COARSE_TIMEOUT_MS;
  let ctl: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let requestSignal = signal;
  if (!coarse) {
    ctl = new AbortController();
    timer = setTimeout(fireTimeout, timeoutMs, ctl);
    requestSignal = signal ? AbortSignal.any([signal, ctl.signal]) : ctl.signal;
  }
  try {
    const res = await pool.request(
      coarse
        ? { path, method: "POST", headers, body, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }
        : { path, method: "POST", headers, body, signal: requestSignal },
    );
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  } catch (err) {
    if (signal?.aborted) throw abortedError(signal);
    if (ctl?.signal.aborted) {
      throw new LMError("timeout", `no complete reply within ${timeoutMs} ms; raise timeoutMs or lower maxTokens`, { cause: err });
    }
    throw transportError(err, timeoutMs);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
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
