// ChatAdapter: the exact prompt text DSPy 3.x produces, with `[[ ## field ## ]]` markers.
import { AdapterParseError, DspexError } from "../errors.js";
import { addUsage, type ChatMessage, type LM, type LMResponse, type LMSettings } from "../lm/types.js";
import { pyJsonDumps, pyStr, pyStrip, dedent, splitLines } from "../python.js";
import type { FieldDef, Signature } from "../signature/signature.js";
import { annotationName, jsonSchema } from "../signature/types.js";
import type { Adapter, AdapterResult } from "./adapter.js";
import { formatFieldValue, parseValue, strip } from "./values.js";
import type { Record_ } from "../example.js";

const FIELD_HEADER = /^\[\[ ## (\w+) ## \]\]/;
export const INCOMPLETE_DEMO_PREFIX = "This is an example of the task, though some input or output fields are not supplied.";
const MISSING_IN_INCOMPLETE_DEMO = "Not supplied for this particular example. ";
const MISSING_IN_HISTORY = "Not supplied for this conversation history message. ";
const MAIN_REQUEST = Object.freeze({ mainRequest: true });
// Python's str.splitlines() breaks on these besides "\n"; replies rarely hold any.
const OTHER_LINE_BREAK = /[\r\v\f\x1c-\x1e\x85\u2028\u2029]/;
const LINE_BREAKS = /\r\n|[\r\v\f\x1c-\x1e\x85\u2028\u2029]/g;

// Module-level, not closures made per call: under tsx (esbuild keepNames) every named
// closure costs a defineProperty when it is created.
function has(d: Record_, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(d, k);
}

function typeInfo(f: FieldDef): string {
  return f.type.kind !== "str" ? ` (must be formatted as a valid Python ${annotationName(f.type)})` : "";
}

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

  call(
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    // .catch, not async/await: one promise fewer on every call (each costs async-hook work).
    return this.callOnce(lm, settings, signature, demos, inputs).catch((err: unknown) => this.fallback(err, lm, settings, signature, demos, inputs));
  }

  private async fallback(
    err: unknown,
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    // Like DSPy, a reply the markers cannot parse is retried once in JSON mode.
    // Unlike DSPy, LM transport errors are not retried here: the LM layer already did.
    if (!(err instanceof AdapterParseError) || !this.useJsonAdapterFallback || this.name !== "ChatAdapter") throw err;
    const { JSONAdapter } = await import("./json.js");
    return withSpentUsage(err, await new JSONAdapter().call(lm, settings, signature, demos, inputs));
  }

  protected callOnce(
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    // Not async (one promise fewer per call); anything thrown still comes out as a rejection.
    let reply: Promise<LMResponse>;
    try {
      reply = Promise.resolve(lm.call({ ...settings, messages: this.format(signature, demos, inputs) }));
    } catch (err) {
      return Promise.reject(err);
    }
    return reply.then((response) => this.toResult(lm, signature, response));
  }

  private toResult(lm: LM, signature: Signature, response: LMResponse): AdapterResult {
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
    if (demos.length > 0) messages.push(...this.formatDemos(signature, demos));
    messages.push({ role: "user", content: this.formatUserMessageContent(signature, inputs, MAIN_REQUEST) });
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
    // An empty prefix/suffix only adds "\n\n" that the final strip removes again, so it is
    // left out (and the strip then usually has nothing to do).
    const parts: string[] = options.prefix ? [options.prefix] : [];
    for (const f of signature.inputFields) {
      if (Object.prototype.hasOwnProperty.call(inputs, f.name)) {
        parts.push(`[[ ## ${f.name} ## ]]\n${formatFieldValue(f.type, inputs[f.name])}`);
      }
    }
    if (options.mainRequest) {
      const req = this.outputRequirements(signature);
      if (req !== undefined) parts.push(req);
    }
    if (options.suffix) parts.push(options.suffix);
    return strip(parts.join("\n\n"));
  }

  private readonly requirementsCache = new WeakMap<Signature, string | undefined>();

  /** userMessageOutputRequirements, built once per signature (it depends on nothing else). */
  private outputRequirements(signature: Signature): string | undefined {
    if (this.requirementsCache.has(signature)) return this.requirementsCache.get(signature);
    const text = this.userMessageOutputRequirements(signature);
    this.requirementsCache.set(signature, text);
    return text;
  }

  userMessageOutputRequirements(signature: Signature): string | undefined {
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
    // DSPy splits the reply into lines (str.splitlines), starts a section at each line that
    // is a `[[ ## name ## ]]` header once stripped, and parses each output field's section
    // (first one wins). Same here, but walking the text by index instead of splitting it:
    // no string per line, and field names are matched in place against the signature's.
    // Other line breaks are first turned into "\n", which gives the same lines.
    const text = OTHER_LINE_BREAK.test(completion) ? completion.replace(LINE_BREAKS, "\n") : completion;
    const outputs = signature.outputFields;
    const values: unknown[] = new Array(outputs.length);
    const order: number[] = []; // output indexes in the order their sections came
    let field = -1; // output index of the open section (-1: none, or not an output)
    let restOf = ""; // the open section's text after its header, on the header's line
    let bodyStart = 0; // where the open section's following lines start
    // Only lines holding the "[[ ## " marker can be headers: go from marker to marker.
    for (let marker = text.indexOf("[[ ## "); marker !== -1; ) {
      const lineStart = text.lastIndexOf("\n", marker - 1) + 1;
      let lineEnd = text.indexOf("\n", marker);
      if (lineEnd === -1) lineEnd = text.length;
      let name: string | undefined;
      let nameAt = 0;
      let nameEnd = 0;
      let rest = "";
      if (marker === lineStart) {
        let j = marker + 6;
        while (j < lineEnd && isWordChar(text.charCodeAt(j))) j++;
        if (j > marker + 6 && text.startsWith(" ## ]]", j)) {
          nameAt = marker + 6;
          nameEnd = j;
          rest = strip(text.slice(j + 6, lineEnd));
        }
      } else {
        const line = text.slice(lineStart, lineEnd);
        const m = FIELD_HEADER.exec(strip(line));
        if (m !== null) {
          name = m[1];
          // DSPy slices the unstripped line at the stripped match's end; kept so replies parse identically.
          rest = strip(line.slice(m[0].length));
        }
      }
      if (nameEnd > 0 || name !== undefined) {
        if (field >= 0) this.closeSection(signature, completion, values, order, field, restOf, text, bodyStart, lineStart - 1);
        field = name !== undefined ? outputIndex(outputs, name) : outputIndexAt(outputs, text, nameAt, nameEnd);
        if (field >= 0 && order.includes(field)) field = -1; // a repeated field: the first section wins
        restOf = rest;
        bodyStart = lineEnd + 1;
      }
      marker = lineEnd < text.length ? text.indexOf("[[ ## ", lineEnd + 1) : -1;
    }
    if (field >= 0) this.closeSection(signature, completion, values, order, field, restOf, text, bodyStart, text.length);
    if (order.length < outputs.length) {
      const fields: Record_ = {};
      for (const k of order) fields[outputs[k].name] = values[k];
      throw new AdapterParseError({ adapterName: this.name, expectedFields: signature.outputNames, lmResponse: completion, parsedResult: fields });
    }
    // The signature's field order, whatever the reply's order.
    const ordered: Record_ = {};
    for (let k = 0; k < outputs.length; k++) ordered[outputs[k].name] = values[k];
    return ordered;
  }

  /** Parse one output field's section: `rest` (stripped) plus the lines in text[from, to). */
  private closeSection(
    signature: Signature,
    completion: string,
    values: unknown[],
    order: number[],
    field: number,
    rest: string,
    text: string,
    from: number,
    to: number,
  ): void {
    // The section's lines, joined with "\n" as DSPy does; trailing (and, without `rest`,
    // leading) newlines dropped, which the final strip would remove anyway.
    while (to > from && text.charCodeAt(to - 1) === 10) to--;
    if (!rest) while (from < to && text.charCodeAt(from) === 10) from++;
    const lines = from < to ? text.slice(from, to) : "";
    const body = strip(rest ? (lines ? `${rest}\n${lines}` : rest) : lines);
    const f = signature.outputFields[field];
    try {
      values[field] = parseValue(body, f.type);
    } catch (e) {
      throw new AdapterParseError({
        adapterName: this.name,
        expectedFields: signature.outputNames,
        lmResponse: completion,
        message: `Failed to parse field ${f.name} with value ${body} from the LM response. Error message: ${(e as Error).message}`,
      });
    }
    order.push(field);
  }
}

/** \w of a non-unicode regex: [A-Za-z0-9_]. */
function isWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}

function outputIndex(outputs: readonly FieldDef[], name: string): number {
  for (let k = 0; k < outputs.length; k++) if (outputs[k].name === name) return k;
  return -1;
}

/** outputIndex() of the name text[from, to), without making a string of it. */
function outputIndexAt(outputs: readonly FieldDef[], text: string, from: number, to: number): number {
  for (let k = 0; k < outputs.length; k++) {
    const name = outputs[k].name;
    if (name.length === to - from && text.startsWith(name, from)) return k;
  }
  return -1;
}
