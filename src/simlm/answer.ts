/**
 * sim-lm's deterministic, task-aware answers. Every decision below is a pure function of the
 * server seed and the request, so the same request to a server with the same seed and knobs
 * always gets the same reply, across runs and machines.
 *
 * RULES
 *
 * 1. Reply format (checked in this order):
 *    a. response_format json_schema with `properties` -> one JSON object with exactly those
 *       keys in schema order, values typed by the schema.
 *    b. response_format json_object, or the last user message contains DSPy's JSONAdapter line
 *       "Respond with a JSON object in the following order of fields: `a`, then `b` ..."
 *       -> one JSON object with those keys (types from the system message, see 2).
 *    c. the last user message contains DSPy's ChatAdapter line "Respond with the corresponding
 *       output fields, starting with the field `[[ ## a ## ]]`, then `[[ ## b ## ]]` ...", or
 *       the system message lists "Your output fields are:" -> "[[ ## a ## ]]\n<value>\n\n
 *       [[ ## b ## ]]\n<value>\n\n[[ ## completed ## ]]".
 *    d. otherwise plain text.
 * 2. Field types come from the system message's "Your output fields are:\n1. `answer` (int): ..."
 *    list and the "# note: the value you produce must ..." hints (int/float/bool/Literal/JSON
 *    schema), or from the JSON schema. Rendering: int -> 42, float -> 42.0 (markers) or 42
 *    (JSON), bool -> True/False (true/false in JSON), list -> JSON list, Literal -> one of
 *    its values, other structured types -> a JSON value built from the schema, str -> text.
 * 3. Inputs are the "[[ ## name ## ]]\nvalue" sections of the last user message (the whole
 *    message for plain prompts). The task is ARITHMETIC when one input value (<= 200 chars)
 *    contains "A op B" with op one of + - * / x × ÷ plus minus times "multiplied by"
 *    "divided by", or "sum of A and B", "product of A and B", "difference between A and B",
 *    "add A and/to B", "subtract B from A". The first such input is "the question"; its
 *    whitespace-normalised, lower-cased text is the question key q.
 * 4. Accuracy for a prompt:
 *      accuracy = clamp(baseAccuracy
 *                       + demoBoost * min(correctDemos, maxBoostedDemos)
 *                       + instructionBoost  if the objective contains any instructionKeywords
 *                       + reasoningBoost    if an output field is named reasoning/rationale, 0, 1)
 *    Defaults: 0.5, 0.08, 4, 0.1, ["step by step", "carefully", "double-check", "verify"], 0.05.
 *    - correctDemos: user/assistant message pairs before the last user message whose user
 *      turn holds an arithmetic question (rule 3) and whose assistant turn (markers or JSON)
 *      answers it correctly: the `answer` field (else the first non-reasoning field) holds
 *      the right number.
 *    - objective: the system message text after "your objective is:" (ChatAdapter), else the
 *      whole system message; keywords match case-insensitively.
 * 5. Choice i (0..n-1) of an arithmetic question is correct iff
 *      unit(seed, "correct", q, i) < accuracy
 *    where unit is a 53-bit hash mapped to [0, 1). So the same question always gets the same
 *    answer, and raising accuracy (demos, keywords) only ever turns wrong answers right.
 *    A wrong answer is the right one plus a nonzero offset d, 1 <= |d| <= 9, from the hash.
 *    Numbers go to int/float fields and to str fields named answer/result/solution/output/
 *    value/number/final_answer; a reasoning field gets "We need to compute A op B. A op B = X."
 * 6. Anything else (and the other fields of an arithmetic task) gets deterministic filler from
 *    hash(seed, field, last user message, temperature, choice index), so it varies with
 *    temperature and across the n choices:
 *    - fields whose name contains "instruction" get one of 8 instruction sentences, 3 of which
 *      contain an instruction keyword (so instruction optimizers have something to find);
 *    - reasoning fields get a short reasoning sentence; other str fields a short sentence;
 *    - int/float/bool/Literal/list/JSON fields a value of that type.
 * 7. Plain prompts: an arithmetic question gets just the number, anything else a sentence.
 * 8. max_tokens truncates the reply to 4 * max_tokens characters (finish reason "length");
 *    a stop sequence cuts the reply before it (finish reason "stop").
 */
import { countTokens, pick, unit } from "./hash.js";

