/**
 * The CLI as a real process, `deno run -A cli.ts <command>`, optionally armed with the step seam
 * (lib/fs/step_seam.ts): killed with SIGKILL at a step, or stopped there until resumed.
 *
 * @module
 */
import { SEAM_ENV, type SeamStep } from "../../lib/fs/step_seam.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

export interface CliRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string[];
  stderr: string[];
}

/** A running `cli.ts` process. */
export class CliProcess {
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<Deno.CommandOutput>;

  constructor(args: string[], seam?: { action: "crash" | "pause"; step: SeamStep }) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...args],
      env: { NO_COLOR: "1", ...(seam ? { [SEAM_ENV]: `${seam.action}@${seam.step}` } : {}) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#output = this.#child.output();
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves once the process stopped at its seam ("paused") or ended ("exited"). */
  async paused(): Promise<"paused" | "exited"> {
    for (;;) {
      let state: string;
      try {
        // /proc/<pid>/stat: "pid (comm) state ...": T is stopped.
        state = Deno.readTextFileSync(`/proc/${this.pid}/stat`).replace(/^.*\) /s, "")[0];
      } catch {
        return "exited";
      }
      if (state === "T") return "paused";
      if (state === "Z") return "exited";
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  resume(): void {
    this.#child.kill("SIGCONT");
  }

  async result(): Promise<CliRun> {
    const { code, signal, stdout, stderr } = await this.#output;
    const lines = (bytes: Uint8Array) =>
      new TextDecoder().decode(bytes).split("\n").filter(Boolean);
    return { code, signal, stdout: lines(stdout), stderr: lines(stderr) };
  }
}

/** Runs `cli.ts` with `args` to its end. */
export async function runCliProcess(
  args: string[],
  seam?: { action: "crash" | "pause"; step: SeamStep },
): Promise<CliRun> {
  return await new CliProcess(args, seam).result();
}
