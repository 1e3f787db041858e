/**
 * The CLI as a real process, `deno run -A cli.ts <command>`, optionally armed with the step seam
 * (lib/fs/step_seam.ts): killed with SIGKILL at a step, or stopped there until resumed.
 *
 * @module
 */
import { SEAM_ENV, type SeamStep } from "../../lib/fs/step_seam.ts";
import { sharedCli, sharedDir } from "./installed_deno.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

export interface CliRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string[];
  stderr: string[];
}

/** Who a process runs as, with a Deno cache it may write. */
export interface User {
  uid: number;
  gid: number;
  denoDir: string;
}

/**
 * A user without root's power to ignore file permissions: `nobody` when the tests run as root,
 * else the tests' own user. Remove `denoDir` when done.
 */
export function unprivilegedUser(): User {
  const denoDir = Deno.makeTempDirSync({ prefix: "cln-backup-deno-dir-" });
  Deno.chmodSync(denoDir, 0o777);
  return Deno.uid() === 0
    ? { uid: 65534, gid: 65534, denoDir }
    : { uid: Deno.uid()!, gid: Deno.gid()!, denoDir };
}

/** A running `cli.ts` process. */
export class CliProcess {
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<Deno.CommandOutput>;

  constructor(
    args: string[],
    seam?: { action: "crash" | "pause"; step: SeamStep; nth?: number },
    user?: User,
    env: Record<string, string> = {},
  ) {
    // Another user may reach neither this process's Deno (in root's npx cache, say) nor
    // this checkout (in a private directory): it runs copies.
    const shared = user ? sharedCli() : undefined;
    this.#child = new Deno.Command(shared?.deno ?? Deno.execPath(), {
      args: ["run", "-A", shared?.cli ?? CLI, ...args],
      cwd: shared ? sharedDir() : undefined,
      env: {
        NO_COLOR: "1",
        ...env,
        ...(seam ? { [SEAM_ENV]: `${seam.action}@${seam.step}:${seam.nth ?? 1}` } : {}),
        ...(user ? { DENO_DIR: user.denoDir } : {}),
      },
      uid: user?.uid,
      gid: user?.gid,
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

  /** Sends `signal`, as Ctrl-C (SIGINT) or a service manager (SIGTERM) does. */
  signal(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  async result(): Promise<CliRun> {
    const { code, signal, stdout, stderr } = await this.#output;
    const lines = (bytes: Uint8Array) =>
      new TextDecoder().decode(bytes).split("\n").filter(Boolean);
    return { code, signal, stdout: lines(stdout), stderr: lines(stderr) };
  }
}

/** Runs `cli.ts` with `args` to its end. */
export async function runCliProcess(args: string[], user?: User): Promise<CliRun> {
  return await new CliProcess(args, undefined, user).result();
}
