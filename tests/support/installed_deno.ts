/**
 * A Deno binary placed as an operator installs it, whatever way this test's own Deno came:
 * under `npx deno` it sits in root's npx cache, which `nobody` cannot enter and which `init`
 * rightly warns about. A hard link (a copy across file systems) puts the same binary where a
 * test needs it.
 *
 * @module
 */

/** Puts this process's Deno at `path` (a hard link, or a copy across file systems). */
export function placeDeno(path: string): string {
  try {
    Deno.linkSync(Deno.execPath(), path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotSupported) && !/os error 18/.test(String(error))) {
      throw error;
    }
    Deno.copyFileSync(Deno.execPath(), path);
    Deno.chmodSync(path, 0o755);
  }
  return path;
}

let shared: string | undefined;

/** A Deno any user may run, in a directory of its own, removed when this process ends. */
export function sharedDeno(): string {
  if (shared) return shared;
  const dir = Deno.makeTempDirSync({ prefix: "cln-backup-deno-" });
  Deno.chmodSync(dir, 0o755);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return shared = placeDeno(`${dir}/deno`);
}
