/**
 * A file backup removed while the plugin runs (an operator's `rm -rf`, a cleanup job): the
 * open live log takes every write and keeps none, so the next change must not be answered
 * `continue`. Alone, or under `mirror_failure: "stop"`, it stops the node; under "degrade" the
 * removed mirror is dropped with its BROKEN line and the node goes on with the other.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import type { FakeLightningd } from "./support/fake_lightningd.ts";
import {
  broken,
  DATABASE_NAME,
  note,
  restoredDump,
  SCHEMA,
  status,
  within,
  withPlugin,
} from "./support/plugin_session.ts";
import { dumpDatabase } from "./support/dump.ts";
import { createFileBackup } from "../lib/backends/file/create.ts";
import { writeLockFile } from "../lib/backup/lock_file.ts";
import { logName } from "../lib/format/layout.ts";
import type { MirrorFailure } from "../lib/backends/multi/backend.ts";

/** The plugin's line for a file backup at `path` removed under it (its live log: log 1). */
function removed(path: string): RegExp {
  const live = `${path}/${logName(1)}`.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`"${live}" was removed while it was being written to: the backup is gone`);
}

async function commit(lightningd: FakeLightningd, statements: string[]): Promise<void> {
  const outcome = await within(10_000, "db_write", lightningd.transaction(statements));
  assertEquals(outcome, "committed", lightningd.aborted);
}

async function backupStatus(lightningd: FakeLightningd): Promise<Record<string, unknown>> {
  return status(await within(10_000, "backup-status", lightningd.request("backup-status", {})));
}

Deno.test("a file backup removed while the plugin runs stops the node at its next change", async () => {
  await withPlugin(async ({ dir, lightningd }) => {
    await commit(lightningd, SCHEMA);
    await commit(lightningd, [note("before")]);
    const version = lightningd.dataVersion();
    Deno.removeSync(`${dir}/backup`, { recursive: true });
    const outcome = await within(10_000, "db_write", lightningd.transaction([note("after")]));
    assertEquals(outcome, "aborted");
    assertMatch(lightningd.aborted!, /"Cannot store change 3: Cannot write backup: .* was removed/);
    assertEquals(lightningd.dataVersion(), version, "the change was not committed");
    assertMatch(broken(lightningd).join("\n"), removed(`${dir}/backup`));
    const answer = await backupStatus(lightningd);
    assertEquals(answer.ok, false);
    assertMatch(String(answer.error), removed(`${dir}/backup`));
  });
});

/** A file backup and a file mirror, `mirror_failure` as given. */
function twoFiles(onFailure: MirrorFailure): (dir: string) => void {
  return (dir) => {
    createFileBackup(`${dir}/backup`);
    createFileBackup(`${dir}/mirror`);
    writeLockFile(dir, {
      backend_url: `file://${dir}/backup`,
      mirror_urls: [`file://${dir}/mirror`],
      mirror_failure: onFailure,
    });
  };
}

Deno.test("a file mirror removed while the plugin runs stops the node under mirror_failure stop", async () => {
  await withPlugin(async ({ dir, lightningd }) => {
    await commit(lightningd, SCHEMA);
    const version = lightningd.dataVersion();
    Deno.removeSync(`${dir}/mirror`, { recursive: true });
    const outcome = await within(10_000, "db_write", lightningd.transaction([note("after")]));
    assertEquals(outcome, "aborted");
    assertMatch(
      lightningd.aborted!,
      /"Cannot store change 2: file:.*\/mirror: Cannot write backup: .* was removed/,
    );
    assertMatch(broken(lightningd).join("\n"), removed(`${dir}/mirror`));
    assertEquals(lightningd.dataVersion(), version);
    const destinations = (await backupStatus(lightningd)).destinations as Record<string, unknown>[];
    assertEquals(destinations.map((d) => d.state), ["ok", "failed"]);
  }, twoFiles("stop"));
});

Deno.test("a file mirror removed while the plugin runs is dropped under mirror_failure degrade; the node goes on", async () => {
  await withPlugin(async ({ dir, url, lightningd }) => {
    await commit(lightningd, SCHEMA);
    Deno.removeSync(`${dir}/mirror`, { recursive: true });
    await commit(lightningd, [note("after")]);
    await commit(lightningd, [note("and on")]);
    const lines = broken(lightningd);
    assertEquals(lines.length, 1, lines.join("\n"));
    assertMatch(
      lines[0],
      new RegExp(`^BROKEN: destination file://${dir}/mirror failed on change 2`),
    );
    assertMatch(lines[0], removed(`${dir}/mirror`));
    const answer = await backupStatus(lightningd);
    const destinations = answer.destinations as Record<string, unknown>[];
    assertEquals(destinations.map((d) => d.state), ["ok", "broken"]);
    assertMatch(String(destinations[1].error), removed(`${dir}/mirror`));
    assertMatch(String(answer.alarm), /^BROKEN: 1 of 2 destinations failed/);
    // The backup that went on holds every change the node committed.
    assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
  }, twoFiles("degrade"));
});
