/**
 * Row 3, backup size for the recorded activity run: the three recorded runs replayed through
 * the real plugin (tests/support/fake_lightningd.ts, chunked as recorded), and the bytes the
 * activity run added to the backup per change, against what the Python plugin's v1 file
 * stores for the same changes.
 *
 * @module
 */
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { FakeLightningd, splitMessages } from "../tests/support/fake_lightningd.ts";
import { loadFixture, SCENARIOS } from "../tests/support/fixtures.ts";
import { type BenchContext, row, type Section, type SectionResult } from "./section.ts";
import { makeEncryptedBackup } from "../tests/support/encrypted.ts";
import { writeKeyFile } from "../lib/crypto/key_file.ts";

/** Bytes on disk of a backup directory (its lock file aside). */
export function backupBytes(dir: string): number {
  let bytes = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile && entry.name !== "LOCK") bytes += Deno.statSync(`${dir}/${entry.name}`).size;
  }
  return bytes;
}

const encoder = new TextEncoder();

/** The `db_write`s of a recorded stdin stream and the bytes their v1 records would take. */
function recordedChanges(raw: Uint8Array): { changes: number; v1Bytes: number } {
  let changes = 0;
  let v1Bytes = 0;
  for (const { json } of splitMessages(raw)) {
    if (json.method !== "db_write") continue;
    changes++;
    v1Bytes += 9 + encoder.encode((json.params.writes as string[]).join("\0")).length;
  }
  return { changes, v1Bytes };
}

/**
 * Replays the recorded runs through the plugin into a new backup in `dir` (encrypted when
 * `encrypted`); returns the bytes the activity run added and its changes.
 */
async function replayedActivity(
  context: BenchContext,
  dir: string,
  encrypted: boolean,
): Promise<{ added: number; recorded: { changes: number; v1Bytes: number } }> {
  const backup = `${dir}/backup`;
  Deno.mkdirSync(dir, { recursive: true });
  if (encrypted) writeKeyFile(dir, await makeEncryptedBackup(backup));
  else createFileBackup(backup);
  writeLockFile(dir, { backend_url: `file://${backup}` });
  let before = 0;
  let recorded = { changes: 0, v1Bytes: 0 };
  for (const name of SCENARIOS) {
    context.log(
      `size: replaying the recorded ${name} run through the plugin` +
        (encrypted ? " (encrypted)" : ""),
    );
    const fixture = loadFixture(name);
    if (name === "activity") {
      before = backupBytes(backup);
      recorded = recordedChanges(fixture.raw);
    }
    const node = FakeLightningd.spawn({
      lightningDir: dir,
      chunking: { kind: "sizes", sizes: fixture.chunks },
    });
    const outcome = await node.replay(fixture.raw);
    const status = await node.close();
    if (outcome !== "committed" || !status.success) {
      throw new Error(`replay of ${name} failed: ${node.aborted ?? ""} ${await node.stderr()}`);
    }
  }
  return { added: backupBytes(backup) - before, recorded };
}

export const backupSize: Section = {
  name: "size",
  async run(context: BenchContext): Promise<SectionResult> {
    const { added, recorded } = await replayedActivity(context, `${context.tmp}/size`, false);
    const sealed = await replayedActivity(context, `${context.tmp}/size-encrypted`, true);
    return {
      rows: [
        row({
          section: "backup size",
          metric: `recorded activity run (${recorded.changes} changes)`,
          value: added / recorded.changes,
          unit: "B/change",
          reference: { label: "raw statements (v1)", value: recorded.v1Bytes / recorded.changes },
          goal: "<= 0.5x",
        }),
        row({
          section: "backup size",
          metric: "same, encrypted backup",
          value: sealed.added / recorded.changes,
          unit: "B/change",
          reference: { label: "plain backup", value: added / recorded.changes },
          note: "a sealed record carries a 24-byte nonce and a 16-byte tag",
        }),
      ],
      details: {
        activity_changes: recorded.changes,
        backup_bytes_added: added,
        encrypted_backup_bytes_added: sealed.added,
        v1_bytes: recorded.v1Bytes,
      },
    };
  },
};
