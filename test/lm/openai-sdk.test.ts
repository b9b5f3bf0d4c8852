// The official openai npm SDK (v6) against sim-lm: proves sim-lm speaks the real wire format.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimLm, type SimLm } from "../../src/simlm/server.js";
import { chatField, chatPrompt } from "../simlm/prompts.js";

describe("openai SDK against sim-lm", () => {
  let sim: SimLm;
  let client: OpenAI;
  beforeAll(async () => {
    sim = await startSimLm({ seed: 9, baseAccuracy: 1, retryAfterMs: 20 });
    client = new OpenAI({ apiKey: "sk-sim", baseURL: `${sim.url}/v1`, maxRetries: 0, timeout: 5000 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("completes a chat call with typed usage", async () => {
    const r = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: chatPrompt("What is 12 + 30?", { outputs: [{ name: "reasoning" }, { name: "answer", type: "int" }] }),
    });
    expect(r.object).toBe("chat.completion");
    expect(r.model).toBe("gpt-4o-mini");
    expect(r.choices[0].finish_reason).toBe("stop");
    expect(chatField(r.choices[0].message.content ?? "", "answer")).toBe("42");
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
  });

  it("supports n and json_schema response_format", async () => {
    const r = await client.chat.completions.create({
      model: "gpt-4o-mini",
      n: 2,
      messages: [{ role: "user", content: "What is 6 * 7?" }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "Out", strict: true, schema: { type: "object", properties: { answer: { type: "integer" } }, required: ["answer"], additionalProperties: false } },
      },
    });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(JSON.parse(r.choices[0].message.content ?? "")).toEqual({ answer: 42 });
  });

  it("lists models", async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toContain("gpt-4o-mini");
  });

  it("gets a typed RateLimitError, and its own retry honours retry-after-ms", async () => {
    sim.inject("rate_limit");
    await expect(client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    sim.inject("rate_limit");
    const retrying = new OpenAI({ apiKey: "sk-sim", baseURL: `${sim.url}/v1`, maxRetries: 2 });
    const r = await retrying.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
    expect(r.choices[0].message.content).toBeTruthy();
  });
});
