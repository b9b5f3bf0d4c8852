// Datasets for CLI commands, with checks that they fit the program.
import { readRecords } from "../engine/evaluate/data.js";
import type { Record_ } from "../engine/example.js";
import type { Module } from "../engine/modules/module.js";
import { CliError } from "./errors.js";

/** The dataset's first record (for checks) and a fresh stream over all of it. */
export async function peekRecords(path: string): Promise<{ records: Record_[]; all: () => AsyncIterable<Record_> }> {
  const first: Record_[] = [];
  for await (const r of readRecords(path)) {
    first.push(r);
    break;
  }
  return { records: first, all: () => readRecords(path) };
}

export function parseInputKeys(s: string | undefined): string[] | undefined {
  if (s === undefined) return undefined;
  const keys = s.split(",").map((k) => k.trim()).filter(Boolean);
  if (keys.length === 0) throw new CliError("--input-keys needs at least one field name, e.g. --input-keys question,context");
  return keys;
}

/** The program's input fields, checked against the dataset's first record. */
export function checkFields(program: Module, records: Record_[], dataPath: string): string[] {
  const first = program.namedPredictors()[0]?.[1] as unknown as { signature?: { inputNames: string[] } } | undefined;
  const inputs = first?.signature?.inputNames ?? [];
  if (records.length === 0) return inputs;
  const have = Object.keys(records[0]);
  const missing = inputs.filter((k) => !have.includes(k));
  if (missing.length > 0) {
    throw new CliError(
      `${dataPath}:1: missing input field(s) ${missing.map((m) => `'${m}'`).join(", ")} that the program reads (the file has: ${have.join(", ")}); rename the fields or pass --input-keys`,
    );
  }
  return inputs;
}
