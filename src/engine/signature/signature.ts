// Signatures: the declarative input/output spec of an LM call, as in DSPy.
// String form: "question, context: list[str] -> answer, confidence: float".
import { SignatureError } from "../errors.js";
import { annotationName, parseTypeExpr, typeToSpec, type TypeExpr, type TypeResolver } from "./types.js";
import { fromZod, isZodType } from "./zod.js";
import type { ZodType } from "zod";
import { getRegistry } from "../registry.js";
import { cleandoc } from "../python.js";

const registeredType: TypeResolver = (name) => {
  const types = getRegistry().types;
  return types.has(name) ? types.get(name) : undefined;
};

export type FieldIO = "input" | "output";

export interface FieldDef {
  name: string;
  io: FieldIO;
  type: TypeExpr;
  /** DSPy's `desc`; the placeholder `${name}` means "no description". */
  desc: string;
  /** DSPy's `prefix` (legacy, kept for file compatibility): inferred as "Field Name:". */
  prefix: string;
  constraints?: string;
}

/** Options for InputField()/OutputField() in the typed builder. */
export interface FieldOptions {
  /** A TypeExpr, a zod schema, or a type string like "list[str]". Default str. */
  type?: TypeExpr | ZodType | string;
  desc?: string;
  prefix?: string;
}

export interface FieldMarker extends FieldOptions {
  readonly io: FieldIO;
}

export function InputField(options: FieldOptions = {}): FieldMarker {
  return { ...options, io: "input" };
}
export function OutputField(options: FieldOptions = {}): FieldMarker {
  return { ...options, io: "output" };
}

/** Saved form of a signature in DSPy's program JSON (per predictor). */
export interface SignatureState {
  instructions: string;
  fields: { prefix: string; description: string }[];
}

