// Prompt builders in DSPy's ChatAdapter / JSONAdapter layouts, for sim-lm and LM tests.
import type { ChatMessage } from "../../src/engine/lm/types.js";

export interface FieldSpec {
  name: string;
  type?: string;
}

export interface Demo {
  question: string;
  answer: string;
  reasoning?: string;
}

function outputNote(f: FieldSpec): string {
  const t = f.type ?? "str";
  if (t === "int" || t === "float") return `        # note: the value you produce must be a single ${t} value`;
  if (t === "bool") return "        # note: the value you produce must be True or False";
  return "";
}

export function chatSystem(outputs: FieldSpec[], instructions = "Given the fields `question`, produce the fields `answer`."): string {
  const outDecl = outputs.map((f, i) => `${i + 1}. \`${f.name}\` (${f.type ?? "str"}): `).join("\n");
  const structure = [
    "[[ ## question ## ]]\n{question}",
    ...outputs.map((f) => `[[ ## ${f.name} ## ]]\n{${f.name}}${outputNote(f)}`),
    "[[ ## completed ## ]]",
  ].join("\n\n");
  return (
    `Your input fields are:\n1. \`question\` (str): \nYour output fields are:\n${outDecl}\n` +
    `All interactions will be structured in the following way, with the appropriate values filled in.\n\n${structure}\n` +
    `In adhering to this structure, your objective is: \n        ${instructions}`
  );
}

export function chatUser(question: string, outputs: FieldSpec[]): string {
  const typeInfo = (f: FieldSpec) => ((f.type ?? "str") !== "str" ? ` (must be formatted as a valid Python ${f.type})` : "");
  return (
    `[[ ## question ## ]]\n${question}\n\n` +
    "Respond with the corresponding output fields, starting with the field " +
    outputs.map((f) => `\`[[ ## ${f.name} ## ]]\`${typeInfo(f)}`).join(", then ") +
    ", and then ending with the marker for `[[ ## completed ## ]]`."
  );
}

export function jsonUser(question: string, outputs: FieldSpec[]): string {
  const typeInfo = (f: FieldSpec) => ((f.type ?? "str") !== "str" ? ` (must be formatted as a valid Python ${f.type})` : "");
  return (
    `[[ ## question ## ]]\n${question}\n\n` +
    "Respond with a JSON object in the following order of fields: " +
    outputs.map((f) => `\`${f.name}\`${typeInfo(f)}`).join(", then ") +
    "."
  );
}

/** A full ChatAdapter prompt: system, demo pairs, then the question. */
export function chatPrompt(
  question: string,
  options: { outputs?: FieldSpec[]; demos?: Demo[]; instructions?: string } = {},
): ChatMessage[] {
  const outputs = options.outputs ?? [{ name: "answer", type: "int" }];
  const messages: ChatMessage[] = [{ role: "system", content: chatSystem(outputs, options.instructions) }];
  for (const d of options.demos ?? []) {
    messages.push({ role: "user", content: `[[ ## question ## ]]\n${d.question}` });
    const parts = outputs.map((f) => `[[ ## ${f.name} ## ]]\n${f.name === "answer" ? d.answer : (d.reasoning ?? "Not supplied for this conversation history message. ")}`);
    messages.push({ role: "assistant", content: `${parts.join("\n\n")}\n\n[[ ## completed ## ]]\n` });
  }
  messages.push({ role: "user", content: chatUser(question, outputs) });
  return messages;
}

/** Deterministic arithmetic questions with their answers. */
export function arithmeticQuestions(count: number, salt = 0): { question: string; answer: number }[] {
  const out: { question: string; answer: number }[] = [];
  for (let i = 0; i < count; i++) {
    const a = ((i * 37 + salt * 11) % 97) + 2;
    const b = ((i * 53 + salt * 7) % 89) + 3;
    const op = ["+", "-", "*"][i % 3];
    const answer = op === "+" ? a + b : op === "-" ? a - b : a * b;
    out.push({ question: `What is ${a} ${op} ${b}?`, answer });
  }
  return out;
}

/** Parse the `answer` field of a ChatAdapter reply. */
export function chatField(reply: string, name: string): string | undefined {
  const m = new RegExp(`\\[\\[ ## ${name} ## \\]\\]\\n([\\s\\S]*?)(?:\\n\\n\\[\\[ ## |$)`).exec(reply);
  return m ? m[1].trim() : undefined;
}
