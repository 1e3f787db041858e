/**
 * What a doctor check sees and what it says. Checks run in order and share `Found`: an
 * earlier check fills in what later ones need (the lock file, the backup's description).
 *
 * @module
 */
import type { BackupDescription } from "../../backends/backend.ts";
import type { BackupUrl } from "../../backends/url.ts";
import type { LockFile } from "../../backup/lock_file.ts";
import type { NodeUser } from "./node_user.ts";

export type Level = "OK" | "WARN" | "FAIL" | "SKIP";

/** One printed line: a check's level, name and message. */
export interface Check {
  level: Level;
  name: string;
  message: string;
}

/** A check's verdict and its message, which says what to do. */
export type CheckResult = [Level, string];

/** The launcher script's `exec` line, as `parseLauncher` reads it. */
export interface LauncherLine {
  deno: string;
  args: string[];
}

/** What the checks learned so far about the node in `dir`. */
export interface Found {
  dir: string;
  /** The node's database (node_database.ts), perhaps not made yet. */
  database: string;
  user: NodeUser | undefined;
  lock?: LockFile;
  url?: BackupUrl;
  description?: BackupDescription;
  /** The program the config loads, or the launcher when none. */
  program?: string;
  /** The launcher's exec line, when the program is a launcher that parses. */
  launcher?: LauncherLine;
}
