/**
 * Whether lightningd's user can use a file backup: write its directory and each file in it
 * (the plugin appends there, rolls segments and takes its lock), and reach it through every
 * directory above. doctor often runs as root, who could: the bits say whether that user can.
 *
 * @module
 */
import { shellQuote } from "../../fs/shell_quote.ts";
import type { Found } from "./check.ts";
import { allows, describeUser, unsearchableAbove } from "./node_user.ts";

/** Why lightningd's user cannot use the file backup at `path`, or `undefined` when it can. */
export function backupAccessProblem(path: string, found: Found): string | undefined {
  const who = describeUser(found.user);
  const top = Deno.statSync(path);
  const entries = top.isDirectory
    ? [...Deno.readDirSync(path)].map((e) => `${path}/${e.name}`)
    : [];
  const unwritable = [path, ...entries].find((p) => {
    const info = Deno.statSync(p);
    return !allows(info, found.user, info.isDirectory ? 3 : 2);
  });
  if (unwritable) {
    return `"${unwritable}" is not writable by ${who}: run "chown -R ` +
      `${found.user?.uid}:${found.user?.gid} ${shellQuote(path)}" (was init run as another user?)`;
  }
  const blocked = unsearchableAbove(path, found.user);
  if (blocked) {
    return `"${blocked}" is not searchable by ${who}, so it cannot reach "${path}": run ` +
      `"chmod o+x ${shellQuote(blocked)}", or move the backup where that user can reach it`;
  }
  return undefined;
}
