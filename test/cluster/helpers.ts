// Real `dspex peer` processes on 127.0.0.1 for multi-process tests; always killed on exit.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../bin/dspex.js", import.meta.url));
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

export interface PeerProc {
  id: string;
  addr: string;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** The last 20,000 characters this peer wrote to stderr (its logs with --log). */
  stderr(): string;
}

export async function spawnPeer(args: string[], timeoutMs = 20_000): Promise<PeerProc> {
  const child = spawn(process.execPath, [bin, "peer", "--json", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-20_000)));
  const lines = createInterface({ input: child.stdout! });
  const started = await new Promise<{ peer: string; addrs: string[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`peer did not start within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    lines.on("line", (l) => {
      try {
        const m = JSON.parse(l);
        if (m.event === "listening") {
          clearTimeout(timer);
          resolve(m);
        }
      } catch {
        // not ours
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`peer exited with ${code}: ${stderr}`));
    });
  });
  return {
    id: started.peer,
    addr: started.addrs[0],
    child,
    stderr: () => stderr,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
      children.delete(child);
    },
  };
}

/** Poll `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < end) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ""}`);
}
