// HTTP transport: one undici Pool per origin, keep-alive, shared by every LM in the process.
// Pool.request is undici's cheapest API (no WHATWG fetch objects), which matters for CPU/call.
import { Pool } from "undici";
import type { IncomingHttpHeaders } from "node:http";
import { LMError } from "./errors.js";

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
      // The resilience layer owns request timeouts; these are only a backstop.
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

/**
 * POST a JSON string and read the whole reply as text. Transport failures become
 * LMError("connection"); aborts are rethrown untouched so the caller can tell a timeout
 * from a user cancel (it owns both signals).
 */
export async function postJson(
  pool: Pool,
  path: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal | undefined,
): Promise<HttpResponse> {
  try {
    const res = await pool.request({ path, method: "POST", headers, body, signal });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  } catch (err) {
    if (signal?.aborted) throw err;
    throw transportError(err);
  }
}

export function transportError(err: unknown): LMError {
  const e = err as { code?: string; message?: string };
  const detail = e?.code ? `${e.code}: ${e.message ?? ""}` : String(e?.message ?? err);
  const timeoutCodes = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
  if (e?.code && timeoutCodes.has(e.code)) {
    return new LMError("timeout", `LM request timed out in transport (${detail}); raise timeoutMs`, { cause: err });
  }
  return new LMError(
    "connection",
    `LM connection failed (${detail}); check the base URL and that the server is running`,
    { cause: err },
  );
}
