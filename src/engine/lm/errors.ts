// Typed LM errors: every failure of an LM call surfaces as an LMError with a code a program
// can branch on, the provider's own message, the HTTP status, and whether a retry may help.
// Nothing else is thrown from this folder.

export type LMErrorCode =
  /** 429 from the provider (or its gateway). Retried, honouring Retry-After. */
  | "rate_limited"
  /** 5xx other than overload. Retried. */
  | "server_error"
  /** 529 (Anthropic) or 503 "overloaded/unavailable". Retried. */
  | "overloaded"
  /** No complete reply within the request timeout. Retried. */
  | "timeout"
  /** Connection refused/reset/closed before a full reply. Retried. */
  | "connection"
  /** The reply was not valid JSON or not the provider's documented shape. Retried. */
  | "bad_response"
  /** 401/403: missing or wrong API key, or no access to the model. */
  | "auth"
  /** 400/404/422 and other request errors the provider rejects (not retried). */
  | "bad_request"
  /** The prompt plus max tokens exceed the model's context window. */
  | "context_window"
  /** The provider refused the prompt or completion for safety reasons. */
  | "content_filter"
  /** The endpoint's circuit breaker is open after sustained failures: failing fast. */
  | "circuit_open"
  /** The caller's AbortSignal fired. */
  | "aborted"
  /** The LM is misconfigured (unknown provider prefix, missing key, bad option). */
  | "config";

const RETRYABLE: ReadonlySet<LMErrorCode> = new Set<LMErrorCode>([
  "rate_limited",
  "server_error",
  "overloaded",
  "timeout",
  "connection",
  "bad_response",
]);

export interface LMErrorInit {
  provider?: string;
  model?: string;
  status?: number;
  /** The provider's error message, verbatim, when it sent one. */
  providerMessage?: string;
  /** The provider's error type/code, e.g. "rate_limit_error", "RESOURCE_EXHAUSTED". */
  providerType?: string;
  /** Server-requested wait before retrying (Retry-After, retry-after-ms, RetryInfo). */
  retryAfterMs?: number;
  /** Provider request id, for support tickets. */
  requestId?: string;
  /** Number of attempts made before giving up (set by the resilience layer). */
  attempts?: number;
  cause?: unknown;
}

export class LMError extends Error {
  readonly code: LMErrorCode;
  readonly retryable: boolean;
  /** Filled in by the LM client when the failing layer did not know it. */
  provider?: string;
  model?: string;
  readonly status?: number;
  readonly providerMessage?: string;
  readonly providerType?: string;
  readonly retryAfterMs?: number;
  readonly requestId?: string;
  attempts?: number;

  constructor(code: LMErrorCode, message: string, init: LMErrorInit = {}) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = "LMError";
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.provider = init.provider;
    this.model = init.model;
    this.status = init.status;
    this.providerMessage = init.providerMessage;
    this.providerType = init.providerType;
    this.retryAfterMs = init.retryAfterMs;
    this.requestId = init.requestId;
    this.attempts = init.attempts;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      provider: this.provider,
      model: this.model,
      status: this.status,
      providerMessage: this.providerMessage,
      providerType: this.providerType,
      retryAfterMs: this.retryAfterMs,
      attempts: this.attempts,
    };
  }
}

export function isLMError(err: unknown): err is LMError {
  return err instanceof LMError;
}

/** What to tell the user to do, per code (appended to messages built from HTTP statuses). */
const HINTS: Record<LMErrorCode, string> = {
  rate_limited: "lower concurrency or set rpm/tpm limits on the LM",
  server_error: "the provider failed; retry later",
  overloaded: "the provider is overloaded; retry later or lower concurrency",
  timeout: "raise timeoutMs or lower maxTokens",
  connection: "check the base URL and that the server is running",
  bad_response: "check that the base URL points at a server speaking this provider's API",
  auth: "check the API key (option apiKey or the provider's *_API_KEY environment variable)",
  bad_request: "check the model name and request settings",
  context_window: "shorten the prompt (fewer demos) or lower maxTokens",
  content_filter: "rephrase the input; the provider refused it",
  circuit_open: "the endpoint failed repeatedly; wait for the breaker to half-open",
  aborted: "the caller cancelled the call",
  config: "fix the LM options",
};

export function hintFor(code: LMErrorCode): string {
  return HINTS[code];
}

/** Classify an HTTP status (plus provider message) into an error code. */
export function codeForStatus(status: number, providerMessage = "", providerType = ""): LMErrorCode {
  if (status === 429) return "rate_limited";
  if (status === 529) return "overloaded";
  if (status === 503) return "overloaded";
  if (status === 408) return "timeout";
  if (status === 401 || status === 403) return "auth";
  if (status >= 500) return "server_error";
  if (status === 413 || looksLikeContextWindow(providerMessage, providerType)) return "context_window";
  return "bad_request";
}

// OpenAI: code "context_length_exceeded"; Anthropic: "prompt is too long"; Gemini:
// "exceeds the maximum number of tokens"; vLLM: "maximum context length".
const CONTEXT_RE = /context_length_exceeded|context length|context window|prompt is too long|maximum number of tokens|too many tokens/i;

function looksLikeContextWindow(message: string, type: string): boolean {
  return CONTEXT_RE.test(type) || CONTEXT_RE.test(message);
}
