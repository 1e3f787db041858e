/**
 * Whether anything, even a dangling symlink, is at a path.
 *
 * @module
 */

export function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Removes whatever is at `path` (a directory with its contents), if anything is. */
export function removeIfExists(path: string): void {
  if (existsSync(path)) Deno.removeSync(path, { recursive: true });
}
