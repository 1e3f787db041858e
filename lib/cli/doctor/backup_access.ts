/**
 * Whether lightningd's user can use a file backup: write its directory and each file in it
 * (the plugin appends there, rolls segments and takes its lock), and reach it through every
 * directory above. doctor often runs as root, who could: the bits say whether that user can.
 *
 * @module
 */
import { shellQuote } from "../../fs/shell_quote.ts";
import type { Found } from "./check.ts";
import { allows, describeUser, unreachableProblem } from "./node_user.ts";

/** Why lightningd's user cannot use the file backup at `path`, or `undefined` when it can. */
export function backupAccessProblem(path: string, found: Found): string | undefined {
  const top = Deno.statSync(path);
  const entries = top.isDirectory
    ? [...Deno.readDirSync(path)].map((e) => `${path}/${e.name}`)
    : [];
  const unwritable = [path, ...entries].find((p) => {
    const info = Deno.statSync(p);
    return !allows(info, found.user, info.isDirectory ? 3 : 2);
  });
  if (unwritable) {
    return `"${unwritable}" is not writable by ${describeUser(found.user)}: run "chown -R ` +
      `${found.user?.uid}:${found.user?.gid} ${shellQuote(path)}" (was init run as another user?)`;
  }
  return unreachableProblem(path, found.user, "the backup");
}