export interface AccuracyOptions {
  baseAccuracy?: number;
  demoBoost?: number;
  maxBoostedDemos?: number;
  instructionBoost?: number;
  instructionKeywords?: string[];
  reasoningBoost?: number;
}

export const DEFAULT_ACCURACY: Required<AccuracyOptions> = {
  baseAccuracy: 0.5,
  demoBoost: 0.08,
  maxBoostedDemos: 4,
  instructionBoost: 0.1,
  instructionKeywords: ["step by step", "carefully", "double-check", "verify"],
  reasoningBoost: 0.05,
};

export interface SimTurn {
  role: "user" | "assistant";
  content: string;
}

export type SimResponseFormat = { type: "json_object" } | { type: "json_schema"; schema?: unknown };

export interface SimPrompt {
  system: string;
  turns: SimTurn[];
  responseFormat?: SimResponseFormat;
  temperature?: number;
  n?: number;
}

export type FieldType =
  | { k: "str" }
  | { k: "int" }
  | { k: "float" }
  | { k: "bool" }
  | { k: "list"; item: FieldType }
  | { k: "literal"; values: (string | number | boolean)[] }
  | { k: "json"; schema: unknown };

export interface OutputField {
  name: string;
  type: FieldType;
}

export interface Arithmetic {
  a: number;
  op: "+" | "-" | "*" | "/";
  b: number;
  value: number;
}

export interface Analysis {
  format: "chat" | "json" | "plain";
  fields: OutputField[];
  inputs: Record<string, string>;
  /** Normalised question key (rule 3), when the task is arithmetic. */
  question?: string;
  arithmetic?: Arithmetic;
  demos: number;
  correctDemos: number;
  instructionMatched: boolean;
  reasoningField: boolean;
  accuracy: number;
}

export interface SimAnswer {
  texts: string[];
  /** Per choice: whether the arithmetic answer is right (undefined for other tasks). */
  correct: (boolean | undefined)[];
  analysis: Analysis;
}

// ---------------------------------------------------------------------------
// Prompt parsing

