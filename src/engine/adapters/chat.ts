// ChatAdapter: the exact prompt text DSPy 3.x produces, with `[[ ## field ## ]]` markers.
import { AdapterParseError, DspexError } from "../errors.js";
import { addUsage, type ChatMessage, type LM, type LMSettings } from "../lm/types.js";
import { pyJsonDumps, pyStr, pyStrip, dedent, splitLines } from "../python.js";
import type { FieldDef, Signature } from "../signature/signature.js";
import { annotationName, jsonSchema } from "../signature/types.js";
import type { Adapter, AdapterResult } from "./adapter.js";
import { formatFieldValue, parseValue } from "./values.js";
import type { Record_ } from "../example.js";

const FIELD_HEADER = /^\[\[ ## (\w+) ## \]\]/;
export const INCOMPLETE_DEMO_PREFIX = "This is an example of the task, though some input or output fields are not supplied.";
const MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. ";
const MISSING_IN_HISTORY = "Not supplied for this conversation history message. ";

/** Add the tokens of a failed attempt to the result of the attempt that replaced it. */
export function withSpentUsage(err: AdapterParseError, result: AdapterResult): AdapterResult {
  return err.usage ? { ...result, usage: addUsage(err.usage, result.usage) } : result;
}

/** "{field}" plus, for typed outputs, the "# note: the value you produce ..." hint. */
export function translateFieldType(f: FieldDef): string {
  const t = f.type;
  let desc = "";
  if (f.io === "input" || t.kind === "str") desc = "";
  else if (t.kind === "bool") desc = "must be True or False";
  else if (t.kind === "int" || t.kind === "float") desc = `must be a single ${t.kind} value`;
  else if (t.kind === "literal") desc = `must exactly match (no extra characters) one of: ${t.values.map((v) => pyStr(v)).join("; ")}`;
  else desc = `must adhere to the JSON schema: ${pyJsonDumps(jsonSchema(t), { ensureAscii: false })}`;
  return `{${f.name}}${desc ? " ".repeat(8) + `# note: the value you produce ${desc}` : ""}`;
}

/** "1. `question` (str): desc" lines, as DSPy's get_field_description_string. */
export function fieldDescriptions(fields: readonly FieldDef[]): string {
  return fields
    .map((f, i) => {
      const desc = f.desc === `\${${f.name}}` ? "" : f.desc;
      let line = `${i + 1}. \`${f.name}\` (${annotationName(f.type)}): ${desc}`;
      if (f.constraints) line += `\nConstraints: ${f.constraints}`;
      return line;
    })
    .join("\n")
    .trim();
}

export interface ChatAdapterOptions {
  /** Retry with the JSONAdapter when a reply cannot be parsed (DSPy's default: true). */
  useJsonAdapterFallback?: boolean;
}

export class ChatAdapter implements Adapter {
  readonly name: string = "ChatAdapter";
  readonly useJsonAdapterFallback: boolean;

  constructor(options: ChatAdapterOptions = {}) {
    this.useJsonAdapterFallback = options.useJsonAdapterFallback ?? true;
  }

  async call(
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    try {
      return await this.callOnce(lm, settings, signature, demos, inputs);
    } catch (err) {
      // Like DSPy, a reply the markers cannot parse is retried once in JSON mode.
      // Unlike DSPy, LM transport errors are not retried here: the LM layer already did.
      if (!(err instanceof AdapterParseError) || !this.useJsonAdapterFallback || this.name !== "ChatAdapter") throw err;
      const { JSONAdapter } = await import("./json.js");
      return withSpentUsage(err, await new JSONAdapter().call(lm, settings, signature, demos, inputs));
    }
  }

  protected async callOnce(
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    const messages = this.format(signature, demos, inputs);
    const response = await lm.call({ ...settings, messages });
    if (!Array.isArray(response.outputs) || response.outputs.length === 0) {
      throw new DspexError("adapter_parse", `the LM ${lm.model} returned no completions; check the model name and provider`);
    }
    try {
      return {
        completions: response.outputs.map((text) => this.parse(signature, text)),
        usage: response.usage,
        model: response.model,
      };
    } catch (err) {
      if (err instanceof AdapterParseError) err.usage = response.usage;
      throw err;
    }
  }

  format(signature: Signature, demos: Record_[], inputs: Record_): ChatMessage[] {
    const messages: ChatMessage[] = [{ role: "system", content: this.formatSystemMessage(signature) }];
    messages.push(...this.formatDemos(signature, demos));
    messages.push({ role: "user", content: this.formatUserMessageContent(signature, inputs, { mainRequest: true }) });
    return messages;
  }

  /** Signatures are immutable, so each one's system message is built once per adapter. */
  private readonly systemCache = new WeakMap<Signature, string>();

  formatSystemMessage(signature: Signature): string {
    let text = this.systemCache.get(signature);
    if (text === undefined) {
      text = `${this.formatFieldDescription(signature)}\n${this.formatFieldStructure(signature)}\n${this.formatTaskDescription(signature)}`;
      this.systemCache.set(signature, text);
    }
    return text;
  }

  formatFieldDescription(signature: Signature): string {
    return (
      `Your input fields are:\n${fieldDescriptions(signature.inputFields)}\n` +
      `Your output fields are:\n${fieldDescriptions(signature.outputFields)}`
    );
  }

  formatFieldStructure(signature: Signature): string {
    const parts = [
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      this.formatFieldsWithValues(signature.inputFields.map((f) => [f, translateFieldType(f)])),
      this.formatFieldsWithValues(signature.outputFields.map((f) => [f, translateFieldType(f)])),
      "[[ ## completed ## ]]\n",
    ];
    return pyStrip(parts.join("\n\n"));
  }

  formatTaskDescription(signature: Signature): string {
    const instructions = dedent(signature.instructions);
    const objective = ["", ...splitLines(instructions)].join("\n" + " ".repeat(8));
    return `In adhering to this structure, your objective is: ${objective}`;
  }

  formatUserMessageContent(
    signature: Signature,
    inputs: Record_,
    options: { prefix?: string; suffix?: string; mainRequest?: boolean } = {},
  ): string {
    const parts: string[] = [options.prefix ?? ""];
    for (const f of signature.inputFields) {
      if (Object.prototype.hasOwnProperty.call(inputs, f.name)) {
        parts.push(`[[ ## ${f.name} ## ]]\n${formatFieldValue(f.type, inputs[f.name])}`);
      }
    }
    if (options.mainRequest) {
      const req = this.userMessageOutputRequirements(signature);
      if (req !== undefined) parts.push(req);
    }
    parts.push(options.suffix ?? "");
    return pyStrip(parts.join("\n\n"));
  }

  userMessageOutputRequirements(signature: Signature): string | undefined {
    const typeInfo = (f: FieldDef) => (f.type.kind !== "str" ? ` (must be formatted as a valid Python ${annotationName(f.type)})` : "");
    return (
      "Respond with the corresponding output fields, starting with the field " +
      signature.outputFields.map((f) => `\`[[ ## ${f.name} ## ]]\`${typeInfo(f)}`).join(", then ") +
      ", and then ending with the marker for `[[ ## completed ## ]]`."
    );
  }

  formatAssistantMessageContent(signature: Signature, outputs: Record_, missingFieldMessage?: string): string {
    const body = this.formatFieldsWithValues(
      signature.outputFields.map((f) => [f, Object.prototype.hasOwnProperty.call(outputs, f.name) ? outputs[f.name] : missingFieldMessage]),
    );
    return body + "\n\n[[ ## completed ## ]]\n";
  }

  /** Few-shot demos as user/assistant pairs: incomplete demos first, then complete ones. */
  formatDemos(signature: Signature, demos: Record_[]): ChatMessage[] {
    const complete: Record_[] = [];
    const incomplete: Record_[] = [];
    const has = (d: Record_, k: string) => Object.prototype.hasOwnProperty.call(d, k);
    for (const demo of demos) {
      const isComplete = signature.fields.every((f) => has(demo, f.name) && demo[f.name] !== null && demo[f.name] !== undefined);
      const hasInput = signature.inputFields.some((f) => has(demo, f.name));
      const hasOutput = signature.outputFields.some((f) => has(demo, f.name));
      if (isComplete) complete.push(demo);
      else if (hasInput && hasOutput) incomplete.push(demo);
    }
    const messages: ChatMessage[] = [];
    for (const demo of incomplete) {
      messages.push({ role: "user", content: this.formatUserMessageContent(signature, demo, { prefix: INCOMPLETE_DEMO_PREFIX }) });
      messages.push({ role: "assistant", content: this.formatAssistantMessageContent(signature, demo, MISSING_IN_INCOMPLETE_DEMO) });
    }
    for (const demo of complete) {
      messages.push({ role: "user", content: this.formatUserMessageContent(signature, demo) });
      messages.push({ role: "assistant", content: this.formatAssistantMessageContent(signature, demo, MISSING_IN_HISTORY) });
    }
    return messages;
  }

  protected formatFieldsWithValues(pairs: [FieldDef, unknown][]): string {
    return pyStrip(pairs.map(([f, v]) => `[[ ## ${f.name} ## ]]\n${formatFieldValue(f.type, v)}`).join("\n\n"));
  }

  parse(signature: Signature, completion: string): Record_ {
    const sections: [string | null, string[]][] = [[null, []]];
    for (const line of splitLines(completion)) {
      const m = line.includes("[[ ## ") ? FIELD_HEADER.exec(pyStrip(line)) : null;
      if (m) {
        // Text after the header on the same line belongs to the field. DSPy slices the
        // unstripped line at the stripped match's end; kept so replies parse identically.
        const rest = pyStrip(line.slice(m[0].length));
        sections.push([m[1], rest ? [rest] : []]);
      } else sections[sections.length - 1][1].push(line);
    }
    const fields: Record_ = {};
    for (const [name, lines] of sections) {
      if (name === null || Object.prototype.hasOwnProperty.call(fields, name)) continue;
      const f = signature.outputFields.find((x) => x.name === name);
      if (!f) continue;
      const text = pyStrip(lines.join("\n"));
      try {
        fields[name] = parseValue(text, f.type);
      } catch (e) {
        throw new AdapterParseError({
          adapterName: this.name,
          expectedFields: signature.outputNames,
          lmResponse: completion,
          message: `Failed to parse field ${name} with value ${text} from the LM response. Error message: ${(e as Error).message}`,
        });
      }
    }
    const missing = signature.outputNames.filter((n) => !Object.prototype.hasOwnProperty.call(fields, n));
    if (missing.length > 0) {
      throw new AdapterParseError({ adapterName: this.name, expectedFields: signature.outputNames, lmResponse: completion, parsedResult: fields });
    }
    // Keep the signature's field order regardless of the reply's order.
    const ordered: Record_ = {};
    for (const n of signature.outputNames) ordered[n] = fields[n];
    return ordered;
  }
}
