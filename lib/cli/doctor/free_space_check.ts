/**
 * The free space check: the backup's filesystem can hold a snapshot of the database, and
 * better twice that, since the backup grows until it is compacted. The compaction of an S3
 * backup or copy, or of an encrypted one on a server (which only the node can make), rebuilds
 * the database in the lightning dir instead (cln-backup-scratch), on the node's own filesystem:
 * each place that matters is checked, and the worst is said.
 *
 * @module
 */
import { SCRATCH_DIR } from "../../backends/plugin_scratch.ts";
import { CREDENTIAL_NAME } from "../../backends/socket/credential.ts";
import { KEY_FILE } from "../../crypto/key_file.ts";
import { statIfExists } from "../../fs/exists.ts";
import type { CheckResult, Found } from "./check.ts";
import { backupDestination } from "./destination.ts";
import { placeOf } from "../../backup/same_disk.ts";
import { lockDestinations, mirrorFailure } from "../../backends/multi/mirrors.ts";
import { parseBackupUrl } from "../../backends/url.ts";
import { formatBytes } from "./format_bytes.ts";
import type { DoctorSystem } from "./system.ts";

/** Why too little room is a failure (`full`: a warning only), then a warning, and what to do. */
interface Why {
  fail: string;
  warn: string;
  full?: "WARN";
}

const AT_BACKUP: Why = {
  fail: "the backup cannot hold a snapshot of it, and a full disk stops the node: free space " +
    "there or move the backup to a larger disk",
  warn: "less than twice the database, and the backup grows with every change until it is " +
    "compacted: free space there",
};
const AT_MIRROR: Why = {
  fail: "the mirror there cannot hold a snapshot of it, and a full disk stops the node: free " +
    "space there or move the mirror to a larger disk",
  warn: AT_BACKUP.warn,
};
/**
 * Under mirror_failure "degrade", a mirror that fills its disk is dropped and the node goes on,
 * but the next start refuses the mirror, which lacks changes: a stop put off, not spared.
 */
const AT_DEGRADING_MIRROR: Why = {
  fail: "the mirror there cannot hold a snapshot of it: full, it fails and gets no more " +
    'changes (mirror_failure "degrade"), and the node goes on without it until its next ' +
    "start, which it stops while backup.lock names it: free space there or move the mirror " +
    "to a larger disk",
  warn: AT_BACKUP.warn,
};
/** An async copy that fills its disk fails; the node goes on (so a warning at worst). */
const AT_ASYNC_COPY: Why = {
  full: "WARN",
  fail: "the async copy there cannot hold a snapshot of it: full, it fails, and the backup, " +
    "which keeps what the copy lacks, grows meanwhile: free space there or move the copy to " +
    "a larger disk",
  warn: AT_BACKUP.warn,
};
const IN_SCRATCH: Why = {
  fail: `the plugin's compaction rebuilds the database in ${SCRATCH_DIR} there, and a full ` +
    `disk stops the node: free space there`,
  warn: `less than twice the database, and the plugin's compaction rebuilds the database in ` +
    `${SCRATCH_DIR} there, beside the node's own: free space there`,
};

/** The URLs of backup.lock's destinations; none when it does not read (the lock check says why). */
function copyUrls(found: Found): string[] {
  try {
    const { sync, async } = lockDestinations(found.lock!);
    return [...sync, ...async];
  } catch {
    return [];
  }
}

/** Whether the plugin compacts a destination in the lightning dir, as the launcher grants it. */
function compactsInScratch(found: Found): boolean {
  const scheme = found.url?.scheme;
  return scheme === "s3" || copyUrls(found).some((url) => parseBackupUrl(url).scheme === "s3") ||
    (scheme === "socket" && statIfExists(`${found.dir}/${CREDENTIAL_NAME}`) !== undefined &&
      statIfExists(`${found.dir}/${KEY_FILE}`) !== undefined);
}

/** One place's free space against the database's size. */
function roomAt(
  destination: string,
  why: Why,
  found: Found,
  system: DoctorSystem,
): CheckResult {
  const database = statIfExists(found.database);
  const size = database?.size ?? 0;
  let free: number;
  try {
    free = system.freeBytes(destination);
  } catch (error) {
    return ["WARN", `cannot tell the free space at "${destination}": ${(error as Error).message}`];
  }
  const facts = `${formatBytes(free)} free at "${destination}", the database is ` +
    `${database ? formatBytes(size) : "not created yet"}`;
  if (free < size) return [why.full ?? "FAIL", `${facts}: ${why.fail}`];
  if (free < 2 * size) return ["WARN", `${facts}: ${why.warn}`];
  return ["OK", facts];
}

const WORST = ["OK", "WARN", "FAIL"];

/** Each file copy's place, and why too little room there matters. */
function filePlaces(found: Found): [string, Why][] {
  let sync: string[] = [];
  let async: string[] = [];
  let degrade = false;
  try {
    ({ sync, async } = lockDestinations(found.lock!));
    degrade = mirrorFailure(found.lock!) === "degrade";
  } catch {
    // The copies check says why.
  }
  return [...sync.slice(1), ...async].flatMap((url) => {
    const parsed = parseBackupUrl(url);
    if (parsed.scheme !== "file") return [];
    const why = async.includes(url) ? AT_ASYNC_COPY : degrade ? AT_DEGRADING_MIRROR : AT_MIRROR;
    return [[placeOf(parsed.path), why]];
  });
}

export function freeSpaceCheck(found: Found, system: DoctorSystem): CheckResult {
  const backup = backupDestination(found);
  const results = [
    ...(backup === undefined ? [] : [roomAt(backup, AT_BACKUP, found, system)]),
    ...filePlaces(found).map(([place, why]) => roomAt(place, why, found, system)),
    ...(compactsInScratch(found) ? [roomAt(found.dir, IN_SCRATCH, found, system)] : []),
  ];
  if (results.length === 0) {
    return ["OK", "a remote backup: check free space on the backup server"];
  }
  const worst = results.reduce((a, b) => WORST.indexOf(b[0]) > WORST.indexOf(a[0]) ? b : a)[0];
  // Every place short of room is said: a mild shortage at one hides no full disk at another.
  const said = worst === "OK" ? results : results.filter(([level]) => level !== "OK");
  return [worst, said.map((r) => r[1]).join("; ")];
}
