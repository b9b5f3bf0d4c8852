// OpenTelemetry: with a tracer provider registered, each LM call makes one CLIENT span with
// the gen_ai semantic-convention attributes. (Own file: the global provider is per process.)
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span, type SpanOptions, type Tracer, type TracerProvider } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import { closeAllPools, createLM } from "../../src/engine/lm/index.js";

interface Recorded {
  name: string;
  kind?: SpanKind;
  attributes: Attributes;
  status?: { code: SpanStatusCode; message?: string };
  ended: boolean;
}

const spans: Recorded[] = [];

function recordingSpan(rec: Recorded): Span {
  const span = {
    spanContext: () => ({ traceId: "0".repeat(31) + "1", spanId: "0".repeat(15) + "1", traceFlags: 1 }),
    setAttribute: (k: string, v: unknown) => ((rec.attributes[k] = v as never), span),
    setAttributes: (a: Attributes) => (Object.assign(rec.attributes, a), span),
    addEvent: () => span,
    addLink: () => span,
    addLinks: () => span,
    setStatus: (s: { code: SpanStatusCode; message?: string }) => ((rec.status = s), span),
    updateName: () => span,
    end: () => {
      rec.ended = true;
    },
    isRecording: () => true,
    recordException: () => undefined,
  };
  return span as unknown as Span;
}

const provider: TracerProvider = {
  getTracer: () =>
    ({
      startSpan: (name: string, options?: SpanOptions) => {
        const rec: Recorded = { name, kind: options?.kind, attributes: { ...options?.attributes }, ended: false };
        spans.push(rec);
        return recordingSpan(rec);
      },
    }) as unknown as Tracer,
};

let sim: SimLm;
beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  sim = await startSimLm({ seed: 2 });
});
afterAll(async () => {
  trace.disable();
  await sim.close();
  await closeAllPools();
});

describe("LM spans", () => {
  it("records gen_ai attributes for a successful call", async () => {
    const lm = createLM("openai/gpt-4o-mini", { baseUrl: `${sim.url}/v1`, cache: false });
    const r = await lm.call({ messages: [{ role: "user", content: "What is 3 + 4?" }], temperature: 0.2, maxTokens: 40 });
    const s = spans.at(-1)!;
    expect(s.name).toBe("chat gpt-4o-mini");
    expect(s.kind).toBe(SpanKind.CLIENT);
    expect(s.ended).toBe(true);
    expect(s.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.system": "openai",
      "gen_ai.request.model": "gpt-4o-mini",
      "gen_ai.request.temperature": 0.2,
      "gen_ai.request.max_tokens": 40,
      "gen_ai.response.model": "gpt-4o-mini",
      "gen_ai.usage.input_tokens": r.usage.promptTokens,
      "gen_ai.usage.output_tokens": r.usage.completionTokens,
      "gen_ai.response.finish_reasons": ["stop"],
      "server.address": "127.0.0.1",
      "server.port": sim.port,
    });
  });

  it("marks failed calls with error.type and an error status", async () => {
    const lm = createLM("gemini/gemini-2.5-flash", { baseUrl: sim.url, cache: false, retry: false });
    sim.inject("server_error");
    await lm.call({ messages: [{ role: "user", content: "hi" }] }).catch(() => undefined);
    const s = spans.at(-1)!;
    expect(s.attributes["gen_ai.provider.name"]).toBe("gcp.gemini");
    expect(s.attributes["error.type"]).toBe("server_error");
    expect(s.status?.code).toBe(SpanStatusCode.ERROR);
    expect(s.ended).toBe(true);
  });
});
