// Field types, spelled and checked the way DSPy (Python typing + pydantic) does:
// the annotation name shown in prompts, the pydantic JSON schema, and lax coercion of
// LM output into the declared type.
import { SignatureError } from "../errors.js";
import { pyStrRepr, pyStr } from "../python.js";

export type LiteralValue = string | number | boolean | null;

export type TypeExpr =
  | { kind: "str" }
  | { kind: "int" }
  | { kind: "float" }
  | { kind: "bool" }
  | { kind: "any" }
  | { kind: "none" }
  | { kind: "list"; item: TypeExpr }
  | { kind: "dict"; key: TypeExpr; value: TypeExpr }
  | { kind: "literal"; values: LiteralValue[] }
  /** `pipe` marks `A | B` (types.UnionType in Python), which is named differently from Union[A, B]. */
  | { kind: "union"; options: TypeExpr[]; pipe?: boolean }
  /** A structured type (a pydantic model in DSPy), described by a JSON schema. */
  | { kind: "object"; name: string; schema: Record<string, unknown> };

export const T = {
  str: (): TypeExpr => ({ kind: "str" }),
  int: (): TypeExpr => ({ kind: "int" }),
  float: (): TypeExpr => ({ kind: "float" }),
  bool: (): TypeExpr => ({ kind: "bool" }),
  any: (): TypeExpr => ({ kind: "any" }),
  list: (item: TypeExpr): TypeExpr => ({ kind: "list", item }),
  dict: (value: TypeExpr = { kind: "any" }, key: TypeExpr = { kind: "str" }): TypeExpr => ({ kind: "dict", key, value }),
  literal: (...values: LiteralValue[]): TypeExpr => ({ kind: "literal", values }),
  optional: (inner: TypeExpr): TypeExpr => ({ kind: "union", options: [inner, { kind: "none" }] }),
  object: (name: string, schema: Record<string, unknown>): TypeExpr => ({ kind: "object", name, schema }),
};

const VALID_TYPES_HINT =
  "use one of str, int, float, bool, list[T], dict[K, V], Any, Literal[...], Optional[T], Union[...], or a type registered with registerType()";

// ---------------------------------------------------------------------------
// Parsing "list[str]", "Literal['a', 'b']", "Optional[int]", "str | None", ...

type Token = { t: "name" | "str" | "num" | "punct"; v: string; pos: number };

