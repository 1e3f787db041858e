/**
 * A view of a backup's bases and logs as they stand, for a read on a server that takes long
 * (a v1 RESTORE, VERIFY, STATUS): hard links in a temporary directory inside the backup. A
 * reader opens each segment only when it comes to it, while a compaction beside it deletes
 * the bases and logs it folded and rewrites the live log: read in place, the backup would
 * look damaged, or a segment gone. The links keep the segments the read started with;
 * appends to the live log show through them. On a file system without hard links (or with
 * no room for the directory) the read goes to the backup itself, as before. A view is not
 * named as a temporary file (`.tmp`): the server opens its backup again after a full disk,
 * and that open removes temporaries, under a read still running. The server's next start
 * removes a view a crash left ({@linkcode removeStaleViews}).
 *
 * @module
 */
import { basename } from "node:path";
import { readLayout } from "../format/layout.ts";
import { removeIfExists } from "../fs/exists.ts";

const VIEW = /^view-\d+$/;

/** The path of the `n`-th view of the backup at `dir`. */
export function viewPath(dir: string, n: number): string {
  return `${dir}/view-${n}`;
}

/** Removes the views a crash left in the backup at `dir`; called before any read makes one. */
export function removeStaleViews(dir: string): void {
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory && VIEW.test(entry.name)) {
      Deno.removeSync(`${dir}/${entry.name}`, { recursive: true });
    }
  }
}

/** The segments of the backup at `dir` linked into `view`; the backup itself when it cannot be. */
function linkSegments(dir: string, view: string): string {
  for (let attempt = 0;; attempt++) {
    try {
      Deno.mkdirSync(view);
      const { bases, logs } = readLayout(dir);
      for (const { path } of [...bases, ...logs]) Deno.linkSync(path, `${view}/${basename(path)}`);
      return view;
    } catch (error) {
      removeIfExists(view);
      // Deleted between the listing and its link: listed again.
      if (!(error instanceof Deno.errors.NotFound) || attempt === 10) return dir;
    }
  }
}

/**
 * Runs `read` on a view of the backup at `dir` (in `view`, removed after); an error names the
 * backup's own files.
 */
export async function readOnView<T>(
  dir: string,
  view: string,
  read: (dir: string) => T | Promise<T>,
): Promise<T> {
  const viewed = linkSegments(dir, view);
  try {
    return await read(viewed);
  } catch (error) {
    throw namingBackup(error, viewed, dir);
  } finally {
    if (viewed !== dir) removeIfExists(viewed);
  }
}

/**
 * What `read` yields from a view of the backup at `dir` (in `view`, made at the first item
 * and removed after the last, or when the reading stops); an error names the backup's own
 * files.
 */
export function* readingOnView<T>(
  dir: string,
  view: string,
  read: (dir: string) => Iterable<T>,
): Iterable<T> {
  const viewed = linkSegments(dir, view);
  try {
    yield* read(viewed);
  } catch (error) {
    throw namingBackup(error, viewed, dir);
  } finally {
    if (viewed !== dir) removeIfExists(viewed);
  }
}

/** `error`, its message naming the files of the backup at `dir` where it named `view`'s. */
function namingBackup(error: unknown, view: string, dir: string): unknown {
  if (error instanceof Error && view !== dir) error.message = error.message.replaceAll(view, dir);
  return error;
}
