import { afterEach, describe, expect, it } from "vitest";
import {
  BestOfN,
  ChainOfThought,
  configure,
  DspexError,
  Example,
  Module,
  MultiChainComparison,
  Parallel,
  Predict,
  Prediction,
  ReAct,
  Refine,
  withTrace,
  describeTool,
  type Record_,
} from "../../src/index.js";
import { resetSettingsForTests } from "../../src/engine/settings.js";
import { ScriptedLM } from "./helpers.js";

afterEach(() => resetSettingsForTests());

const reply = (fields: Record<string, unknown>) =>
  Object.entries(fields)
    .map(([k, v]) => `[[ ## ${k} ## ]]\n${v}`)
    .join("\n\n") + "\n\n[[ ## completed ## ]]";

class RAG extends Module {
  retrieve = new Predict("question -> query");
  answer = new ChainOfThought("question, context -> answer");
  hops = [new Predict("a -> b"), new Predict("b -> c")];
  async forward(inputs: Record_) {
    const q = await this.retrieve.call(inputs);
    return this.answer.call({ question: inputs.question, context: q.get("query") });
  }
}

describe("Module tree", () => {
  it("names predictors with DSPy paths", () => {
    expect(new RAG().namedPredictors().map(([n]) => n)).toEqual(["retrieve", "answer.predict", "hops[0]", "hops[1]"]);
    expect(new Predict("a -> b").namedPredictors().map(([n]) => n)).toEqual(["self"]);
  });

  it("clone() copies demos deeply and resetCopy() clears them", () => {
    const rag = new RAG();
    rag.retrieve.demos = [{ question: "q", query: "x" }];
    const c = rag.clone();
    expect(c).toBeInstanceOf(RAG);
    expect(c.retrieve).not.toBe(rag.retrieve);
    c.retrieve.demos[0].query = "changed";
    expect(rag.retrieve.demos[0].query).toBe("x");
    expect(rag.resetCopy().retrieve.demos).toEqual([]);
    expect(rag.retrieve.demos).toHaveLength(1);
  });
});

describe("Predict", () => {
  it("needs an LM and says how to configure one", async () => {
    await expect(new Predict("q -> a").call({ q: "x" })).rejects.toThrow(/No LM is loaded\. Call configure/);
  });

  it("returns all completions for n > 1 and samples at 0.7 by default", async () => {
    const lm = new ScriptedLM([[reply({ a: "one" }), reply({ a: "two" })]]);
    const pred = await new Predict("q -> a", { n: 2 }).call({ q: "x" }, { lm });
    expect(pred.get("a")).toBe("one");
    expect(pred.completionValues("a")).toEqual(["one", "two"]);
    expect(lm.last.temperature).toBe(0.7);
    expect(lm.last.n).toBe(2);
  });

  it("accepts an Example and uses only its inputs", async () => {
    const lm = new ScriptedLM([reply({ a: "ok" })]);
    const ex = new Example({ q: "x", a: "gold" }).withInputs("q");
    await new Predict("q -> a").call(ex, { lm });
    expect(lm.last.messages.at(-1)!.content).not.toContain("gold");
  });

  it("records a trace and sums usage through nested calls", async () => {
    const lm = new ScriptedLM([reply({ query: "q1" }), reply({ reasoning: "r", answer: "A" })]);
    configure({ lm });
    const { result, trace } = await withTrace(() => new RAG().call({ question: "Q" }));
    expect(result.get("answer")).toBe("A");
    expect(trace.map((t) => (t.predictor as Predict).signature.outputNames)).toEqual([["query"], ["reasoning", "answer"]]);
    expect(result.usage.totalTokens).toBe(30);
  });
});

describe("ChainOfThought", () => {
  it("prepends a reasoning field with DSPy's prefix", () => {
    const cot = new ChainOfThought("question -> answer");
    expect(cot.predict.signature.outputNames).toEqual(["reasoning", "answer"]);
    expect(cot.predict.signature.field("reasoning")!.prefix).toBe("Reasoning: Let's think step by step in order to");
    expect(cot.predict.signature.instructions).toBe("Given the fields `question`, produce the fields `answer`.");
  });
});

