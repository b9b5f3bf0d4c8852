// Program files: DSPy's JSON format (per predictor path: demos, signature, lm; plus
// metadata) with a `dspex` section naming the module tree, so a peer can rebuild the
// program from the file alone. Files saved by DSPy load into a program of the same shape.
import { readFile, rename, writeFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { ProgramStateError, DspexError } from "./errors.js";
import { getRegistry } from "./registry.js";
// Built-in module kinds must be registered before any program is rebuilt from data.
import "./modules/builtins.js";
import type { Module, ModuleSpec } from "./modules/module.js";

export const DSPEX_FORMAT_VERSION = 1;
export const DSPEX_VERSION = "0.1.0";

const specSchema: z.ZodType<ModuleSpec> = z.object({ kind: z.string().min(1), config: z.record(z.string(), z.unknown()) });

const dspexSectionSchema = z.object({
  version: z.number().int(),
  program: specSchema,
});

const fileSchema = z
  .record(z.string(), z.unknown())
  .refine((o) => !Array.isArray(o), "a program file holds a JSON object");

export interface ProgramJSON {
  [predictorPath: string]: unknown;
  metadata: { dependency_versions: Record<string, string>; dspex_version?: string };
  dspex?: { version: number; program: ModuleSpec };
}

/** The program as DSPy-format JSON plus the dspex rebuild section (when describable). */
export function programToJSON(module: Module): ProgramJSON {
  const state = module.dumpState() as ProgramJSON;
  // DSPy compares dependency_versions on load and only warns on mismatch; an empty map
  // keeps DSPy quiet about packages it does not know.
  state.metadata = { dependency_versions: {}, dspex_version: DSPEX_VERSION };
  let spec: ModuleSpec | undefined;
  try {
    spec = module.toSpec();
  } catch (e) {
    if (!(e instanceof DspexError) || e.code !== "registry_unknown") throw e;
  }
  if (spec) state.dspex = { version: DSPEX_FORMAT_VERSION, program: spec };
  return state;
}

/** Write the program atomically (temp file + rename), so a crash never leaves half a file. */
export async function saveProgram(module: Module, path: string): Promise<void> {
  const json = JSON.stringify(programToJSON(module), null, 2);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, json + "\n", "utf8");
  await rename(tmp, path);
}

/** Parse and check a program file's text. `where` names it in errors. */
export function parseProgramJSON(text: string, where?: string): ProgramJSON {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ProgramStateError(`not valid JSON (${(e as Error).message}); a program file is the JSON written by module.save()`, where);
  }
  const ok = fileSchema.safeParse(raw);
  if (!ok.success || raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ProgramStateError(`expected a JSON object keyed by predictor path (e.g. "qa.predict"), got ${Array.isArray(raw) ? "an array" : typeof raw}`, where);
  }
  const obj = raw as Record<string, unknown>;
  if (obj.dspex !== undefined) {
    const s = dspexSectionSchema.safeParse(obj.dspex);
    if (!s.success) {
      const issue = s.error.issues[0];
      throw new ProgramStateError(`the 'dspex' section is malformed at ${["dspex", ...issue.path].join(".")}: ${issue.message}`, where);
    }
    if (s.data.version > DSPEX_FORMAT_VERSION) {
      throw new ProgramStateError(`the file uses dspex format version ${s.data.version}; this build reads up to ${DSPEX_FORMAT_VERSION}: upgrade dspex`, where);
    }
  }
  return obj as ProgramJSON;
}

/**
 * Rebuild a program from its JSON. With `into`, the state is loaded into that program
 * (DSPy's module.load); otherwise the module tree is built from the `dspex` section.
 */
export function programFromJSON(json: ProgramJSON, options: { into?: Module; where?: string } = {}): Module {
  let module = options.into;
  if (!module) {
    if (!json.dspex) {
      throw new ProgramStateError(
        "the file has no 'dspex' section naming its module tree (files saved by DSPy lack it): build the same program in code and load into it with loadProgram(path, { into: program })",
        options.where,
      );
    }
    try {
      module = getRegistry().buildModule(json.dspex.program);
    } catch (e) {
      throw new ProgramStateError(`cannot rebuild the program: ${(e as Error).message}`, options.where, { cause: e });
    }
  }
  try {
    module.loadState(json as Record<string, unknown>);
  } catch (e) {
    throw new ProgramStateError((e as Error).message, options.where, { cause: e });
  }
  return module;
}

export async function loadProgram(path: string, options: { into?: Module } = {}): Promise<Module> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProgramStateError(code === "ENOENT" ? "file not found; check the path" : `cannot read the file (${code ?? (e as Error).message})`, path);
  }
  return programFromJSON(parseProgramJSON(text, path), { ...options, where: path });
}
