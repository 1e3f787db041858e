/**
 * Deno's file-system errors read like `Permission denied (os error 13): open '/x/y'`: the OS's
 * words, then the call and its path. This says the same as the CLI's one-line errors do: what
 * could not be done to which path, why, and what to do.
 *
 * @module
 */
import { dirname } from "node:path";

const FORM = /^(.+?) \(os error \d+\): (\w+) '([^']*)'(?: -> '([^']*)')?$/;

/** What each call was doing, as "<why> when ___ <path>" reads. */
const VERBS: Record<string, string> = {
  open: "opening",
  readfile: "reading",
  writefile: "writing",
  mkdir: "creating the directory",
  readdir: "listing the directory",
  remove: "removing",
  rename: "renaming",
  link: "linking",
  symlink: "linking",
  copyfile: "copying",
  stat: "looking at",
  lstat: "looking at",
  realpath: "resolving",
  chmod: "changing the mode of",
  truncate: "truncating",
};

/** Calls refused for the path itself; the others for its directory. */
const READS = new Set(["readfile", "readdir"]);

function advice(code: string | undefined, call: string, path: string): string {
  const parent = dirname(path);
  switch (code) {
    case "EACCES":
    case "EPERM":
      return `check the permissions of "${READS.has(call) ? path : parent}", or run this as ` +
        `the user who owns it`;
    case "ENOENT":
      return `check that "${parent}" exists, or choose another path`;
    case "ENOTDIR":
      return `a part of "${parent}" is not a directory: check the path`;
    case "EROFS":
      return "that file system is mounted read-only: choose a path on another one";
    case "ENOSPC":
    case "EDQUOT":
      return "free some space on that file system, or choose a path on another one";
    default:
      return "check the path and the file system, then run this again";
  }
}

/**
 * Whether `error` (or an error it was caused by) is a want of room: the file system's (ENOSPC,
 * EDQUOT), or SQLite's "database or disk is full", which names no code.
 */
export function isOutOfRoom(error: unknown): boolean {
  const { code, cause, message } = (error ?? {}) as {
    code?: string;
    cause?: unknown;
    message?: string;
  };
  if (code === "ENOSPC" || code === "EDQUOT") return true;
  if (/database or disk is full/.test(message ?? "")) return true;
  return cause !== undefined && isOutOfRoom(cause);
}

/**
 * The OS's words in `error`'s message, lowercased for the middle of a line: Deno's
 * `No space left on device (os error 28): open '/x'` reads `no space left on device`.
 */
export function osReason(error: unknown): string {
  return String((error as Error).message).replace(/ \(os error \d+\).*$/, "").toLowerCase();
}

/**
 * `error`, thrown while writing `path`: a want of room ({@linkcode isOutOfRoom}) as one line
 * that names the file and says to free room, then run `command` again; another as it is.
 */
export function outOfRoomWriting(error: unknown, path: string, command: string): unknown {
  if (!isOutOfRoom(error)) return error;
  return new Error(
    `cannot write "${path}": ${osReason(error)}: free room on that disk, then run ${command} again`,
    { cause: error },
  );
}

/**
 * The one-line explanation of an OS error from a file-system call, or `undefined` when `error`
 * is not one (it does not name its call and path).
 */
export function explainOsError(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = FORM.exec(error.message);
  if (!match) return undefined;
  const [, why, call, path, to] = match;
  const code = (error as { code?: string }).code;
  const what = `${VERBS[call] ?? call} "${path}"${to === undefined ? "" : ` to "${to}"`}`;
  return `${why.toLowerCase()} when ${what}: ${advice(code, call, to ?? path)}`;
}
