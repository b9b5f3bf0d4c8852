// Per-text work that repeats on every call of a program: a predictor sends the same system
// prompt (and the same demos) on every call, and only its last message changes. Escaping a
// prompt for JSON and hashing it for the cache key cost several µs per KB, so both are
// remembered for message texts that recur (every message but the last), keyed by the text.
import { hash } from "node:crypto";

interface TextInfo {
  json?: string;
  digest?: string;
}

// Shorter texts are cheaper to redo than to look up.
const MIN_CHARS = 128;
// Bounds on what is remembered; past either, the table starts over.
const MAX_ENTRIES = 1024;
const MAX_CHARS = 4_000_000;

const recurring = new Map<string, TextInfo>();
let recurringChars = 0;

function infoFor(text: string): TextInfo {
  let info = recurring.get(text);
  if (info === undefined) {
    if (recurring.size >= MAX_ENTRIES || recurringChars + text.length > MAX_CHARS) {
      recurring.clear();
      recurringChars = 0;
    }
    info = {};
    recurring.set(text, info);
    recurringChars += text.length;
  }
  return info;
}

/** JSON.stringify(text), remembered when `recurs`. */
export function jsonText(text: string, recurs: boolean): string {
  if (!recurs || text.length < MIN_CHARS) return JSON.stringify(text);
  const info = infoFor(text);
  return (info.json ??= JSON.stringify(text));
}

/** Any surrogate code unit: such texts are JSON-escaped before hashing (see digest). */
export const SURROGATE = /[\ud800-\udfff]/;

function digest(text: string): string {
  // UTF-8 turns every lone surrogate into U+FFFD, which would give distinct texts one
  // digest: texts with surrogates are hashed JSON-escaped (and tagged) instead.
  return SURROGATE.test(text) ? `j${hash("sha256", JSON.stringify(text), "base64")}` : hash("sha256", text, "base64");
}

/** sha256 (base64) of a text, remembered when `recurs`. */
export function textDigest(text: string, recurs: boolean): string {
  if (!recurs || text.length < MIN_CHARS) return digest(text);
  const info = infoFor(text);
  return (info.digest ??= digest(text));
}

const ROLE_JSON: Record<string, string> = { system: '"system"', user: '"user"', assistant: '"assistant"' };

/**
 * JSON.stringify(messages), byte for byte, with recurring texts' JSON remembered. Messages
 * other than plain { role, content } string pairs (extra keys, toJSON) go through
 * JSON.stringify as they are.
 */
export function messagesJson(messages: readonly unknown[]): string {
  if (!Array.isArray(messages)) return JSON.stringify(messages);
  const last = messages.length - 1;
  let out = "[";
  for (let i = 0; i <= last; i++) {
    if (i > 0) out += ",";
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (isPlainMessage(m)) {
      out += `{"role":${ROLE_JSON[m.role as string] ?? JSON.stringify(m.role)},"content":${jsonText(m.content as string, i < last)}}`;
    } else out += JSON.stringify(m) ?? "null";
  }
  return out + "]";
}

/** Exactly the own enumerable keys role, content (in that order), both strings, no toJSON. */
function isPlainMessage(m: { role?: unknown; content?: unknown } | null | undefined): boolean {
  if (m === null || typeof m !== "object" || typeof m.role !== "string" || typeof m.content !== "string" || "toJSON" in m) return false;
  let n = 0;
  for (const k in m) {
    if (n === 0 ? k !== "role" : n !== 1 || k !== "content") return false;
    n++;
  }
  return n === 2;
}
