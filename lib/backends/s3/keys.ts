/**
 * Object names of an S3 backup (docs/FORMAT.md, "On S3"). Every record of the backup has a
 * sequence number (1, 2, …); a name carries what the writer needs to know where the backup
 * stands, so that a listing alone tells it, with no object read:
 *
 * - `base-<version>-<seq>.clnb`: a base segment, the snapshot at `version`, covering the
 *   records up to `seq`;
 * - `change-<seq>-<gen>-<version>.clnr`: one change record; a rewind stores the next change
 *   at the same `seq` with the next `gen` (objects cannot be truncated or overwritten), and
 *   the record's link says which `gen` of the record before it a change was stored on
 *   (layout.ts);
 * - `pack-<first>-<last>-<version>.clnb`: a log segment holding records `first`…`last`,
 *   the last at `version`, that the packer merged from change objects;
 * - `backup-id`: the backup's 16-byte id, written once by `init`: it says that a backup is
 *   there, and every base and pack carries it;
 * - `key.json`: an encrypted backup's wrapped data key (lib/crypto/wrapped_key.ts), written
 *   by `init` before `backup-id`, replaced whole by `rekey`;
 * - `claim`: the backup's id, written first by `init` or `upgrade` where none is, so that of
 *   two creations at once on one prefix only one goes on; no reader reads it.
 *
 * @module
 */
import { CorruptBackupError } from "../../format/segment.ts";
import { WRAPPED_KEY_NAME } from "../../crypto/wrapped_key.ts";

const PAD = 20;
const GEN_PAD = 4;

function pad(n: number, width = PAD): string {
  return String(n).padStart(width, "0");
}

export function idKey(prefix: string): string {
  return `${prefix}backup-id`;
}

export function claimKey(prefix: string): string {
  return `${prefix}claim`;
}

export function wrappedKeyKey(prefix: string): string {
  return `${prefix}${WRAPPED_KEY_NAME}`;
}

export function baseKey(prefix: string, version: number, seq: number): string {
  return `${prefix}base-${pad(version)}-${pad(seq)}.clnb`;
}

export function changeKey(prefix: string, seq: number, gen: number, version: number): string {
  return `${prefix}change-${pad(seq)}-${pad(gen, GEN_PAD)}-${pad(version)}.clnr`;
}

export function packKey(prefix: string, first: number, last: number, version: number): string {
  return `${prefix}pack-${pad(first)}-${pad(last)}-${pad(version)}.clnb`;
}

export type S3Entry =
  | { kind: "base"; key: string; size: number; version: number; seq: number }
  | { kind: "change"; key: string; size: number; seq: number; gen: number; version: number }
  | { kind: "pack"; key: string; size: number; first: number; last: number; version: number };

const NAMES = [
  { kind: "base", pattern: /^base-(\d{20})-(\d{20})\.clnb$/ },
  { kind: "change", pattern: /^change-(\d{20})-(\d{4})-(\d{20})\.clnr$/ },
  { kind: "pack", pattern: /^pack-(\d{20})-(\d{20})-(\d{20})\.clnb$/ },
] as const;

/**
 * What the object `key` (under `prefix`) is; `undefined` for a name of no backup object (an
 * upload's leftover, another tool's file), even one that starts like ours but does not parse
 * ({@linkcode isStray}): cln-backup never stores such a name, and a record it would hide
 * leaves a gap that the layout refuses.
 */
export function parseKey(prefix: string, key: string, size: number): S3Entry | undefined {
  const name = key.slice(prefix.length);
  if (name.includes("/")) return undefined;
  for (const { kind, pattern } of NAMES) {
    if (!name.startsWith(`${kind}-`)) continue;
    const match = pattern.exec(name);
    const numbers = match?.slice(1).map(Number) ?? [];
    if (!match || !numbers.every(Number.isSafeInteger)) return undefined;
    switch (kind) {
      case "base":
        return { kind, key, size, version: numbers[0], seq: numbers[1] };
      case "change":
        return { kind, key, size, seq: numbers[0], gen: numbers[1], version: numbers[2] };
      case "pack":
        if (numbers[0] > numbers[1] || numbers[0] === 0) {
          throw new CorruptBackupError(key, undefined, "a pack whose range is empty,");
        }
        return { kind, key, size, first: numbers[0], last: numbers[1], version: numbers[2] };
    }
  }
  return undefined;
}

/** An object under the prefix named like a backup object but not one (`pack-notes.txt`). */
export function isStray(prefix: string, key: string): boolean {
  const name = key.slice(prefix.length);
  return !name.includes("/") && NAMES.some(({ kind }) => name.startsWith(`${kind}-`)) &&
    parseKey(prefix, key, 0) === undefined;
}
