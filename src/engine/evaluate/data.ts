// Datasets from JSONL or CSV files, streamed record by record, with errors that name the
// file and line.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { DspexError } from "../errors.js";
import type { Record_ } from "../example.js";

export type DataFormat = "jsonl" | "csv";

export function formatOf(path: string): DataFormat {
  if (/\.jsonl?$/i.test(path) || /\.ndjson$/i.test(path)) return "jsonl";
  if (/\.csv$/i.test(path)) return "csv";
  throw new DspexError("input", `${path}: unknown data format; use a .jsonl (one JSON object per line) or .csv file (header row first)`);
}

/** Stream records; throws DspexError("input") naming `path:line` on bad lines. */
export async function* readRecords(path: string, format: DataFormat = formatOf(path)): AsyncIterable<Record_> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new DspexError("input", `${path}: not a file`);
  } catch (e) {
    if (e instanceof DspexError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new DspexError("input", `${path}: ${code === "ENOENT" ? "file not found" : `cannot read (${code})`}`);
  }
  const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  let lineNo = 0;
  let count = 0;
  if (format === "jsonl") {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === "") continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch (e) {
        throw new DspexError("input", `${path}:${lineNo}: not valid JSON (${(e as Error).message}); each line must be one JSON object`);
      }
      if (!v || typeof v !== "object" || Array.isArray(v)) {
        throw new DspexError("input", `${path}:${lineNo}: expected a JSON object of fields, got ${Array.isArray(v) ? "an array" : typeof v}`);
      }
      count++;
      yield v as Record_;
    }
  } else {
    let header: string[] | undefined;
    let pending = "";
    let startLine = 0;
    for await (const line of lines) {
      lineNo++;
      if (pending === "") startLine = lineNo;
      pending = pending === "" ? line : pending + "\n" + line;
      const fields = parseCsvRow(pending);
      if (fields === undefined) continue; // a quoted field spans lines
      pending = "";
      if (fields.length === 1 && fields[0] === "") continue;
      if (!header) {
        header = fields.map((h) => h.trim());
        const dup = header.find((h, i) => header!.indexOf(h) !== i);
        if (dup !== undefined) throw new DspexError("input", `${path}:${startLine}: duplicate column '${dup}' in the header`);
        if (header.some((h) => h === "")) throw new DspexError("input", `${path}:${startLine}: empty column name in the header`);
        continue;
      }
      if (fields.length !== header.length) {
        throw new DspexError("input", `${path}:${startLine}: ${fields.length} values but the header has ${header.length} columns (${header.join(", ")})`);
      }
      const rec: Record_ = {};
      header.forEach((h, i) => (rec[h] = fields[i]));
      count++;
      yield rec;
    }
    if (pending !== "") throw new DspexError("input", `${path}:${startLine}: unterminated quoted field`);
  }
  if (count === 0) throw new DspexError("input", `${path}: no examples in the file`);
}

/** One RFC 4180 row; undefined when a quoted field is still open (continues on the next line). */
function parseCsvRow(s: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  let field = "";
  let quoted = false;
  while (i < s.length) {
    const c = s[i];
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
      i++;
    } else if (c === ",") {
      out.push(field);
      field = "";
      i++;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) return undefined;
  out.push(field);
  return out;
}

export async function readAll(path: string): Promise<Record_[]> {
  const out: Record_[] = [];
  for await (const r of readRecords(path)) out.push(r);
  return out;
}
