// OpenTelemetry spans for LM calls, named and attributed per the gen_ai semantic conventions.
// Only @opentelemetry/api is used: with no SDK registered the tracer is a no-op, and we build
// attribute objects only when span.isRecording(), so the cost is one no-op span per call.
import { SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";

const tracer = trace.getTracer("dspex.lm", "0.1.0");

export interface SpanRequest {
  provider: string;
  model: string;
  serverAddress: string;
  serverPort: number;
  temperature?: number;
  maxTokens?: number;
  topP?: number;
  n?: number;
}

export function startLMSpan(r: SpanRequest): Span {
  const span = tracer.startSpan(`chat ${r.model}`, { kind: SpanKind.CLIENT });
  if (span.isRecording()) {
    span.setAttributes({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": r.provider,
      // Pre-1.37 name of the same attribute, still read by many backends.
      "gen_ai.system": r.provider,
      "gen_ai.request.model": r.model,
      "server.address": r.serverAddress,
      "server.port": r.serverPort,
    });
    if (r.temperature !== undefined) span.setAttribute("gen_ai.request.temperature", r.temperature);
    if (r.maxTokens !== undefined) span.setAttribute("gen_ai.request.max_tokens", r.maxTokens);
    if (r.topP !== undefined) span.setAttribute("gen_ai.request.top_p", r.topP);
    if (r.n !== undefined && r.n !== 1) span.setAttribute("gen_ai.request.choice.count", r.n);
  }
  return span;
}

export interface SpanResult {
  responseModel: string;
  inputTokens: number;
  outputTokens: number;
  finishReasons: (string | null)[];
  cached: boolean;
  attempts: number;
}

export function endLMSpan(span: Span, r: SpanResult): void {
  if (span.isRecording()) {
    span.setAttributes({
      "gen_ai.response.model": r.responseModel,
      "gen_ai.usage.input_tokens": r.inputTokens,
      "gen_ai.usage.output_tokens": r.outputTokens,
      "gen_ai.response.finish_reasons": r.finishReasons.map((f) => f ?? "unknown"),
      "dspex.lm.cached": r.cached,
      "dspex.lm.attempts": r.attempts,
    });
  }
  span.end();
}

export function failLMSpan(span: Span, code: string, message: string, attempts: number): void {
  if (span.isRecording()) {
    span.setAttributes({ "error.type": code, "dspex.lm.attempts": attempts });
    span.setStatus({ code: SpanStatusCode.ERROR, message });
  }
  span.end();
}
