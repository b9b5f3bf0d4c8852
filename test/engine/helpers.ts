// A scripted LM for engine tests: returns queued replies and records every request.
import type { LM, LMRequest, LMResponse } from "../../src/engine/lm/types.js";

export class ScriptedLM implements LM {
  readonly requests: LMRequest[] = [];
  private readonly replies: (string | string[] | ((req: LMRequest) => string | string[]))[];
  constructor(
    replies: (string | string[] | ((req: LMRequest) => string | string[]))[] = [],
    readonly model = "test/scripted",
  ) {
    this.replies = [...replies];
  }
  async call(req: LMRequest): Promise<LMResponse> {
    this.requests.push(req);
    const next = this.replies.length > 1 ? this.replies.shift()! : this.replies[0];
    if (next === undefined) throw new Error("ScriptedLM: no reply queued");
    const out = typeof next === "function" ? next(req) : next;
    const outputs = Array.isArray(out) ? out : [out];
    return { outputs, model: this.model, usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15, costUsd: 0.001 } };
  }
  get last(): LMRequest {
    return this.requests[this.requests.length - 1];
  }
}
