// JSONAdapter: DSPy's JSON-mode prompts; asks the provider for structured output
// (response_format json_schema) and falls back to json_object when that fails.
import { AdapterParseError } from "../errors.js";
import type { LM, LMSettings, ResponseFormat } from "../lm/types.js";
import { pyJsonDumps, pyStrip } from "../python.js";
import type { FieldDef, Signature } from "../signature/signature.js";
import { annotationName, jsonSchema } from "../signature/types.js";
import type { AdapterResult } from "./adapter.js";
import { ChatAdapter, translateFieldType, withSpentUsage } from "./chat.js";
import { parseValue, repairJson, toJsonable } from "./values.js";
import type { Record_ } from "../example.js";

export class JSONAdapter extends ChatAdapter {
  override readonly name: string = "JSONAdapter";

  constructor() {
    super({ useJsonAdapterFallback: false });
  }

  override async call(
    lm: LM,
    settings: LMSettings & { signal?: AbortSignal },
    signature: Signature,
    demos: Record_[],
    inputs: Record_,
  ): Promise<AdapterResult> {
    if (settings.responseFormat) return this.callOnce(lm, settings, signature, demos, inputs);
    // Open-ended dicts cannot be expressed as a strict schema: use plain JSON mode.
    if (signature.outputFields.some((f) => hasOpenMapping(f))) {
      return this.callOnce(lm, { ...settings, responseFormat: { type: "json_object" } }, signature, demos, inputs);
    }
    try {
      return await this.callOnce(lm, { ...settings, responseFormat: structuredOutputFormat(signature) }, signature, demos, inputs);
    } catch (err) {
      const retryable = err instanceof AdapterParseError || (err instanceof Error && (err as { code?: string }).code === "bad_request");
      if (!retryable) throw err;
      const result = await this.callOnce(lm, { ...settings, responseFormat: { type: "json_object" } }, signature, demos, inputs);
      return err instanceof AdapterParseError ? withSpentUsage(err, result) : result;
    }
  }

  override formatFieldStructure(signature: Signature): string {
    const parts = [
      "All interactions will be structured in the following way, with the appropriate values filled in.",
      "Inputs will have the following structure:",
      this.formatFieldsWithValues(signature.inputFields.map((f) => [f, translateFieldType(f)])),
      "Outputs will be a JSON object with the following fields.",
      this.formatJsonOutputs(signature.outputFields.map((f) => [f, translateFieldType(f)])),
    ];
    return pyStrip(parts.join("\n\n"));
  }

  override userMessageOutputRequirements(signature: Signature): string | undefined {
    const typeInfo = (f: FieldDef) => (f.type.kind !== "str" ? ` (must be formatted as a valid Python ${annotationName(f.type)})` : "");
    return (
      "Respond with a JSON object in the following order of fields: " +
      signature.outputFields.map((f) => `\`${f.name}\`${typeInfo(f)}`).join(", then ") +
      "."
    );
  }

  override formatAssistantMessageContent(signature: Signature, outputs: Record_, missingFieldMessage?: string): string {
    return this.formatJsonOutputs(
      signature.outputFields.map((f) => [f, Object.prototype.hasOwnProperty.call(outputs, f.name) ? outputs[f.name] : missingFieldMessage]),
    );
  }

  private formatJsonOutputs(pairs: [FieldDef, unknown][]): string {
    const obj: Record_ = {};
    const keyTypes: Record<string, FieldDef["type"]> = {};
    for (const [f, v] of pairs) {
      obj[f.name] = toJsonable(v);
      keyTypes[f.name] = f.type;
    }
    return pyJsonDumps(obj, { indent: 2, keyTypes });
  }

  override parse(signature: Signature, completion: string): Record_ {
    const objectText = firstBalancedObject(completion) ?? completion;
    const read = repairJson(objectText);
    const value = read.ok ? read.value : undefined;
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new AdapterParseError({
        adapterName: this.name,
        expectedFields: signature.outputNames,
        lmResponse: completion,
        message: "LM response cannot be serialized to a JSON object.",
      });
    }
    const fields: Record_ = {};
    for (const f of signature.outputFields) {
      if (!Object.prototype.hasOwnProperty.call(value, f.name)) continue;
      const raw = (value as Record_)[f.name];
      try {
        fields[f.name] = parseValue(raw, f.type);
      } catch (e) {
        throw new AdapterParseError({
          adapterName: this.name,
          expectedFields: signature.outputNames,
          lmResponse: completion,
          message: `Failed to parse field ${f.name} with value ${typeof raw === "string" ? raw : JSON.stringify(raw)} from the LM response. Error message: ${(e as Error).message}`,
        });
      }
    }
    if (Object.keys(fields).length !== signature.outputFields.length) {
      throw new AdapterParseError({ adapterName: this.name, expectedFields: signature.outputNames, lmResponse: completion, parsedResult: fields });
    }
    return fields;
  }
}

/** The structured-output schema DSPy sends: every output required, no extra properties. */
export function structuredOutputFormat(signature: Signature): ResponseFormat {
  const properties: Record<string, unknown> = {};
  for (const f of signature.outputFields) {
    const s = jsonSchema(f.type);
    properties[f.name] = f.desc !== `\${${f.name}}` ? { ...s, description: f.desc } : s;
  }
  return {
    type: "json_schema",
    name: "DSPyProgramOutputs",
    strict: true,
    schema: { type: "object", properties, required: signature.outputNames, additionalProperties: false },
  };
}

function hasOpenMapping(f: FieldDef): boolean {
  const walk = (t: FieldDef["type"]): boolean =>
    t.kind === "dict" || t.kind === "any" || (t.kind === "list" && walk(t.item)) || (t.kind === "union" && t.options.some(walk));
  return walk(f.type);
}

/** First {...} whose braces balance (DSPy's recursive regex ignores quoting the same way). */
function firstBalancedObject(s: string): string | undefined {
  for (let start = s.indexOf("{"); start >= 0; start = s.indexOf("{", start + 1)) {
    let depth = 0;
    for (let i = start; i < s.length; i++) {
      if (s[i] === "{") depth++;
      else if (s[i] === "}" && --depth === 0) return s.slice(start, i + 1);
    }
  }
  return undefined;
}

