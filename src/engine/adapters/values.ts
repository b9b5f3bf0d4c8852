// Rendering input values into prompts and turning LM text back into typed values,
// following DSPy's adapters/utils.py (format_field_value, parse_value).
import { pyJsonDumps, pyStr, pyStrip } from "../python.js";
import { coerce, type TypeExpr } from "../signature/types.js";
import { Example } from "../example.js";

/** pyStrip() without its regex tests when both ends are plainly not whitespace (printable ASCII). */
export function strip(s: string): string {
  const n = s.length;
  if (n === 0) return s;
  const a = s.charCodeAt(0);
  const b = s.charCodeAt(n - 1);
  return a > 32 && a < 127 && b > 32 && b < 127 ? s : pyStrip(s);
}

/** DSPy's serialize_for_json: Examples/Predictions become dicts, everything else as is. */
export function toJsonable(v: unknown): unknown {
  if (v instanceof Example) return v.toDict();
  if (Array.isArray(v)) return v.map(toJsonable);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, toJsonable(x)]));
  if (v && typeof v === "object" && !(v instanceof Date)) {
    const toJSON = (v as { toJSON?: () => unknown }).toJSON;
    if (typeof toJSON === "function") return toJsonable(toJSON.call(v));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = toJsonable(x);
    return out;
  }
  if (v instanceof Date) return v.toISOString();
  return v;
}

/** DSPy's format_field_value: str-typed lists become a numbered «blob» list. */
export function formatFieldValue(type: TypeExpr, value: unknown): string {
  if (Array.isArray(value) && type.kind === "str") return formatInputList(value);
  const v = toJsonable(value);
  if (v !== null && typeof v === "object") return pyJsonDumps(v, { ensureAscii: false }, type);
  return pyStr(v, type);
}

function formatInputList(items: unknown[]): string {
  if (items.length === 0) return "N/A";
  if (items.length === 1) return formatBlob(pyStr(items[0]));
  return items.map((x, i) => `[${i + 1}] ${formatBlob(pyStr(x))}`).join("\n");
}

function formatBlob(blob: string): string {
  if (!blob.includes("\n") && !blob.includes("«") && !blob.includes("»")) return `«${blob}»`;
  return `«««\n    ${blob.replace(/\n/g, "\n    ")}\n»»»`;
}

// ---------------------------------------------------------------------------
// Parsing

/**
 * DSPy's parse_value: str passes through; Literal accepts quoted or "Literal[...]" wrapped
 * values; everything else is read as JSON (repaired if needed) or a Python literal, then
 * coerced into the declared type. Throws with a message naming what was expected.
 */
export function parseValue(value: unknown, type: TypeExpr): unknown {
  if (type.kind === "str") return typeof value === "string" ? value : pyStr(value);
  if (type.kind === "literal") {
    if (type.values.some((a) => a === value)) return value;
    if (typeof value === "string") {
      let v = pyStrip(value);
      if ((v.startsWith("Literal[") || v.startsWith("str[")) && v.endsWith("]")) v = v.slice(v.indexOf("[") + 1, -1);
      if (v.length > 1 && v[0] === v[v.length - 1] && (v[0] === '"' || v[0] === "'")) v = v.slice(1, -1);
      if (type.values.some((a) => a === v)) return v;
      // Non-string literals (numbers, booleans) written as text.
      const parsed = readLiteral(v);
      if (parsed.ok && type.values.some((a) => a === parsed.value)) return parsed.value;
    }
    throw new Error(`${reprShort(value)} is not one of (${type.values.map((x) => (typeof x === "string" ? `'${x}'` : pyStr(x))).join(", ")})`);
  }
  if (typeof value !== "string") return coerce(value, type);
  // Optional[str]-style unions keep the raw text, even "None" (pydantic validates the str directly).
  if (type.kind === "union" && type.options.some((o) => o.kind === "str") && type.options.some((o) => o.kind === "none")) {
    return value;
  }
  let candidate: unknown = value;
  const json = repairJson(value);
  if (json.ok) candidate = json.value;
  else {
    const lit = readLiteral(value);
    if (lit.ok) candidate = lit.value;
  }
  // A scalar already of the declared type is what coerce() would return; skip its set-up.
  if (
    (type.kind === "int" && Number.isInteger(candidate)) ||
    (type.kind === "float" && typeof candidate === "number") ||
    (type.kind === "bool" && typeof candidate === "boolean")
  ) {
    return candidate;
  }
  return coerce(candidate, type);
}

function reprShort(v: unknown): string {
  return typeof v === "string" ? `'${v.length > 60 ? v.slice(0, 57) + "..." : v}'` : String(v);
}

type ReadResult = { ok: true; value: unknown } | { ok: false };