function tokenize(src: string, where: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i))!;
      out.push({ t: "name", v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    if (/[-0-9]/.test(ch)) {
      const m = /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(src.slice(i));
      if (!m) throw new SignatureError("signature_syntax", `${where}: unexpected '${ch}' at position ${i} in type '${src}'`);
      out.push({ t: "num", v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      let s = "";
      while (j < src.length && src[j] !== ch) {
        if (src[j] === "\\" && j + 1 < src.length) {
          const n = src[j + 1];
          s += n === "n" ? "\n" : n === "t" ? "\t" : n;
          j += 2;
        } else s += src[j++];
      }
      if (j >= src.length) throw new SignatureError("signature_syntax", `${where}: unterminated string in type '${src}'`);
      out.push({ t: "str", v: s, pos: i });
      i = j + 1;
      continue;
    }
    if ("[],|".includes(ch)) {
      out.push({ t: "punct", v: ch, pos: i });
      i++;
      continue;
    }
    throw new SignatureError("signature_syntax", `${where}: unexpected '${ch}' at position ${i} in type '${src}'`);
  }
  return out;
}

export type TypeResolver = (name: string) => TypeExpr | undefined;

/** Parse a Python-style type annotation. `where` names the field for error messages. */
export function parseTypeExpr(src: string, where = "type", resolve?: TypeResolver): TypeExpr {
  const toks = tokenize(src, where);
  let p = 0;
  const peek = () => toks[p];
  const fail = (msg: string): never => {
    throw new SignatureError("signature_syntax", `${where}: ${msg} in type '${src}'`);
  };
  const expect = (v: string) => {
    const tok = toks[p];
    if (!tok || tok.v !== v || tok.t !== "punct") fail(`expected '${v}'${tok ? ` at position ${tok.pos}` : " at the end"}`);
    p++;
  };
  const args = (): TypeExpr[] => {
    expect("[");
    const list: TypeExpr[] = [];
    if (peek()?.v !== "]") {
      list.push(union());
      while (peek()?.v === ",") {
        p++;
        if (peek()?.v === "]") break;
        list.push(union());
      }
    }
    expect("]");
    return list;
  };
  const literalArgs = (): LiteralValue[] => {
    expect("[");
    const vals: LiteralValue[] = [];
    while (peek() && peek().v !== "]") {
      const tok = toks[p++];
      if (tok.t === "str") vals.push(tok.v);
      else if (tok.t === "num") vals.push(Number(tok.v));
      else if (tok.t === "name" && (tok.v === "True" || tok.v === "False")) vals.push(tok.v === "True");
      else if (tok.t === "name" && tok.v === "None") vals.push(null);
      else fail(`Literal values must be strings, numbers, True, False or None, got '${tok.v}'`);
      if (peek()?.v === ",") p++;
      else break;
    }
    expect("]");
    if (vals.length === 0) fail("Literal[...] needs at least one value");
    return vals;
  };
  const primary = (): TypeExpr => {
    const tok = toks[p++];
    if (!tok) return fail("missing type");
    if (tok.t !== "name") return fail(`expected a type name at position ${tok.pos}, got '${tok.v}'`);
    const name = tok.v.replace(/^(typing|builtins|collections\.abc)\./, "");
    const hasArgs = peek()?.v === "[";
    switch (name) {
      case "str":
      case "int":
      case "float":
      case "bool":
        return { kind: name };
      case "Any":
        return { kind: "any" };
      case "None":
      case "NoneType":
        return { kind: "none" };
      case "list":
      case "List":
      case "Sequence": {
        if (!hasArgs) return { kind: "list", item: { kind: "any" } };
        const a = args();
        if (a.length !== 1) fail(`list[...] takes one type, got ${a.length}`);
        return { kind: "list", item: a[0] };
      }
      case "dict":
      case "Dict":
      case "Mapping": {
        if (!hasArgs) return { kind: "dict", key: { kind: "any" }, value: { kind: "any" } };
        const a = args();
        if (a.length !== 2) fail(`dict[...] takes two types (key, value), got ${a.length}`);
        return { kind: "dict", key: a[0], value: a[1] };
      }
      case "Optional": {
        const a = args();
        if (a.length !== 1) fail(`Optional[...] takes one type, got ${a.length}`);
        return { kind: "union", options: [a[0], { kind: "none" }] };
      }
      case "Union": {
        const a = args();
        if (a.length < 1) fail("Union[...] needs at least one type");
        return a.length === 1 ? a[0] : { kind: "union", options: a };
      }
      case "Literal":
        return { kind: "literal", values: literalArgs() };
      default: {
        const custom = resolve?.(name);
        if (custom && !hasArgs) return custom;
        throw new SignatureError("signature_type", `${where}: unknown type '${tok.v}' in '${src}': ${VALID_TYPES_HINT}`);
      }
    }
  };
  const union = (): TypeExpr => {
    const first = primary();
    if (peek()?.v !== "|") return first;
    const options = [first];
    while (peek()?.v === "|") {
      p++;
      options.push(primary());
    }
    return { kind: "union", options, pipe: true };
  };
  if (toks.length === 0) fail("empty type");
  const result = union();
  if (p < toks.length) fail(`unexpected '${toks[p].v}' at position ${toks[p].pos}`);
  return result;
}

// ---------------------------------------------------------------------------
// Names as Python's get_annotation_name prints them.

export function annotationName(t: TypeExpr): string {
  switch (t.kind) {
    case "str":
    case "int":
    case "float":
    case "bool":
      return t.kind;
    case "any":
      return "Any";
    case "none":
      return "NoneType";
    case "list":
      return `list[${annotationName(t.item)}]`;
    case "dict":
      if (t.key.kind === "any" && t.value.kind === "any") return "dict";
      return `dict[${annotationName(t.key)}, ${annotationName(t.value)}]`;
    case "literal":
      return `Literal[${t.values.map(literalName).join(", ")}]`;
    case "union":
      return `${t.pipe ? "UnionType" : "Union"}[${t.options.map(annotationName).join(", ")}]`;
    case "object":
      return t.name;
  }
}

function literalName(v: LiteralValue): string {
  if (typeof v !== "string") return pyStr(v);
  const hasSingle = v.includes("'");
  const hasDouble = v.includes('"');
  if (hasSingle && !hasDouble) return `"${v}"`;
  if (hasDouble && !hasSingle) return `'${v}'`;
  if (hasSingle && hasDouble) return `'${v.replace(/'/g, "\\'")}'`;
  return `'${v}'`;
}

/** The string-signature spelling of a type (parseable by parseTypeExpr). */
export function typeToSpec(t: TypeExpr): string {
  switch (t.kind) {
    case "union":
      if (!t.pipe && t.options.length === 2 && t.options[1].kind === "none") return `Optional[${typeToSpec(t.options[0])}]`;
      return t.pipe ? t.options.map(typeToSpec).join(" | ") : `Union[${t.options.map(typeToSpec).join(", ")}]`;
    case "list":
      return `list[${typeToSpec(t.item)}]`;
    case "dict":
      return `dict[${typeToSpec(t.key)}, ${typeToSpec(t.value)}]`;
    case "literal":
      return `Literal[${t.values.map((v) => (typeof v === "string" ? pyStrRepr(v) : pyStr(v))).join(", ")}]`;
    case "none":
      return "None";
    default:
      return annotationName(t);
  }
}

// ---------------------------------------------------------------------------
// JSON schema as pydantic's TypeAdapter(t).json_schema() followed by DSPy's
// move_type_to_front (keys sorted, "type" first, recursively).

export function jsonSchema(t: TypeExpr): Record<string, unknown> {
  return sortSchema(rawSchema(t)) as Record<string, unknown>;
}

function rawSchema(t: TypeExpr): Record<string, unknown> {
  switch (t.kind) {
    case "str":
      return { type: "string" };
    case "int":
      return { type: "integer" };
    case "float":
      return { type: "number" };
    case "bool":
      return { type: "boolean" };
    case "any":
      return {};
    case "none":
      return { type: "null" };
    case "list":
      return { type: "array", items: rawSchema(t.item) };
    case "dict": {
      const s: Record<string, unknown> = { type: "object" };
      s.additionalProperties = t.value.kind === "any" ? true : rawSchema(t.value);
      if (t.key.kind !== "str" && t.key.kind !== "any") s.propertyNames = rawSchema(t.key);
      return s;
    }
    case "literal": {
      const kinds = new Set(t.values.map((v) => (v === null ? "null" : typeof v)));
      const s: Record<string, unknown> = t.values.length === 1 ? { const: t.values[0] } : { enum: t.values };
      if (kinds.size === 1) {
        const k = [...kinds][0];
        s.type =
          k === "string" ? "string" : k === "boolean" ? "boolean" : k === "null" ? "null"
          : t.values.every((v) => Number.isInteger(v)) ? "integer" : "number";
      }
      return s;
    }
    case "union":
      return { anyOf: t.options.map(rawSchema) };
    case "object":
      return structuredClone(t.schema);
  }
}

function sortSchema(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortSchema);
  if (v && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => {
      if (a === "type" && b !== "type") return -1;
      if (b === "type" && a !== "type") return 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
    return Object.fromEntries(entries.map(([k, x]) => [k, sortSchema(x)]));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Lax coercion (pydantic's validate_python in lax mode) of parsed LM output.

export class TypeCoercionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TypeCoercionError";
  }
}

const TRUE_STRINGS = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE_STRINGS = new Set(["0", "off", "f", "false", "n", "no"]);

function describe(v: unknown): string {
  if (typeof v === "string") return pyStrRepr(v.length > 80 ? v.slice(0, 77) + "..." : v);
  try {
    const s = JSON.stringify(v);
    return s && s.length > 80 ? s.slice(0, 77) + "..." : String(s);
  } catch {
    return String(v);
  }
}

/** Coerce `v` into type `t` or throw TypeCoercionError naming the path and the expectation. */
export function coerce(v: unknown, t: TypeExpr, path = ""): unknown {
  const at = path ? ` at ${path}` : "";
  const bad = (what: string): never => {
    throw new TypeCoercionError(`expected ${what}${at}, got ${describe(v)}`);
  };
  switch (t.kind) {
    case "any":
      return v;
    case "none":
      return v === null || v === undefined ? null : bad("None");
    case "str":
      return typeof v === "string" ? v : bad("a string");
    case "int": {
      if (typeof v === "number" && Number.isInteger(v)) return v;
      if (typeof v === "number" && Number.isFinite(v)) return bad("an integer (the number has a fractional part)");
      if (typeof v === "boolean") return v ? 1 : 0;
      if (typeof v === "string") {
        const s = v.trim().replace(/_/g, "");
        if (/^[-+]?\d+$/.test(s)) return Number(s);
        if (/^[-+]?\d+\.0*$/.test(s)) return Number(s);
      }
      return bad("an integer");
    }
    case "float": {
      if (typeof v === "number") return v;
      if (typeof v === "boolean") return v ? 1 : 0;
      if (typeof v === "string") {
        const s = v.trim().toLowerCase();
        if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/.test(s.replace(/_/g, ""))) return Number(s.replace(/_/g, ""));
        if (s === "inf" || s === "+inf" || s === "infinity") return Infinity;
        if (s === "-inf" || s === "-infinity") return -Infinity;
        if (s === "nan") return NaN;
      }
      return bad("a number");
    }
    case "bool": {
      if (typeof v === "boolean") return v;
      if (v === 0 || v === 1) return v === 1;
      if (typeof v === "string") {
        const s = v.trim().toLowerCase();
        if (TRUE_STRINGS.has(s)) return true;
        if (FALSE_STRINGS.has(s)) return false;
      }
      return bad("a boolean (True or False)");
    }
    case "list":
      if (!Array.isArray(v)) return bad(`a list (${annotationName(t)})`);
      return v.map((x, i) => coerce(x, t.item, `${path}[${i}]`));
    case "dict": {
      if (!v || typeof v !== "object" || Array.isArray(v)) return bad(`a dict (${annotationName(t)})`);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = coerce(x, t.value, `${path}[${pyStrRepr(k)}]`);
      return out;
    }
    case "literal": {
      for (const allowed of t.values) if (allowed === v) return v;
      // Python's Literal equality treats 1 and 1.0 alike; strings never match numbers.
      return bad(`one of ${t.values.map((x) => describe(x)).join(", ")}`);
    }
    case "union": {
      // pydantic's smart mode: an exact type match wins over a lax conversion.
      for (const o of t.options) if (exactMatch(v, o)) return v;
      const errors: string[] = [];
      for (const o of t.options) {
        try {
          return coerce(v, o, path);
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
      return bad(`${annotationName(t)} (${errors.join("; ")})`);
    }
    case "object":
      if (!v || typeof v !== "object" || Array.isArray(v)) return bad(`an object (${t.name})`);
      return checkObjectSchema(v as Record<string, unknown>, t.schema, path, t.name);
  }
}

function exactMatch(v: unknown, t: TypeExpr): boolean {
  switch (t.kind) {
    case "str":
      return typeof v === "string";
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "float":
      return typeof v === "number";
    case "bool":
      return typeof v === "boolean";
    case "none":
      return v === null;
    case "any":
      return true;
    default:
      return false;
  }
}

/** Minimal structural check for object types: required properties and property types. */
function checkObjectSchema(v: Record<string, unknown>, schema: Record<string, unknown>, path: string, name: string) {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = (schema.required ?? []) as string[];
  for (const r of required) {
    if (!(r in v)) throw new TypeCoercionError(`missing required property '${r}'${path ? ` at ${path}` : ""} of ${name}`);
  }
  const out: Record<string, unknown> = { ...v };
  for (const [k, ps] of Object.entries(props)) {
    if (!(k in v)) continue;
    const t = schemaToType(ps);
    if (t) out[k] = coerce(v[k], t, `${path}.${k}`);
  }
  return out;
}

/** Best-effort mapping back from a JSON schema node to a TypeExpr (for nested checks). */
export function schemaToType(s: Record<string, unknown>): TypeExpr | undefined {
  if (Array.isArray(s.enum)) return { kind: "literal", values: s.enum as LiteralValue[] };
  if ("const" in s) return { kind: "literal", values: [s.const as LiteralValue] };
  if (Array.isArray(s.anyOf)) {
    const opts = (s.anyOf as Record<string, unknown>[]).map(schemaToType);
    return opts.every(Boolean) ? { kind: "union", options: opts as TypeExpr[] } : undefined;
  }
  switch (s.type) {
    case "string":
      return { kind: "str" };
    case "integer":
      return { kind: "int" };
    case "number":
      return { kind: "float" };
    case "boolean":
      return { kind: "bool" };
    case "null":
      return { kind: "none" };
    case "array": {
      const item = s.items && typeof s.items === "object" ? schemaToType(s.items as Record<string, unknown>) : { kind: "any" as const };
      return item ? { kind: "list", item } : undefined;
    }
    case "object": {
      if (s.properties) return { kind: "object", name: String(s.title ?? "object"), schema: s };
      const ap = s.additionalProperties;
      const value = ap && typeof ap === "object" ? schemaToType(ap as Record<string, unknown>) : { kind: "any" as const };
      return value ? { kind: "dict", key: { kind: "str" }, value } : undefined;
    }
    default:
      return undefined;
  }
}

export function typeEquals(a: TypeExpr, b: TypeExpr): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