describe("BestOfN and Refine", () => {
  it("BestOfN stops at the first reward over the threshold and varies rollout ids at temperature 1", async () => {
    const lm = new ScriptedLM([reply({ a: "bad" }), reply({ a: "good" }), reply({ a: "never" })]);
    const best = new BestOfN({ module: new Predict("q -> a"), N: 3, rewardFn: (_i, p) => (p.get("a") === "good" ? 1 : 0), threshold: 1 });
    const pred = await best.call({ q: "x" }, { lm });
    expect(pred.get("a")).toBe("good");
    expect(lm.requests.map((r) => [r.rolloutId, r.temperature])).toEqual([
      [0, 1],
      [1, 1],
    ]);
  });

  it("BestOfN returns the best attempt when none reaches the threshold", async () => {
    const lm = new ScriptedLM([reply({ a: "1" }), reply({ a: "3" }), reply({ a: "2" })]);
    const best = new BestOfN({ module: new Predict("q -> a: int"), N: 3, rewardFn: (_i, p) => p.get("a") as number, threshold: 10 });
    expect((await best.call({ q: "x" }, { lm })).get("a")).toBe(3);
  });

  it("BestOfN rejects bad options", () => {
    expect(() => new BestOfN({ module: new Predict("q -> a"), N: 0, rewardFn: () => 1, threshold: 1 })).toThrow(/N >= 1/);
    expect(() => new BestOfN({ module: new Predict("q -> a"), N: 2, rewardFn: "nope", threshold: 1 })).toThrow(/unknown reward function 'nope'/);
  });

  it("Refine feeds the LM's advice back as a hint_ input on the next attempt", async () => {
    const lm = new ScriptedLM([
      reply({ a: "wrong" }),
      reply({ discussion: "self was wrong", advice: '{"self": "Answer with the word right."}' }),
      reply({ a: "right" }),
    ]);
    const refine = new Refine({ module: new Predict("q -> a"), N: 3, rewardFn: (_i, p) => (p.get("a") === "right" ? 1 : 0), threshold: 1 });
    const pred = await refine.call({ q: "x" }, { lm });
    expect(pred.get("a")).toBe("right");
    const third = lm.requests[2].messages.at(-1)!.content;
    expect(third).toContain("[[ ## hint_ ## ]]\nAnswer with the word right.");
    expect(lm.requests[1].messages[0].content).toContain("In the discussion, assign blame to each module");
  });
});

describe("MultiChainComparison", () => {
  it("builds attempts like DSPy and asks for a rationale first", async () => {
    const lm = new ScriptedLM([reply({ rationale: "holistic", answer: "4" })]);
    const mcc = new MultiChainComparison("question -> answer", { M: 2 });
    const sig = mcc.predict.signature;
    expect(sig.inputNames).toEqual(["question", "reasoning_attempt_1", "reasoning_attempt_2"]);
    expect(sig.outputNames).toEqual(["rationale", "answer"]);
    const pred = await mcc.call(
      { question: "2+2?", completions: [{ reasoning: "add them\nmore", answer: "4" }, new Prediction({ reasoning: "guess", answer: "5" })] },
      { lm },
    );
    expect(pred.get("answer")).toBe("4");
    const user = lm.last.messages.at(-1)!.content;
    expect(user).toContain("[[ ## reasoning_attempt_1 ## ]]\n«I'm trying to add them I'm not sure but my prediction is 4»");
    expect(lm.last.messages[0].content).toContain("2. `reasoning_attempt_1` (str): ${reasoning attempt}");
    await expect(mcc.call({ question: "?", completions: [] }, { lm })).rejects.toThrow(/exactly M=2/);
  });
});

