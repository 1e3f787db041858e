/**
 * Small tmpfs mounts for disk-full tests: real ENOSPC, no mocks. Mounting needs root; where
 * it is impossible a test says so and skips.
 *
 * @module
 */

/** Runs `command`; `false` when it fails or cannot run here. */
export function run(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Mounts a tmpfs of `size` (bytes, or with a unit: "64m") at `mount`; `false` where it cannot. */
export function mountTmpfs(mount: string, size: number | string): boolean {
  if (run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mount])) return true;
  console.log("skipped: cannot mount a tmpfs here (needs root and mount)");
  return false;
}

/** Bytes in use on the file system mounted at `mount`. */
export function usedBytes(mount: string): number {
  const output = new Deno.Command("df", { args: ["-B1", "--output=used", mount] }).outputSync();
  return Number(new TextDecoder().decode(output.stdout).trim().split("\n").at(-1));
}