/** Full, rebuildable description of a signature (the dspex section of a program file). */
export interface SignatureJSON {
  instructions: string;
  fields: { name: string; io: FieldIO; type: string; desc: string; prefix: string; constraints?: string }[];
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class Signature {
  readonly instructions: string;
  readonly inputFields: readonly FieldDef[];
  readonly outputFields: readonly FieldDef[];
  /** Field names, computed once (signatures are immutable). */
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  constructor(fields: FieldDef[], instructions?: string) {
    const seen = new Set<string>();
    for (const f of fields) {
      if (!IDENT.test(f.name)) {
        throw new SignatureError("signature_field", `invalid field name '${f.name}': names must be Python identifiers (letters, digits, _; not starting with a digit)`);
      }
      if (seen.has(f.name)) throw new SignatureError("signature_field", `field '${f.name}' is defined more than once; each field name must be unique across inputs and outputs`);
      seen.add(f.name);
    }
    this.inputFields = Object.freeze(fields.filter((f) => f.io === "input").map((f) => Object.freeze({ ...f })));
    this.outputFields = Object.freeze(fields.filter((f) => f.io === "output").map((f) => Object.freeze({ ...f })));
    this.inputNames = Object.freeze(this.inputFields.map((f) => f.name));
    this.outputNames = Object.freeze(this.outputFields.map((f) => f.name));
    // DSPy keeps instructions as a docstring and reads them through inspect.cleandoc.
    this.instructions = cleandoc(instructions ?? defaultInstructions(this.inputFields, this.outputFields));
    Object.freeze(this);
  }

  /** Inputs then outputs, the order DSPy's `signature.fields` has. */
  get fields(): readonly FieldDef[] {
    return [...this.inputFields, ...this.outputFields];
  }

  field(name: string): FieldDef | undefined {
    return this.inputFields.find((f) => f.name === name) ?? this.outputFields.find((f) => f.name === name);
  }


  /** Parse DSPy's string form. Untyped fields are str. */
  static parse(
    spec: string,
    options: { instructions?: string; descriptions?: Record<string, string>; resolveType?: TypeResolver } = {},
  ): Signature {
    if (typeof spec !== "string") throw new SignatureError("signature_syntax", `a signature must be a string like "question -> answer", got ${typeof spec}`);
    const arrows = spec.split("->").length - 1;
    if (arrows !== 1) {
      throw new SignatureError(
        "signature_syntax",
        `Invalid signature format: '${spec}', must contain exactly one '->' (found ${arrows}); write it like "question, context: list[str] -> answer"`,
      );
    }
    const [lhs, rhs] = spec.split("->");
    const fields: FieldDef[] = [
      ...parseFieldList(lhs, "input", spec, options.resolveType ?? registeredType),
      ...parseFieldList(rhs, "output", spec, options.resolveType ?? registeredType),
    ];
    for (const f of fields) {
      const d = options.descriptions?.[f.name];
      if (d !== undefined) f.desc = d;
    }
    for (const name of Object.keys(options.descriptions ?? {})) {
      if (!fields.some((f) => f.name === name)) {
        throw new SignatureError("signature_field", `description given for unknown field '${name}' in signature '${spec}'`);
      }
    }
    return new Signature(fields, options.instructions);
  }

  /** Typed builder: `Signature.define({ question: InputField(), answer: OutputField({ type: z.number() }) })`. */
  static define(fields: Record<string, FieldMarker>, instructions?: string): Signature {
    const defs: FieldDef[] = Object.entries(fields).map(([name, m]) => {
      if (!m || (m.io !== "input" && m.io !== "output")) {
        throw new SignatureError("signature_field", `field '${name}' must be declared with InputField() or OutputField()`);
      }
      return makeField(name, m.io, m);
    });
    return new Signature(defs, instructions);
  }

  /** DSPy's ensure_signature: accept a string or a Signature. */
  static from(sig: string | Signature): Signature {
    return typeof sig === "string" ? Signature.parse(sig) : sig;
  }

  withInstructions(instructions: string): Signature {
    return new Signature(this.fields.map((f) => ({ ...f })), instructions);
  }

  withUpdatedField(name: string, changes: Partial<Omit<FieldDef, "name" | "io">>): Signature {
    if (!this.field(name)) throw new SignatureError("signature_field", `no field '${name}' in signature ${this.toString()}`);
    return new Signature(this.fields.map((f) => (f.name === name ? { ...f, ...changes } : { ...f })), this.instructions);
  }

  append(name: string, field: FieldMarker): Signature {
    return this.insert(-1, name, field);
  }

  prepend(name: string, field: FieldMarker): Signature {
    return this.insert(0, name, field);
  }

  /**
   * Insert among the inputs or the outputs (by the field's io); -1 appends, like DSPy.
   * Inserting a name that exists follows DSPy's dict rebuild: the name takes the position
   * of its first occurrence and the definition of its last (so ChainOfThought on a
   * signature that already has `reasoning` moves the user's field to the front).
   */
  insert(index: number, name: string, field: FieldMarker): Signature {
    const def = makeField(name, field.io, field);
    const inputs = this.inputFields.map((f) => ({ ...f }));
    const outputs = this.outputFields.map((f) => ({ ...f }));
    const list = def.io === "input" ? inputs : outputs;
    const i = index < 0 ? list.length + 1 + index : index;
    if (i < 0 || i > list.length) {
      throw new SignatureError("signature_field", `insert index ${index} is out of range for ${list.length} ${def.io} fields`);
    }
    list.splice(i, 0, def);
    const combined = [...inputs, ...outputs];
    const order: string[] = [];
    const last = new Map<string, FieldDef>();
    for (const f of combined) {
      if (!last.has(f.name)) order.push(f.name);
      last.set(f.name, f);
    }
    return new Signature(order.map((n) => last.get(n)!), this.instructions);
  }

  delete(name: string): Signature {
    return new Signature(this.fields.filter((f) => f.name !== name).map((f) => ({ ...f })), this.instructions);
  }

  /** DSPy's Signature.dump_state(). */
  dumpState(): SignatureState {
    return {
      instructions: this.instructions,
      fields: this.fields.map((f) => ({ prefix: f.prefix, description: f.desc })),
    };
  }

  /** DSPy's Signature.load_state(): instructions and per-field prefix/description, zipped by position. */
  loadState(state: SignatureState): Signature {
    const fields = this.fields.map((f, i) => {
      const saved = state.fields[i];
      return saved ? { ...f, prefix: saved.prefix, desc: saved.description } : { ...f };
    });
    return new Signature(fields, state.instructions);
  }

  toJSON(): SignatureJSON {
    return {
      instructions: this.instructions,
      fields: this.fields.map((f) => ({
        name: f.name,
        io: f.io,
        type: f.type.kind === "object" ? JSON.stringify({ object: f.type.name, schema: f.type.schema }) : typeToSpec(f.type),
        desc: f.desc,
        prefix: f.prefix,
        ...(f.constraints ? { constraints: f.constraints } : {}),
      })),
    };
  }

  static fromJSON(json: SignatureJSON, resolveType?: TypeResolver): Signature {
    if (!json || !Array.isArray(json.fields) || typeof json.instructions !== "string") {
      throw new SignatureError("signature_syntax", "a saved signature needs 'instructions' (string) and 'fields' (array)");
    }
    const fields = json.fields.map((f, i): FieldDef => {
      const where = `saved signature field #${i + 1} '${f?.name}'`;
      if (!f || typeof f.name !== "string" || (f.io !== "input" && f.io !== "output") || typeof f.type !== "string") {
        throw new SignatureError("signature_field", `${where}: needs name, io ('input' or 'output') and type`);
      }
      let type: TypeExpr;
      if (f.type.startsWith("{")) {
        const o = JSON.parse(f.type) as { object: string; schema: Record<string, unknown> };
        type = { kind: "object", name: o.object, schema: o.schema };
      } else type = parseTypeExpr(f.type, where, resolveType ?? registeredType);
      return {
        name: f.name,
        io: f.io,
        type,
        desc: typeof f.desc === "string" ? f.desc : `\${${f.name}}`,
        prefix: typeof f.prefix === "string" ? f.prefix : inferPrefix(f.name) + ":",
        ...(f.constraints ? { constraints: f.constraints } : {}),
      };
    });
    return new Signature(fields, json.instructions);
  }

  /** String form with types, e.g. "question: str -> answer: int". */
  toString(): string {
    const side = (fs: readonly FieldDef[]) => fs.map((f) => `${f.name}: ${typeToSpec(f.type)}`).join(", ");
    return `${side(this.inputFields)} -> ${side(this.outputFields)}`;
  }

  /** Same fields (names, io, types) regardless of instructions and descriptions. */
  sameShape(other: Signature): boolean {
    const a = this.fields;
    const b = other.fields;
    return a.length === b.length && a.every((f, i) => f.name === b[i].name && f.io === b[i].io && annotationName(f.type) === annotationName(b[i].type));
  }
}

function makeField(name: string, io: FieldIO, opts: FieldOptions): FieldDef {
  let type: TypeExpr;
  if (opts.type === undefined) type = { kind: "str" };
  else if (typeof opts.type === "string") type = parseTypeExpr(opts.type, `field '${name}'`, registeredType);
  else if (isZodType(opts.type)) type = fromZod(opts.type, `field '${name}'`);
  else type = opts.type as TypeExpr;
  return {
    name,
    io,
    type,
    desc: opts.desc ?? `\${${name}}`,
    prefix: opts.prefix ?? inferPrefix(name) + ":",
  };
}

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let cur = "";
  for (const ch of s) {
    if (quote) {
      cur += ch;
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "[") depth++;
    else if (ch === "]") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

function parseFieldList(side: string, io: FieldIO, spec: string, resolveType?: TypeResolver): FieldDef[] {
  const trimmed = side.trim();
  if (trimmed === "") return [];
  const parts = splitTopLevel(trimmed);
  return parts.map((raw, i) => {
    const part = raw.trim();
    if (part === "") {
      throw new SignatureError("signature_syntax", `empty ${io} field #${i + 1} in signature '${spec}' (check for doubled or trailing commas)`);
    }
    const colon = part.indexOf(":");
    const name = (colon >= 0 ? part.slice(0, colon) : part).trim();
    if (!IDENT.test(name)) {
      throw new SignatureError(
        "signature_syntax",
        `invalid ${io} field name '${name}' in signature '${spec}': field names must be Python identifiers, optionally typed as 'name: type'`,
      );
    }
    const typeSrc = colon >= 0 ? part.slice(colon + 1).trim() : "";
    if (colon >= 0 && typeSrc === "") {
      throw new SignatureError("signature_syntax", `field '${name}' in signature '${spec}' has ':' but no type after it`);
    }
    const type = typeSrc ? parseTypeExpr(typeSrc, `field '${name}' of signature '${spec}'`, resolveType) : ({ kind: "str" } as TypeExpr);
    return { name, io, type, desc: `\${${name}}`, prefix: inferPrefix(name) + ":" };
  });
}

/** DSPy's default instructions text. */
export function defaultInstructions(inputs: readonly FieldDef[], outputs: readonly FieldDef[]): string {
  const i = inputs.map((f) => `\`${f.name}\``).join(", ");
  const o = outputs.map((f) => `\`${f.name}\``).join(", ");
  return `Given the fields ${i}, produce the fields ${o}.`;
}

/** DSPy's infer_prefix: "camelCaseText" -> "Camel Case Text", "text2number" -> "Text 2 Number". */
export function inferPrefix(name: string): string {
  let s = name.replace(/(.)([A-Z][a-z]+)/g, "$1_$2");
  s = s.replace(/([a-z0-9])([A-Z])/g, "$1_$2");
  s = s.replace(/([a-zA-Z])(\d)/g, "$1_$2");
  s = s.replace(/(\d)([a-zA-Z])/g, "$1_$2");
  return s
    .split("_")
    .map((w) => (isUpper(w) ? w : capitalize(w)))
    .join(" ");
}

function isUpper(w: string): boolean {
  // Python's str.isupper(): at least one cased character and all cased characters upper.
  return /[A-Za-z]/.test(w) && w === w.toUpperCase();
}

function capitalize(w: string): string {
  return w.length === 0 ? w : w[0].toUpperCase() + w.slice(1).toLowerCase();
}
