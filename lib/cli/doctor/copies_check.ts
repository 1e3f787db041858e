/**
 * The copies check, for a backup.lock that names more destinations than `backend_url`: each
 * local file mirror must open and stand where the first backup stands, as the plugin demands
 * at its start (else it stops the node); an async copy may be behind (it catches up), or a
 * change ahead (it drops that one), but one missing or further ahead gets no changes. Each copy
 * must hold the backup backup.lock ties to it (`backup_ids`), and one without a tie is a
 * warning: the plugin could not tell another backup found at its URL. Remote copies are
 * otherwise left to `status`, as are the versions of copies beside a remote `backend_url`.
 *
 * @module
 */
import type { BackupDescription } from "../../backends/backend.ts";
import {
  copyBackupIds,
  lockDestinations,
  newCopyCommand,
  untiedCopies,
  untiedCopy,
} from "../../backends/multi/mirrors.ts";
import { formatBackupId } from "../../format/segment.ts";
import { backupKind } from "../../backends/open.ts";
import { parseBackupUrl } from "../../backends/url.ts";
import { backupAccessProblem } from "./backup_access.ts";
import { shellQuote } from "../../fs/shell_quote.ts";
import { cliCommand } from "../../fs/advised_command.ts";
import type { CheckResult, Found } from "./check.ts";
import { describeBackup } from "./describe_backup.ts";
import { keyIdOf, sameBytes } from "../../crypto/data_key.ts";
import { KEY_FILE, keyFileBytes } from "../../crypto/key_file.ts";
import { readChain } from "../../format/chain.ts";

/** `a` and `b` agree: the same version, or one a change ahead (the plugin drops it). */
function agree(a: BackupDescription, b: BackupDescription): boolean {
  const [low, high] = a.lastVersion <= b.lastVersion ? [a, b] : [b, a];
  return high.lastVersion === low.lastVersion ||
    (high.lastVersion === low.lastVersion + 1 && high.snapshots.at(-1) !== high.lastVersion);
}

/**
 * Why the plugin, which opens every destination with the key in `dir`'s backup.key (or none),
 * refuses the file backup at `path`; `undefined` when that key is the backup's.
 */
function copyKeyProblem(path: string, dir: string): string | undefined {
  const keyFile = `${dir}/${KEY_FILE}`;
  const keyId = readChain(path).keyId;
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(keyFile);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return; // The backup.key check says why.
  }
  if (text === undefined) {
    return keyId === undefined
      ? undefined
      : `is encrypted, but no "${keyFile}" holds its key, and the plugin opens every ` +
        `destination with that file's key`;
  }
  if (keyId === undefined) {
    return `is not encrypted, but "${keyFile}" holds a key, which the plugin opens every ` +
      `destination with`;
  }
  const bytes = keyFileBytes(text);
  if (bytes !== undefined && !sameBytes(keyIdOf(bytes), keyId)) {
    return `is encrypted under another key than "${keyFile}" holds, which the plugin opens ` +
      `every destination with`;
  }
}

/** Where an async copy stands once opened: it drops a last change on top of its snapshot. */
function resumesFrom(copy: BackupDescription): number {
  const { lastVersion, snapshots } = copy;
  return lastVersion > 0 && snapshots.at(-1) !== lastVersion ? lastVersion - 1 : lastVersion;
}

/**
 * Why the copy `url`, which lies well otherwise, is not tied to its backup id in backup.lock;
 * `undefined` when it is, or has none to tie (a Python server's, wire v1).
 */
function notTied(url: string, found: Found): string | undefined {
  if (!untiedCopies(found.lock!, found.dir).includes(url)) return;
  return `${url} is not tied to its backup id in backup.lock ("backup_ids", which a copy made ` +
    `before cln-backup recorded them lacks): the plugin cannot tell another backup found ` +
    `there (another node's, a mount swapped) from it, and would write the node's changes ` +
    `into it: once you know it holds this node's copy, tie it with "${
      cliCommand("mirror", `${shellQuote(url)} --lightning-dir ${shellQuote(found.dir)}`)
    }"`;
}