describe("Parallel and batch", () => {
  it("keeps order, bounds concurrency and honours the error budget", async () => {
    let inFlight = 0;
    let peak = 0;
    const lm = new ScriptedLM([
      (req) => {
        const q = req.messages.at(-1)!.content.split("\n")[1];
        return reply({ a: `echo ${q}` });
      },
    ]);
    const slowLM = {
      model: lm.model,
      call: async (r: Parameters<typeof lm.call>[0]) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((res) => setImmediate(res));
        inFlight--;
        if (r.messages.at(-1)!.content.includes("boom")) throw new Error("LM down");
        return lm.call(r);
      },
    };
    const p = new Predict("q -> a");
    const inputs = Array.from({ length: 20 }, (_, i) => ({ q: `n${i}` }));
    const out = await p.batch(inputs, { lm: slowLM, concurrency: 4 });
    expect(out.map((x) => (x as Prediction).get("a"))).toEqual(inputs.map((i) => `echo ${i.q}`));
    expect(peak).toBeLessThanOrEqual(4);

    configure({ lm: slowLM });
    const par = new Parallel({ concurrency: 3, returnErrors: true, maxErrors: 1 });
    const res = await par.run([
      [p, { q: "fine" }],
      [p, { q: "boom" }],
    ]);
    expect(res[0]).toBeInstanceOf(Prediction);
    expect(res[1]).toBeInstanceOf(Error);
    await expect(new Parallel({ concurrency: 1 }).run([[p, { q: "boom" }]])).rejects.toThrow(/Parallel stopped after 1 error/);
  });
});

describe("ReAct", () => {
  const search = {
    name: "search",
    desc: "Look up facts.",
    args: { query: { type: "string" } },
    fn: ({ query }: Record_) => `result for ${query}`,
  };

  it("describes tools like DSPy's str(Tool)", () => {
    expect(describeTool(search)).toBe("search, whose description is <desc>Look up facts.</desc>. It takes arguments {'query': {'type': 'string'}}.");
  });

  it("loops over tools, records the trajectory, then extracts the answer", async () => {
    const lm = new ScriptedLM([
      reply({ next_thought: "search it", next_tool_name: "search", next_tool_args: '{"query": "capital"}' }),
      reply({ next_thought: "done", next_tool_name: "finish", next_tool_args: "{}" }),
      reply({ reasoning: "found", answer: "Paris" }),
    ]);
    const agent = new ReAct("question -> answer", [search]);
    const pred = await agent.call({ question: "Capital of France?" }, { lm });
    expect(pred.get("answer")).toBe("Paris");
    expect(pred.get("trajectory")).toMatchObject({ observation_0: "result for capital", tool_name_1: "finish", observation_1: "Completed." });
    const sys = lm.requests[0].messages[0].content;
    expect(sys).toContain("(1) search, whose description is <desc>Look up facts.</desc>. It takes arguments {'query': {'type': 'string'}}.");
    expect(sys).toContain("(2) finish, whose description is <desc>Marks the task as complete.");
    expect(sys).toContain("`next_tool_name` (Literal['search', 'finish'])");
    const second = lm.requests[1].messages.at(-1)!.content;
    expect(second).toContain('[[ ## tool_args_0 ## ]]\n{"query": "capital"}');
  });

  it("turns tool exceptions into observations", async () => {
    const bad = { name: "bad", args: {}, fn: () => {
      throw new TypeError("nope");
    } };
    const lm = new ScriptedLM([
      reply({ next_thought: "try", next_tool_name: "bad", next_tool_args: "{}" }),
      reply({ next_thought: "stop", next_tool_name: "finish", next_tool_args: "{}" }),
      reply({ reasoning: "r", answer: "x" }),
    ]);
    const pred = await new ReAct("question -> answer", [bad]).call({ question: "?" }, { lm });
    expect((pred.get("trajectory") as Record_).observation_0).toBe("Execution error in bad: TypeError: nope");
  });

  it("rejects unknown registered tool names", () => {
    expect(() => new ReAct("q -> a", ["no_such_tool"])).toThrow(DspexError);
  });
});
