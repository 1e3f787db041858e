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

/** What is at `path`, following symlinks, or undefined when nothing is. */
export function statIfExists(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