const HEADER = /^\[\[ ## (\w+) ## \]\]\s*$/;
const CHAT_REQ = "Respond with the corresponding output fields";
const JSON_REQ = "Respond with a JSON object in the following order of fields:";

/** "[[ ## name ## ]]" sections of a message, in order. */
export function parseSections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let name: string | undefined;
  let buf: string[] = [];
  const flush = () => {
    if (name !== undefined && !out.has(name)) out.set(name, buf.join("\n").trim());
  };
  for (const line of text.split("\n")) {
    const m = HEADER.exec(line.trim());
    if (m) {
      flush();
      name = m[1];
      buf = [];
    } else if (name !== undefined) buf.push(line);
  }
  flush();
  out.delete("completed");
  return out;
}

/** The main request without the trailing output-requirements paragraph. */
function stripRequirements(text: string): string {
  for (const marker of [CHAT_REQ, JSON_REQ]) {
    const i = text.lastIndexOf(marker);
    if (i >= 0) return text.slice(0, i);
  }
  return text;
}

function declaredOutputs(system: string): Map<string, string> {
  const decl = new Map<string, string>();
  const start = system.indexOf("Your output fields are:");
  if (start < 0) return decl;
  for (const line of system.slice(start).split("\n").slice(1)) {
    const m = /^\s*\d+\.\s+`([^`]+)`\s+\((.+?)\):?/.exec(line);
    if (m) decl.set(m[1], m[2]);
    else if (line.startsWith("All interactions") || (line.trim() === "" && decl.size > 0)) break;
  }
  return decl;
}

function typeNotes(system: string): Map<string, string> {
  const notes = new Map<string, string>();
  const re = /^\{(\w+)\}\s+# note: the value you produce (.+)$/gm;
  for (let m = re.exec(system); m; m = re.exec(system)) if (!notes.has(m[1])) notes.set(m[1], m[2]);
  return notes;
}

function parseLiteralList(s: string): (string | number | boolean)[] {
  const out: (string | number | boolean)[] = [];
  const re = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^,;\s][^,;]*)/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m[1] !== undefined) out.push(m[1].replace(/\\(.)/g, "$1"));
    else if (m[2] !== undefined) out.push(m[2].replace(/\\(.)/g, "$1"));
    else {
      const raw = m[3].trim();
      if (raw === "True" || raw === "False") out.push(raw === "True");
      else if (raw !== "" && !Number.isNaN(Number(raw))) out.push(Number(raw));
      else if (raw !== "") out.push(raw);
    }
  }
  return out;
}

export function typeFromSchema(schema: unknown): FieldType {
  if (!schema || typeof schema !== "object") return { k: "str" };
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.enum) && s.enum.length > 0) return { k: "literal", values: s.enum as (string | number | boolean)[] };
  if (s.const !== undefined) return { k: "literal", values: [s.const as string] };
  const anyOf = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (Array.isArray(anyOf)) {
    const first = anyOf.find((o) => !(o && typeof o === "object" && (o as { type?: unknown }).type === "null"));
    return typeFromSchema(first);
  }
  const type = Array.isArray(s.type) ? (s.type as unknown[]).find((t) => t !== "null") : s.type;
  switch (type) {
    case "integer":
      return { k: "int" };
    case "number":
      return { k: "float" };
    case "boolean":
      return { k: "bool" };
    case "string":
      return { k: "str" };
    case "array":
      return { k: "list", item: typeFromSchema(s.items) };
    default:
      return { k: "json", schema };
  }
}

function typeFromAnnotation(ann: string | undefined, note: string | undefined): FieldType {
  if (note) {
    if (note.startsWith("must be True or False")) return { k: "bool" };
    if (note.startsWith("must be a single int")) return { k: "int" };
    if (note.startsWith("must be a single float")) return { k: "float" };
    const lit = /^must exactly match \(no extra characters\) one of: (.*)$/.exec(note);
    if (lit) return { k: "literal", values: parseLiteralList(lit[1]) };
    const js = /^must adhere to the JSON schema: (.*)$/.exec(note);
    if (js) {
      try {
        return typeFromSchema(JSON.parse(js[1]));
      } catch {
        // fall back to the annotation
      }
    }
  }
  const a = (ann ?? "str").trim();
  if (a === "str") return { k: "str" };
  if (a === "int") return { k: "int" };
  if (a === "float") return { k: "float" };
  if (a === "bool") return { k: "bool" };
  const inner = (prefix: string) => (a.startsWith(prefix) && a.endsWith("]") ? a.slice(prefix.length, -1) : undefined);
  const lit = inner("Literal[");
  if (lit !== undefined) return { k: "literal", values: parseLiteralList(lit) };
  const list = inner("list[") ?? inner("List[");
  if (list !== undefined) return { k: "list", item: typeFromAnnotation(list, undefined) };
  const opt = inner("Optional[");
  if (opt !== undefined) return typeFromAnnotation(opt, undefined);
  const union = inner("Union[") ?? inner("UnionType[");
  if (union !== undefined) return typeFromAnnotation(union.split(",")[0], undefined);
  return { k: "json", schema: a.startsWith("dict") ? { type: "object" } : {} };
}

function backticked(sentence: string): string[] {
  return [...sentence.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

function requestedChatFields(lastUser: string): string[] | undefined {
  const i = lastUser.lastIndexOf(CHAT_REQ);
  if (i < 0) return undefined;
  const names = [...lastUser.slice(i).matchAll(/`\[\[ ## (\w+) ## \]\]`/g)].map((m) => m[1]).filter((n) => n !== "completed");
  return names.length > 0 ? names : undefined;
}

function requestedJsonFields(lastUser: string): string[] | undefined {
  const i = lastUser.lastIndexOf(JSON_REQ);
  if (i < 0) return undefined;
  const line = lastUser.slice(i + JSON_REQ.length).split("\n")[0];
  const names = backticked(line);
  return names.length > 0 ? names : undefined;
}

// ---------------------------------------------------------------------------
// Arithmetic

const NUM = String.raw`[-−]?\d+(?:\.\d+)?`;
const OPS: [RegExp, (a: number, b: number) => Arithmetic | undefined][] = [
  [new RegExp(String.raw`\bsum of (${NUM}) and (${NUM})`, "i"), (a, b) => arith(a, "+", b)],
  [new RegExp(String.raw`\bproduct of (${NUM}) and (${NUM})`, "i"), (a, b) => arith(a, "*", b)],
  [new RegExp(String.raw`\bdifference (?:between|of) (${NUM}) and (${NUM})`, "i"), (a, b) => arith(a, "-", b)],
  [new RegExp(String.raw`\bsubtract (${NUM}) from (${NUM})`, "i"), (a, b) => arith(b, "-", a)],
  [new RegExp(String.raw`\badd (${NUM}) (?:and|to) (${NUM})`, "i"), (a, b) => arith(a, "+", b)],
];
const EXPR = new RegExp(
  String.raw`(${NUM})\s*(\+|-|−|\*|×|x|/|÷|\bplus\b|\bminus\b|\btimes\b|\bmultiplied by\b|\bdivided by\b)\s*(${NUM})`,
  "i",
);

function num(s: string): number {
  return Number(s.replace("−", "-"));
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function arith(a: number, op: Arithmetic["op"], b: number): Arithmetic | undefined {
  let value: number;
  if (op === "+") value = a + b;
  else if (op === "-") value = a - b;
  else if (op === "*") value = a * b;
  else {
    if (b === 0) return undefined;
    value = a / b;
  }
  return { a, op, b, value: round6(value) };
}

/** The arithmetic problem in a short text, if any (rule 3). */
export function parseArithmetic(text: string): Arithmetic | undefined {
  if (text.length > 200) return undefined;
  for (const [re, make] of OPS) {
    const m = re.exec(text);
    if (m) return make(num(m[1]), num(m[2]));
  }
  const m = EXPR.exec(text);
  if (!m) return undefined;
  const word = m[2].toLowerCase();
  const op: Arithmetic["op"] =
    word === "+" || word === "plus"
      ? "+"
      : word === "-" || word === "−" || word === "minus"
        ? "-"
        : word === "/" || word === "÷" || word === "divided by"
          ? "/"
          : "*";
  return arith(num(m[1]), op, num(m[3]));
}

export function questionKey(text: string): string {
  return text.replace(/\s+/g, " ").trim().toLowerCase();
}

function formatNumber(x: number): string {
  return Number.isInteger(x) ? String(x) : String(round6(x));
}

const REASONING_NAMES = new Set(["reasoning", "rationale"]);
const ANSWER_NAMES = new Set(["answer", "result", "solution", "output", "value", "number", "final_answer"]);

/** The number a demo's assistant turn gives as its answer, if any. */
function demoAnswer(content: string): number | undefined {
  let fields: Map<string, string>;
  const trimmed = content.trim();
  if (trimmed.startsWith("{")) {
    try {
      const obj = JSON.parse(trimmed) as Record<string, unknown>;
      fields = new Map(Object.entries(obj).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
    } catch {
      fields = new Map();
    }
  } else fields = parseSections(content);
  let value = fields.get("answer");
  if (value === undefined) {
    for (const [k, v] of fields) {
      if (!REASONING_NAMES.has(k)) {
        value = v;
        break;
      }
    }
  }
  if (value === undefined) return undefined;
  const m = new RegExp(NUM).exec(value);
  return m ? num(m[0]) : undefined;
}

function firstArithmetic(inputs: Iterable<[string, string]>): { key: string; problem: Arithmetic } | undefined {
  for (const [, v] of inputs) {
    const problem = parseArithmetic(v);
    if (problem) return { key: questionKey(v), problem };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Analysis

export function analyze(prompt: SimPrompt, knobs: AccuracyOptions = {}): Analysis {
  const k = { ...DEFAULT_ACCURACY, ...knobs };
  const turns = prompt.turns;
  let lastUserIdx = -1;
  for (let i = turns.length - 1; i >= 0; i--) {
    if (turns[i].role === "user") {
      lastUserIdx = i;
      break;
    }
  }
  const lastUser = lastUserIdx >= 0 ? turns[lastUserIdx].content : "";
  const system = prompt.system;
  const decl = declaredOutputs(system);
  const notes = typeNotes(system);
  const typeOf = (name: string) => typeFromAnnotation(decl.get(name), notes.get(name));

  let format: Analysis["format"];
  let fields: OutputField[];
  const rf = prompt.responseFormat;
  const schemaProps =
    rf?.type === "json_schema" && rf.schema && typeof rf.schema === "object"
      ? ((rf.schema as { properties?: Record<string, unknown> }).properties ?? undefined)
      : undefined;
  const jsonNames = requestedJsonFields(lastUser);
  const chatNames = requestedChatFields(lastUser);
  if (schemaProps && Object.keys(schemaProps).length > 0) {
    format = "json";
    fields = Object.entries(schemaProps).map(([name, s]) => ({ name, type: typeFromSchema(s) }));
  } else if (rf !== undefined || jsonNames) {
    format = "json";
    const names = jsonNames ?? chatNames ?? (decl.size > 0 ? [...decl.keys()] : ["answer"]);
    fields = names.map((name) => ({ name, type: typeOf(name) }));
  } else if (chatNames || decl.size > 0) {
    format = "chat";
    fields = (chatNames ?? [...decl.keys()]).map((name) => ({ name, type: typeOf(name) }));
  } else {
    format = "plain";
    fields = [];
  }

  const sections = parseSections(stripRequirements(lastUser));
  const inputs: Record<string, string> = {};
  if (format === "plain" || sections.size === 0) inputs.prompt = lastUser.trim();
  else for (const [name, v] of sections) inputs[name] = v;
  const found = firstArithmetic(Object.entries(inputs));

  let demos = 0;
  let correctDemos = 0;
  for (let i = 0; i + 1 < lastUserIdx; i++) {
    if (turns[i].role !== "user" || turns[i + 1].role !== "assistant") continue;
    demos++;
    const demo = firstArithmetic(parseSections(turns[i].content));
    if (demo) {
      const given = demoAnswer(turns[i + 1].content);
      if (given !== undefined && Math.abs(given - demo.problem.value) < 1e-6) correctDemos++;
    }
    i++;
  }

  const objectiveAt = system.toLowerCase().lastIndexOf("your objective is:");
  const objective = (objectiveAt >= 0 ? system.slice(objectiveAt + "your objective is:".length) : system).toLowerCase();
  const instructionMatched = k.instructionKeywords.some((kw) => kw.length > 0 && objective.includes(kw.toLowerCase()));
  const reasoningField = fields.some((f) => REASONING_NAMES.has(f.name));
  const raw =
    k.baseAccuracy +
    k.demoBoost * Math.min(correctDemos, k.maxBoostedDemos) +
    (instructionMatched ? k.instructionBoost : 0) +
    (reasoningField ? k.reasoningBoost : 0);
  return {
    format,
    fields,
    inputs,
    question: found?.key,
    arithmetic: found?.problem,
    demos,
    correctDemos,
    instructionMatched,
    reasoningField,
    accuracy: Math.min(1, Math.max(0, raw)),
  };
}

// ---------------------------------------------------------------------------
// Filler text

const ADJ = ["clear", "concise", "careful", "direct", "brief", "precise", "simple", "thorough", "plain", "focused"];
const NOUN = ["summary", "statement", "point", "observation", "answer", "note", "idea", "finding", "conclusion", "remark"];
const TOPIC = ["the input", "the given fields", "the question", "the context", "the request", "the task"];

const INSTRUCTIONS: ((i: string, o: string) => string)[] = [
  (i, o) => `Given the ${i}, produce the ${o}.`,
  (i, o) => `Solve the ${i} step by step, then state the final ${o}.`,
  (i, o) => `Read the ${i} carefully and answer with the ${o} only.`,
  (i, o) => `Answer the ${i} with a single, precise ${o}.`,
  (i, o) => `Think about the ${i} and report the ${o} as briefly as possible.`,
  (i, o) => `Work out the ${i}; double-check the result before writing the ${o}.`,
  (i, o) => `Respond to the ${i} with the most likely ${o}.`,
  (i, o) => `Compute the ${o} for the ${i} and state it plainly.`,
];

interface Ctx {
  seed: number;
  promptKey: string;
  temp: string;
  choice: number;
}

function filler(ctx: Ctx, field: string): string {
  const h = (tag: string, n: number) => pick(n, ctx.seed, tag, field, ctx.promptKey, ctx.temp, ctx.choice);
  if (field.includes("instruction")) return INSTRUCTIONS[h("instr", INSTRUCTIONS.length)]("question", "answer");
  if (REASONING_NAMES.has(field)) {
    return `Looking at ${TOPIC[h("topic", TOPIC.length)]}, the ${ADJ[h("adj", ADJ.length)]} ${NOUN[h("noun", NOUN.length)]} follows directly.`;
  }
  return `A ${ADJ[h("adj", ADJ.length)]} ${NOUN[h("noun", NOUN.length)]} about ${TOPIC[h("topic", TOPIC.length)]} (${h("num", 1000)}).`;
}

function valueFromSchema(ctx: Ctx, path: string, schema: unknown, depth = 0): unknown {
  const t = typeFromSchema(schema);
  if (t.k !== "json") return typedValue(ctx, path, t, undefined);
  const s = (schema ?? {}) as { properties?: Record<string, unknown>; type?: unknown };
  if (depth > 4) return {};
  if (s.properties) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s.properties)) out[k] = valueFromSchema(ctx, `${path}.${k}`, v, depth + 1);
    return out;
  }
  return {};
}

/** A JSON-able value of the given type (numbers as numbers, bools as booleans). */
function typedValue(ctx: Ctx, field: string, t: FieldType, answer: number | undefined): unknown {
  const h = (tag: string, n: number) => pick(n, ctx.seed, tag, field, ctx.promptKey, ctx.temp, ctx.choice);
  switch (t.k) {
    case "int":
      return answer !== undefined ? Math.round(answer) : h("int", 100);
    case "float":
      return answer !== undefined ? answer : h("float", 10000) / 100;
    case "bool":
      return h("bool", 2) === 1;
    case "literal":
      return t.values.length > 0 ? t.values[h("lit", t.values.length)] : "";
    case "list": {
      if (answer !== undefined) return [typedValue(ctx, field, t.item, answer)];
      const len = 1 + h("len", 3);
      return Array.from({ length: len }, (_, i) => typedValue(ctx, `${field}[${i}]`, t.item, undefined));
    }
    case "json":
      return valueFromSchema(ctx, field, t.schema);
    case "str":
      return answer !== undefined && ANSWER_NAMES.has(field) ? formatNumber(answer) : filler(ctx, field);
  }
}

function chatValue(t: FieldType, v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return t.k === "float" && Number.isInteger(v) ? `${v}.0` : String(v);
  return JSON.stringify(v);
}

function opText(p: Arithmetic): string {
  return `${formatNumber(p.a)} ${p.op} ${formatNumber(p.b)}`;
}

// ---------------------------------------------------------------------------
// Answer

export function answer(prompt: SimPrompt, seed: number, knobs: AccuracyOptions = {}): SimAnswer {
  const analysis = analyze(prompt, knobs);
  const n = Math.max(1, prompt.n ?? 1);
  const lastUser = [...prompt.turns].reverse().find((t) => t.role === "user")?.content ?? "";
  const promptKey = questionKey(lastUser).slice(0, 2000);
  const temp = (prompt.temperature ?? 1).toFixed(3);
  const texts: string[] = [];
  const correct: (boolean | undefined)[] = [];
  for (let choice = 0; choice < n; choice++) {
    const ctx: Ctx = { seed, promptKey, temp, choice };
    let value: number | undefined;
    let isCorrect: boolean | undefined;
    const p = analysis.arithmetic;
    if (p && analysis.question !== undefined) {
      const q = analysis.question;
      isCorrect = unit(seed, "correct", q, choice) < analysis.accuracy;
      if (isCorrect) value = p.value;
      else {
        const d = 1 + pick(9, seed, "wrong", q, choice);
        value = round6(p.value + (unit(seed, "sign", q, choice) < 0.5 ? -d : d));
      }
    }
    correct.push(isCorrect);
    if (analysis.format === "plain") {
      texts.push(value !== undefined ? formatNumber(value) : filler(ctx, "text"));
      continue;
    }
    const values: [OutputField, unknown][] = analysis.fields.map((f) => {
      if (p && value !== undefined && REASONING_NAMES.has(f.name) && f.type.k === "str") {
        return [f, `We need to compute ${opText(p)}. ${opText(p)} = ${formatNumber(value)}.`];
      }
      return [f, typedValue(ctx, f.name, f.type, value)];
    });
    if (analysis.format === "json") {
      const obj: Record<string, unknown> = {};
      for (const [f, v] of values) obj[f.name] = v;
      texts.push(JSON.stringify(obj));
    } else {
      texts.push(values.map(([f, v]) => `[[ ## ${f.name} ## ]]\n${chatValue(f.type, v)}`).join("\n\n") + "\n\n[[ ## completed ## ]]");
    }
  }
  return { texts, correct, analysis };
}

/** Apply max_tokens (~4 chars/token) and stop sequences to a reply (rule 8). */
export function applyLimits(
  text: string,
  maxTokens: number | undefined,
  stop: string[] | undefined,
): { text: string; finish: "stop" | "length" } {
  let out = text;
  let finish: "stop" | "length" = "stop";
  if (stop) {
    for (const s of stop) {
      const i = s.length > 0 ? out.indexOf(s) : -1;
      if (i >= 0) out = out.slice(0, i);
    }
  }
  if (maxTokens !== undefined && countTokens(out) > maxTokens) {
    out = out.slice(0, Math.max(0, maxTokens * 4));
    finish = "length";
  }
  return { text: out, finish };
}
