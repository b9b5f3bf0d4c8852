// Errors of distributed jobs: a code a caller can branch on and a message saying what to do.
export type JobErrorCode = "budget" | "no_workers" | "cancelled" | "no_leader" | "refused" | "unknown_job" | "failed" | "unreachable";

export class JobError extends Error {
  constructor(
    readonly code: JobErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "JobError";
  }
}
