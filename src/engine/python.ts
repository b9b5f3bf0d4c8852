// Python-compatible renderings of values. DSPy builds prompts with Python's str(),
// repr() and json.dumps(); byte-identical prompts need the same spelling here
// (True/None, 1.0, ", " separators, ensure_ascii escapes).
import type { TypeExpr } from "./signature/types.js";

/** repr() of a Python float. Integral values keep ".0"; exponents have at least 2 digits. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() with no argument yields the shortest round-tripping digits, like repr.
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  const sign = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || "0"}`;
}

/** str() of a number: integers print as Python ints unless the declared type is float. */
export function pyNumber(x: number, asFloat = false): string {
  if (!asFloat && Number.isInteger(x)) return String(x);
  return pyFloatRepr(x);
}

/** str() of a scalar (what DSPy shows for non-list, non-dict values). */
export function pyStr(value: unknown, type?: TypeExpr): string {
  if (value === null || value === undefined) return "None";
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number") return pyNumber(value, isFloatType(type));
  if (typeof value === "bigint") return value.toString();
  return pyRepr(value);
}

function isFloatType(type?: TypeExpr): boolean {
  if (!type) return false;
  if (type.kind === "float") return true;
  if (type.kind === "union") return type.options.some((o) => o.kind === "float") && !type.options.some((o) => o.kind === "int");
  return false;
}

/** repr() of a str, choosing quotes the way CPython does. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}

/** repr() of a JSON-like value: dicts and lists with Python spelling. */
export function pyRepr(value: unknown, type?: TypeExpr): string {
  if (value === null || value === undefined) return "None";
  if (typeof value === "string") return pyStrRepr(value);
  if (typeof value === "boolean" || typeof value === "number" || typeof value === "bigint") return pyStr(value, type);
  if (Array.isArray(value)) {
    const item = type?.kind === "list" ? type.item : undefined;
    return `[${value.map((v) => pyRepr(v, item)).join(", ")}]`;
  }
  if (typeof value === "object") {
    const vt = type?.kind === "dict" ? type.value : undefined;
    const parts = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${pyStrRepr(k)}: ${pyRepr(v, vt)}`);
    return `{${parts.join(", ")}}`;
  }
  return String(value);
}

export interface DumpsOptions {
  indent?: number;
  /** Python's default is true: non-ASCII characters become \uXXXX escapes. */
  ensureAscii?: boolean;
  /** Declared types of the top-level object's keys (so floats print as 1.0). */
  keyTypes?: Record<string, TypeExpr>;
}

/** json.dumps() with Python's separators, escapes and number spelling. */
export function pyJsonDumps(value: unknown, options: DumpsOptions = {}, type?: TypeExpr): string {
  const ensureAscii = options.ensureAscii ?? true;
  const indent = options.indent;
  const itemSep = indent === undefined ? ", " : ",";
  const write = (v: unknown, t: TypeExpr | undefined, depth: number): string => {
    if (v === null || v === undefined) return "null";
    if (typeof v === "string") return jsonString(v, ensureAscii);
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      if (Number.isNaN(v)) return "NaN";
      if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
      return pyNumber(v, isFloatType(t));
    }
    if (typeof v === "bigint") return v.toString();
    const nl = indent === undefined ? "" : "\n" + " ".repeat(indent * (depth + 1));
    const close = indent === undefined ? "" : "\n" + " ".repeat(indent * depth);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      const it = t?.kind === "list" ? t.item : undefined;
      return "[" + nl + v.map((x) => write(x, it, depth + 1)).join(itemSep + nl) + close + "]";
    }
    if (v instanceof Map) return write(Object.fromEntries(v), t, depth);
    if (typeof v === "object") {
      const toJSON = (v as { toJSON?: () => unknown }).toJSON;
      if (typeof toJSON === "function") return write(toJSON.call(v), t, depth);
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      if (entries.length === 0) return "{}";
      const vt = t?.kind === "dict" ? t.value : undefined;
      const kt = depth === 0 ? options.keyTypes : undefined;
      return (
        "{" +
        nl +
        entries.map(([k, x]) => `${jsonString(k, ensureAscii)}: ${write(x, kt?.[k] ?? vt, depth + 1)}`).join(itemSep + nl) +
        close +
        "}"
      );
    }
    return jsonString(String(v), ensureAscii);
  };
  return write(value, type, 0);
}

function jsonString(s: string, ensureAscii: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || (ensureAscii && c > 0x7e)) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

/** textwrap.dedent(): remove the longest common leading whitespace of non-blank lines. */
export function dedent(text: string): string {
  const lines = text.split("\n");
  let margin: string | null = null;
  for (const line of lines) {
    if (line.trim() === "") continue;
    const indent = /^[ \t]*/.exec(line)![0];
    if (margin === null) margin = indent;
    else {
      let i = 0;
      while (i < margin.length && i < indent.length && margin[i] === indent[i]) i++;
      margin = margin.slice(0, i);
    }
  }
  return lines
    .map((line) => (line.trim() === "" ? line.replace(/^[ \t]+$/, "") : line.slice(margin?.length ?? 0)))
    .join("\n");
}

/** inspect.cleandoc(): DSPy stores signature instructions this way (docstring cleanup). */
export function cleandoc(doc: string): string {
  const lines = doc.replace(/\t/g, "        ").split("\n");
  let margin = Infinity;
  for (const line of lines.slice(1)) {
    const content = line.replace(/^ +/, "");
    if (content.length > 0) margin = Math.min(margin, line.length - content.length);
  }
  if (lines.length > 0) lines[0] = lines[0].replace(/^ +/, "");
  if (margin < Infinity) for (let i = 1; i < lines.length; i++) lines[i] = lines[i].slice(margin);
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.join("\n");
}

/** str.splitlines() for the separators that matter in prompts (\n, \r\n, \r). */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const parts = text.split(/\r\n|\n|\r|\v|\f|\x1c|\x1d|\x1e|\x85|\u2028|\u2029/);
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

const PY_SPACE = /[\s\x1c-\x1f\x85]/;

/** str.strip() with Python's default whitespace set. */
export function pyStrip(s: string): string {
  // Fast path: most values have no surrounding whitespace.
  if (s.length === 0 || (!PY_SPACE.test(s[0]) && !PY_SPACE.test(s[s.length - 1]))) return s;
  return s.replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/g, "");
}
