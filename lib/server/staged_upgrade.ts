/**
 * Where a server keeps a node's encrypted copy of its plain backup while `upgrade --encrypt`
 * uploads it (SEALED_UPGRADE, docs/PROTOCOL.md), and the swap that puts it in the plain one's
 * place. Beside the backup `<dir>`:
 *
 * - `<dir>.encrypting`: the copy being uploaded; nothing reads it;
 * - `<dir>.plain`: the plain backup, moved aside for the one rename that commits the swap.
 *
 * The swap renames `<dir>` to `<dir>.plain`, then `<dir>.encrypting` to `<dir>` (the commit
 * point), each made durable with a directory fsync, and only then removes `<dir>.plain`. At
 * every moment the backup is whole, plain or encrypted, never a mix: a crash before the second
 * rename leaves `<dir>` missing and `<dir>.plain` whole, which {@linkcode settleUpgrade}
 * renames back at the next open; after it, the plain one is removed then.
 *
 * @module
 */
import { dirname } from "node:path";
import { existsSync, removeIfExists } from "../fs/exists.ts";
import { syncDir } from "../fs/durable.ts";
import { atStep } from "../fs/step_seam.ts";

/** Where the encrypted copy of the backup `dir` is uploaded. */
export function stagingDir(dir: string): string {
  return `${dir}.encrypting`;
}

function asideDir(dir: string): string {
  return `${dir}.plain`;
}

/**
 * Settles what an upgrade cut short by a crash left beside the backup `dir`, before it is
 * opened; returns what it did, for the log.
 */
export function settleUpgrade(dir: string): string[] {
  const done: string[] = [];
  const aside = asideDir(dir);
  if (existsSync(aside) && !existsSync(dir)) {
    Deno.renameSync(aside, dir);
    done.push(`put the plain backup back in place: an upgrade to encrypted stopped mid-swap`);
  }
  for (const [path, what] of [[stagingDir(dir), "an upload cut short"], [aside, "replaced"]]) {
    if (!existsSync(path)) continue;
    Deno.removeSync(path, { recursive: true });
    done.push(`removed "${path}" (${what})`);
  }
  if (done.length > 0) syncDir(dirname(dir));
  return done;
}

/**
 * Puts the complete, checked and synced encrypted copy in the place of the plain backup
 * `dir` (see the module's comment); on a failure before the commit, the plain one stays.
 */
export function swapInStaged(dir: string): void {
  const parent = dirname(dir);
  const aside = asideDir(dir);
  Deno.renameSync(dir, aside);
  try {
    syncDir(parent);
    atStep("upgrade-swap");
    Deno.renameSync(stagingDir(dir), dir);
  } catch (error) {
    if (!existsSync(dir)) Deno.renameSync(aside, dir);
    throw error;
  }
  syncDir(parent);
  removeIfExists(aside);
  syncDir(parent);
}