export function copiesCheck(found: Found): CheckResult {
  const { sync, async } = lockDestinations(found.lock!);
  const ids = copyBackupIds(found.lock!);
  // A remote backend_url is not read here: its copies' versions are status's to compare.
  let first = found.description;
  const remake = (isAsync: boolean) =>
    `with lightningd stopped, remove it from backup.lock and add a new copy with ` +
    newCopyCommand(shellQuote(found.dir), isAsync);
  const fails: string[] = [];
  const warns: string[] = [];
  const fine: string[] = [];
  for (const url of [...sync.slice(1), ...async]) {
    // A copy that lies well otherwise: a copy to be remade needs no tie.
    const fineOrUntied = (line: string) => {
      const untied = notTied(url, found);
      if (untied !== undefined) warns.push(untied);
      else fine.push(line);
    };
    const isAsync = async.includes(url);
    const parsed = parseBackupUrl(url);
    if (parsed.scheme !== "file") {
      const untied = notTied(url, found);
      if (untied !== undefined) warns.push(untied);
      else fine.push(`${url} is remote (check it with "${cliCommand("status")}")`);
      continue;
    }
    if (backupKind(parsed.path) === "v1") {
      // It describes itself, but the plugin refuses to append to it.
      const what = `${url} is a v1 backup of the Python plugin, which the plugin does not ` +
        `append to`;
      (isAsync ? warns : fails).push(
        isAsync
          ? `${what}: it gets no changes: ${remake(true)}`
          : `${what}: it stops the node at its start: ${remake(false)}`,
      );
      continue;
    }
    let copy: BackupDescription;
    try {
      copy = describeBackup(url);
    } catch (error) {
      // openReader's advice for a missing backup is init's, which a node with one refuses.
      const message = backupKind(parsed.path) === "missing"
        ? `nothing at "${parsed.path}"`
        : (error as Error).message;
      (isAsync ? warns : fails).push(
        isAsync
          ? `${url}: ${message}: the node goes on without this async copy, which gets no ` +
            `changes: mount it or fix the URL; or, ${remake(true)}`
          : `${url}: ${message}: the plugin stops the node at its start: mount it or fix the ` +
            `URL; or, ${remake(false)}`,
      );
      continue;
    }
    // It opens for doctor, who may be root: the plugin opens it as lightningd's user.
    const access = backupAccessProblem(parsed.path, found);
    if (access !== undefined) {
      (isAsync ? warns : fails).push(
        isAsync
          ? `${url}: ${access}: until then the node goes on without this async copy`
          : `${url}: ${access}: until then the plugin stops the node at its start`,
      );
      continue;
    }
    const keyProblem = copyKeyProblem(parsed.path, found.dir);
    if (keyProblem !== undefined) {
      (isAsync ? warns : fails).push(
        isAsync
          ? `${url} ${keyProblem}: it refuses this async copy, which gets no changes: with ` +
            `lightningd stopped, remove it from backup.lock (an encrypted backup has no ` +
            `copies yet)`
          : `${url} ${keyProblem}: it stops the node at its start: with lightningd stopped, ` +
            `remove it from backup.lock (an encrypted backup has no copies yet)`,
      );
      continue;
    }
    const other = untiedCopy(
      ids.get(url),
      formatBackupId(readChain(parsed.path).backupId),
      isAsync,
      shellQuote(found.dir),
    );
    if (other !== undefined) {
      (isAsync ? warns : fails).push(
        isAsync
          ? `${url}: ${other}; the node goes on without this async copy`
          : `${url}: ${other}; the plugin stops the node at its start (under mirror_failure ` +
            `"degrade", goes on without it)`,
      );
      continue;
    }
    if (first === undefined) {
      fineOrUntied(`${url} at ${copy.lastVersion}`);
      continue;
    }
    // A running node stores each change in both meanwhile: the first is read again after the
    // copy, and both again when it moved, as the version check reads the database.
    for (let attempt = 0; attempt < 4; attempt++) {
      const before = first.lastVersion;
      first = describeBackup(first.url);
      if (first.lastVersion === before) break;
      copy = describeBackup(url);
    }
    const top = first.lastVersion;
    const at = copy.lastVersion;
    if (isAsync) {
      // One change ahead, the last the node did not commit: the copy drops it when it opens.
      if (at > top && !agree(first, copy)) {
        warns.push(
          `${url} at ${at} is ahead of ${first.url} at ${top}: it is not a copy of this ` +
            `backup, and gets no changes: ${remake(true)}`,
        );
      } else if (resumesFrom(copy) < (first.snapshots.at(-1) ?? 0)) {
        // It catches up from the primary's newest snapshot on (a compaction with lightningd
        // stopped does not know the copies).
        warns.push(
          `${url} at ${at} lacks changes ${first.url} folded into its snapshot at ` +
            `${first.snapshots.at(-1)}, which a copy catches up from: it cannot catch up, and ` +
            `gets no changes: ${remake(true)}`,
        );
      } else {
        fineOrUntied(
          at >= top ? `${url} at ${at}` : `${url} async, ${top - at} behind: it ` +
            `catches up from ${first.url} after the node's first write`,
        );
      }
    } else if (agree(first, copy)) {
      fineOrUntied(`${url} at ${at}`);
    } else if (at < top) {
      fails.push(
        `${url} at ${at} lacks changes ${first.url} holds at ${top}: the plugin stops the node ` +
          `at its start: ${remake(false)}`,
      );
    } else {
      fails.push(
        `${url} at ${at} holds changes ${first.url} at ${top} lacks (it failed under ` +
          `mirror_failure "degrade"?): the plugin stops the node at its start: with ` +
          `lightningd stopped, make backend_url the newest copy and remove ${first.url} ` +
          `from backup.lock, then add a new copy with ${newCopyCommand(shellQuote(found.dir))}`,
      );
    }
  }
  if (fails.length > 0) return ["FAIL", fails.join("; ")];
  if (warns.length > 0) return ["WARN", warns.join("; ")];
  if (first !== undefined) {
    return ["OK", `${first.url} at ${first.lastVersion}; ${fine.join(", ")}`];
  }
  const primary = found.lock!.backend_url;
  return [
    "OK",
    `${fine.join(", ")}; each tied to its backup id: compare their versions with ${primary}'s ` +
    `("${cliCommand("status", shellQuote(primary))}")`,
  ];
}
