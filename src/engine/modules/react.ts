// ReAct: an agent loop choosing among named tools (DSPy's prompt and trajectory format),
// then extracting the signature's outputs from the trajectory with ChainOfThought.
import { ChatAdapter } from "../adapters/chat.js";
import { DspexError } from "../errors.js";
import { Prediction, type Record_ } from "../example.js";
import { pyRepr } from "../python.js";
import { getRegistry, type ToolDef } from "../registry.js";
import { settings } from "../settings.js";
import { InputField, OutputField, Signature, type SignatureJSON } from "../signature/signature.js";
import { T } from "../signature/types.js";
import { ChainOfThought } from "./chain_of_thought.js";
import { Module, type ModuleSpec } from "./module.js";
import { Predict } from "./predict.js";

/** DSPy's str(Tool): "name, whose description is <desc>...</desc>. It takes arguments {...}." */
export function describeTool(tool: ToolDef): string {
  const desc = tool.desc ? `, whose description is <desc>${tool.desc}</desc>.`.replace(/\n/g, "  ") : ".";
  return `${tool.name}${desc} It takes arguments ${pyRepr(tool.args)}.`;
}

export interface ReActOptions {
  maxIters?: number;
}

export class ReAct extends Module {
  react: Predict;
  extract: ChainOfThought;
  readonly maxIters: number;
  private readonly _tools: Map<string, ToolDef>;
  private readonly _toolNames: string[];
  private readonly _baseSignature: Signature;

  /** `tools`: tool definitions, or names of tools registered with registerTool(). */
  constructor(signature: string | Signature, tools: (ToolDef | string)[], options: ReActOptions = {}) {
    super();
    const sig = Signature.from(signature);
    this._baseSignature = sig;
    this.maxIters = options.maxIters ?? 10;
    const registry = getRegistry();
    const list = tools.map((t) => (typeof t === "string" ? registry.tools.get(t) : t));
    this._toolNames = tools.map((t) => (typeof t === "string" ? t : t.name));
    this._tools = new Map();
    for (const t of list) {
      if (!t || typeof t.name !== "string" || typeof t.fn !== "function") throw new DspexError("tool", "each ReAct tool needs a name and a fn");
      if (t.name === "finish") throw new DspexError("tool", "'finish' is reserved by ReAct; rename your tool");
      this._tools.set(t.name, t);
    }
    const inputs = sig.inputNames.map((k) => `\`${k}\``).join(", ");
    const outputs = sig.outputNames.map((k) => `\`${k}\``).join(", ");
    const instr: string[] = sig.instructions ? [`${sig.instructions}\n`] : [];
    instr.push(
      `You are an Agent. In each episode, you will be given the fields ${inputs} as input. And you can see your past trajectory so far.`,
      `Your goal is to use one or more of the supplied tools to collect any necessary information for producing ${outputs}.\n`,
      "To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
      "After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
      "When writing next_thought, you may reason about the current situation and plan for future steps.",
      "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
    );
    this._tools.set("finish", {
      name: "finish",
      desc: `Marks the task as complete. That is, signals that all information for producing the outputs, i.e. ${outputs}, are now available to be extracted.`,
      args: {},
      fn: () => "Completed.",
    });
    [...this._tools.values()].forEach((t, i) => instr.push(`(${i + 1}) ${describeTool(t)}`));
    instr.push("When providing `next_tool_args`, the value inside the field must be in JSON format");

    const reactSig = new Signature(sig.inputFields.map((f) => ({ ...f })), instr.join("\n"))
      .append("trajectory", InputField())
      .append("next_thought", OutputField())
      .append("next_tool_name", OutputField({ type: T.literal(...this._tools.keys()) }))
      .append("next_tool_args", OutputField({ type: T.dict(T.any(), T.str()) }));
    const fallbackSig = new Signature([...sig.inputFields, ...sig.outputFields].map((f) => ({ ...f })), sig.instructions).append(
      "trajectory",
      InputField(),
    );
    this.react = new Predict(reactSig);
    this.extract = new ChainOfThought(fallbackSig);
  }

  private formatTrajectory(trajectory: Record_): string {
    const adapter = settings().adapter ?? new ChatAdapter();
    const keys = Object.keys(trajectory);
    const sig = Signature.parse(`${keys.join(", ")} -> x`);
    return adapter.formatUserMessageContent(sig, trajectory);
  }

  override async forward(inputs: Record_): Promise<Prediction> {
    const { max_iters, ...args } = inputs as Record_ & { max_iters?: number };
    const maxIters = typeof max_iters === "number" ? max_iters : this.maxIters;
    const trajectory: Record_ = {};
    for (let idx = 0; idx < maxIters; idx++) {
      let pred: Prediction;
      try {
        pred = await this.react.call({ ...args, trajectory: this.formatTrajectory(trajectory) });
      } catch (e) {
        // DSPy stops the loop when the agent's reply cannot be parsed and extracts what it has.
        if ((e as DspexError).code === "adapter_parse") break;
        throw e;
      }
      const name = pred.get("next_tool_name") as string;
      const toolArgs = (pred.get("next_tool_args") ?? {}) as Record_;
      trajectory[`thought_${idx}`] = pred.get("next_thought");
      trajectory[`tool_name_${idx}`] = name;
      trajectory[`tool_args_${idx}`] = toolArgs;
      const tool = this._tools.get(name);
      try {
        if (!tool) throw Object.assign(new Error(`'${name}'`), { name: "KeyError" });
        trajectory[`observation_${idx}`] = await tool.fn(toolArgs);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        trajectory[`observation_${idx}`] = `Execution error in ${name}: ${e.name}: ${e.message}`;
      }
      if (name === "finish") break;
    }
    const extracted = await this.extract.call({ ...args, trajectory: this.formatTrajectory(trajectory) });
    return new Prediction({ trajectory, ...extracted.toDict() }, { completions: extracted.completions.map((c) => ({ trajectory, ...c })) });
  }

  override toSpec(): ModuleSpec {
    const registry = getRegistry();
    for (const n of this._toolNames) {
      if (!registry.tools.has(n)) {
        throw new DspexError("registry_unknown", `ReAct tool '${n}' is not registered; register it with registerTool() so the program can be saved and rebuilt by name`);
      }
    }
    return { kind: "ReAct", config: { signature: this._baseSignature.toJSON(), tools: this._toolNames, maxIters: this.maxIters } };
  }

  static fromConfig(c: { signature: SignatureJSON; tools: string[]; maxIters?: number }): ReAct {
    if (!Array.isArray(c.tools)) throw new DspexError("program_state", "ReAct config needs 'tools': an array of registered tool names");
    return new ReAct(Signature.fromJSON(c.signature), c.tools, { maxIters: c.maxIters });
  }
}
