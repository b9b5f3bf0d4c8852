// Errors are values with a code a program can branch on and a message a user can act on.

export type DspexErrorCode =
  | "signature_syntax"
  | "signature_type"
  | "signature_field"
  | "adapter_parse"
  | "adapter_format"
  | "program_file"
  | "program_state"
  | "registry_unknown"
  | "registry_conflict"
  | "plugin"
  | "config"
  | "input"
  | "tool";

export class DspexError extends Error {
  readonly code: DspexErrorCode;
  constructor(code: DspexErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DspexError";
    this.code = code;
  }
}

/** A signature string or field definition is malformed, or names an unknown type. */
export class SignatureError extends DspexError {
  constructor(code: "signature_syntax" | "signature_type" | "signature_field", message: string) {
    super(code, message);
    this.name = "SignatureError";
  }
}

/**
 * An LM reply could not be parsed into the signature's output fields.
 * The message follows DSPy's AdapterParseError text so logs read the same.
 */
export class AdapterParseError extends DspexError {
  readonly adapterName: string;
  readonly lmResponse: string;
  readonly expectedFields: readonly string[];
  readonly parsedResult?: Record<string, unknown>;
  /** Tokens spent on the reply that failed to parse (so fallbacks can account for them). */
  usage?: import("./lm/types.js").LMUsage;
  constructor(args: {
    adapterName: string;
    expectedFields: readonly string[];
    lmResponse: string;
    message?: string;
    parsedResult?: Record<string, unknown>;
  }) {
    let message = args.message ? `${args.message}\n\n` : "";
    message +=
      `Adapter ${args.adapterName} failed to parse the LM response. \n\n` +
      `LM Response: ${args.lmResponse} \n\n` +
      `Expected to find output fields in the LM response: [${args.expectedFields.join(", ")}] \n\n`;
    if (args.parsedResult !== undefined) {
      message += `Actual output fields parsed from the LM response: [${Object.keys(args.parsedResult).join(", ")}] \n\n`;
    }
    super("adapter_parse", message);
    this.name = "AdapterParseError";
    this.adapterName = args.adapterName;
    this.lmResponse = args.lmResponse;
    this.expectedFields = args.expectedFields;
    this.parsedResult = args.parsedResult;
  }
}

/** A saved program file is missing, unreadable, or does not match the program's structure. */
export class ProgramStateError extends DspexError {
  readonly path?: string;
  constructor(message: string, path?: string, options?: { cause?: unknown }) {
    super("program_file", path ? `${path}: ${message}` : message, options);
    this.name = "ProgramStateError";
    this.path = path;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