/** JSON with light repair: code fences, trailing commas, unclosed brackets and strings. */
export function repairJson(text: string): ReadResult {
  let s = strip(text);
  const fence = s.startsWith("```") ? /^```[a-zA-Z0-9]*\s*\n([\s\S]*?)\n?```\s*$/.exec(s) : null;
  if (fence) s = fence[1].trim();
  if (s === "") return { ok: false };
  try {
    return { ok: true, value: JSON.parse(s) };
  } catch {
    // fall through to repair
  }
  if (!/^[[{"]/.test(s)) {
    // A bare word or sentence is not JSON; only Python literals are tried for it.
    return { ok: false };
  }
  const lit = readLiteral(s);
  if (lit.ok) return lit;
  const repaired = closeOpenStructures(s.replace(/,\s*([\]}])/g, "$1"));
  try {
    return { ok: true, value: JSON.parse(repaired) };
  } catch {
    const lit2 = readLiteral(repaired);
    return lit2.ok ? lit2 : { ok: false };
  }
}

function closeOpenStructures(s: string): string {
  const stack: string[] = [];
  let inStr: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === "\\") i++;
      else if (c === inStr) inStr = null;
      continue;
    }
    if (c === '"' || c === "'") inStr = c;
    else if (c === "[" || c === "{") stack.push(c === "[" ? "]" : "}");
    else if ((c === "]" || c === "}") && stack.length) stack.pop();
  }
  let out = s.replace(/,\s*$/, "");
  if (inStr) out += inStr;
  while (stack.length) out += stack.pop();
  return out;
}

/**
 * ast.literal_eval for the literals an LM writes: strings ('..', "..", triple-quoted),
 * numbers, True/False/None, lists, tuples, dicts, sets.
 */
export function readLiteral(text: string): ReadResult {
  const s = text;
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const fail = (): never => {
    throw new SyntaxError("not a literal");
  };
  const str = (): string => {
    const q = s[i];
    const triple = s.startsWith(q.repeat(3), i);
    const end = triple ? q.repeat(3) : q;
    i += end.length;
    let out = "";
    while (i < s.length && !s.startsWith(end, i)) {
      const c = s[i];
      if (!triple && c === "\n") fail();
      if (c === "\\") {
        const n = s[i + 1];
        const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0" };
        if (n === "u" && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        if (n === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
          out += String.fromCharCode(parseInt(s.slice(i + 2, i + 4), 16));
          i += 4;
          continue;
        }
        out += map[n] ?? "\\" + n;
        i += 2;
        continue;
      }
      out += c;
      i++;
    }
    if (i >= s.length) fail();
    i += end.length;
    return out;
  };
  const seq = (close: string): unknown[] => {
    const items: unknown[] = [];
    ws();
    while (s[i] !== close) {
      items.push(val());
      ws();
      if (s[i] === ",") {
        i++;
        ws();
      } else if (s[i] !== close) fail();
    }
    i++;
    return items;
  };
  const val = (): unknown => {
    ws();
    const c = s[i];
    if (c === undefined) return fail();
    if (c === "'" || c === '"') {
      let out = str();
      ws();
      // Adjacent string literals concatenate, as in Python.
      while (s[i] === "'" || s[i] === '"') {
        out += str();
        ws();
      }
      return out;
    }
    if (c === "[") {
      i++;
      return seq("]");
    }
    if (c === "(") {
      i++;
      return seq(")");
    }
    if (c === "{") {
      i++;
      ws();
      const obj: Record<string, unknown> = {};
      const setItems: unknown[] = [];
      let isSet = false;
      while (s[i] !== "}") {
        const k = val();
        ws();
        if (s[i] === ":") {
          i++;
          obj[typeof k === "string" ? k : JSON.stringify(k)] = val();
        } else {
          isSet = true;
          setItems.push(k);
        }
        ws();
        if (s[i] === ",") {
          i++;
          ws();
        } else if (s[i] !== "}") fail();
      }
      i++;
      return isSet ? setItems : obj;
    }
    const m = /^[-+]?(\d[\d_]*\.?\d*(e[-+]?\d+)?|\.\d+(e[-+]?\d+)?)/i.exec(s.slice(i));
    if (m) {
      i += m[0].length;
      return Number(m[0].replace(/_/g, ""));
    }
    for (const [word, v] of [["True", true], ["False", false], ["None", null]] as const) {
      if (s.startsWith(word, i) && !/[A-Za-z0-9_]/.test(s[i + word.length] ?? "")) {
        i += word.length;
        return v;
      }
    }
    return fail();
  };
  try {
    const v = val();
    ws();
    if (i !== s.length) return { ok: false };
    return { ok: true, value: v };
  } catch {
    return { ok: false };
  }
}
