// Typed builder support: map zod schemas onto DSPy field types.
import { z, type ZodType } from "zod";
import { SignatureError } from "../errors.js";
import type { LiteralValue, TypeExpr } from "./types.js";

export function isZodType(x: unknown): x is ZodType {
  return !!x && typeof x === "object" && "_zod" in (x as object);
}

interface ZodDefLike {
  type: string;
  element?: ZodType;
  innerType?: ZodType;
  keyType?: ZodType;
  valueType?: ZodType;
  options?: ZodType[];
  entries?: Record<string, string | number>;
  values?: LiteralValue[];
  shape?: Record<string, ZodType>;
}

export function fromZod(schema: ZodType, where: string): TypeExpr {
  const def = (schema as unknown as { _zod: { def: ZodDefLike } })._zod.def;
  const meta = (schema as unknown as { meta?: () => Record<string, unknown> | undefined }).meta?.();
  switch (def.type) {
    case "string":
      return { kind: "str" };
    case "number":
      return (schema as unknown as { isInt?: boolean }).isInt ? { kind: "int" } : { kind: "float" };
    case "int":
      return { kind: "int" };
    case "boolean":
      return { kind: "bool" };
    case "any":
    case "unknown":
      return { kind: "any" };
    case "null":
      return { kind: "none" };
    case "array":
      return { kind: "list", item: fromZod(def.element!, where) };
    case "record":
      return { kind: "dict", key: fromZod(def.keyType!, where), value: fromZod(def.valueType!, where) };
    case "enum":
      return { kind: "literal", values: Object.values(def.entries ?? {}) };
    case "literal":
      return { kind: "literal", values: def.values ?? [] };
    case "optional":
    case "nullable":
      return { kind: "union", options: [fromZod(def.innerType!, where), { kind: "none" }] };
    case "default":
    case "readonly":
      return fromZod(def.innerType!, where);
    case "union":
      return { kind: "union", options: (def.options ?? []).map((o) => fromZod(o, where)) };
    case "object": {
      const name = typeof meta?.title === "string" ? meta.title : typeof meta?.id === "string" ? meta.id : "Model";
      const json = z.toJSONSchema(schema) as Record<string, unknown>;
      delete json.$schema;
      return { kind: "object", name, schema: pydanticLike(json, name) };
    }
    default:
      throw new SignatureError(
        "signature_type",
        `${where}: zod type '${def.type}' has no DSPy equivalent; use string, number, int, boolean, array, record, enum, literal, optional, union or object`,
      );
  }
}

/** Shape zod's JSON schema like pydantic's model schema (titles, no additionalProperties:false). */
function pydanticLike(s: Record<string, unknown>, title?: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...s };
  if (title) out.title = title;
  if (out.additionalProperties === false) delete out.additionalProperties;
  if (out.properties && typeof out.properties === "object") {
    const props: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out.properties as Record<string, Record<string, unknown>>)) {
      const p = pydanticLike(stripIntBounds(v));
      if (!("title" in p)) p.title = k.split("_").map((w) => (w ? w[0].toUpperCase() + w.slice(1) : w)).join(" ");
      props[k] = p;
    }
    out.properties = props;
  }
  if (out.items && typeof out.items === "object") out.items = pydanticLike(stripIntBounds(out.items as Record<string, unknown>));
  return out;
}

function stripIntBounds(s: Record<string, unknown>): Record<string, unknown> {
  if (s.type === "integer" && s.minimum === Number.MIN_SAFE_INTEGER && s.maximum === Number.MAX_SAFE_INTEGER) {
    const { minimum: _a, maximum: _b, ...rest } = s;
    return rest;
  }
  return s;
}
