// Progress display: a real bar on a TTY (cli-progress), silence otherwise, so logs and
// pipes stay clean.
import cliProgress from "cli-progress";

export interface Progress {
  start(total: number | undefined, label: string): void;
  update(done: number, stats: { score?: number; errors?: number }): void;
  stop(): void;
}

export const silentProgress: Progress = { start() {}, update() {}, stop() {} };

export function ttyProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  let bar: cliProgress.SingleBar | undefined;
  let known = false;
  return {
    start(total, label) {
      known = total !== undefined;
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: known
            ? `${label} |{bar}| {value}/{total} | score {score} | errors {errors} | {eta_formatted} left`
            : `${label} {value} done | score {score} | errors {errors}`,
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 50,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 0, 0, { score: "-", errors: 0 });
    },
    update(done, stats) {
      bar?.update(done, { score: stats.score === undefined ? "-" : `${(stats.score * 100).toFixed(1)}%`, errors: stats.errors ?? 0 });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/** `true` forces a bar, `false` silences it, "auto" shows one only on a TTY. */
export function chooseProgress(mode: boolean | "auto" | Progress = "auto"): Progress {
  if (typeof mode === "object") return mode;
  if (mode === true || (mode === "auto" && process.stderr.isTTY)) return ttyProgress();
  return silentProgress;
}
