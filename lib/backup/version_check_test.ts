import { checkFirstWrite } from "./version_check.ts";
import { assert, assertEquals, assertMatch } from "../../tests/support/assert.ts";

/** A hook that ends with a bump from `m` (its `data_version` is `m + 1`). */
const bump = (m: number) => ({ dataVersion: m + 1, bumpedFrom: m });
/** A PRAGMA hook: no bump, it repeats the version the database holds. */
const pragma = (n: number) => ({ dataVersion: n, bumpedFrom: undefined });

Deno.test("checkFirstWrite: in step (M == B) appends", () => {
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(15));
  assertEquals(verdict, {
    action: "append",
    message: "backup in step with the node at version 15",
  });
});

Deno.test("checkFirstWrite: an empty backup and a fresh node are in step", () => {
  assertEquals(checkFirstWrite({ version: 0, rewindVersion: undefined }, bump(0)).action, "append");
});

Deno.test("checkFirstWrite: M comes from the bump, not from data_version", () => {
  // data_version says 16 but the bump says the database holds 14: B - 1, a rewind.
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, {
    dataVersion: 16,
    bumpedFrom: 14,
  });
  assertEquals(verdict.action, "rewind");
});

Deno.test("checkFirstWrite: a PRAGMA hook repeating B is in step, never a rewind", () => {
  // The fresh-start fixture: change 1 stored, then `PRAGMA foreign_keys = OFF;` at version 1.
  const verdict = checkFirstWrite({ version: 1, rewindVersion: 0 }, pragma(1));
  assertEquals(verdict, { action: "append", message: "backup in step with the node at version 1" });
  // Also when the backup's last record is itself a PRAGMA hook at that version.
  assertEquals(checkFirstWrite({ version: 2, rewindVersion: 2 }, pragma(2)).action, "append");
});

Deno.test("checkFirstWrite: M == B - 1 with B droppable rewinds", () => {
  const verdict = checkFirstWrite({ version: 16, rewindVersion: 15 }, bump(15));
  assertEquals(verdict, {
    action: "rewind",
    message: "dropping change 16 from the backup: the node stopped before committing it",
  });
});

Deno.test("checkFirstWrite: M == B - 1 but B inside a snapshot stops (lost state)", () => {
  const verdict = checkFirstWrite({ version: 16, rewindVersion: undefined }, bump(15));
  assertEquals(verdict.action, "stop");
  if (verdict.action === "stop") {
    assertEquals(verdict.reason, "lost-state");
    assertMatch(verdict.message, /node's database is at version 15 but the backup already holds/);
  }
});

Deno.test("checkFirstWrite: M == B - 1 but dropping B does not lead to M stops", () => {
  // The last record is a PRAGMA hook repeating 16: dropping it leaves 16, not 15.
  const verdict = checkFirstWrite({ version: 16, rewindVersion: 16 }, bump(15));
  assertEquals(verdict.action, "stop");
  if (verdict.action === "stop") assertEquals(verdict.reason, "lost-state");
});

Deno.test("checkFirstWrite: M < B - 1 stops, the node lost state", () => {
  for (const m of [13, 0]) {
    const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(m));
    assertEquals(verdict.action, "stop");
    if (verdict.action !== "stop") continue;
    assertEquals(verdict.reason, "lost-state");
    assertEquals(
      verdict.message,
      `Cannot continue: the node's database is at version ${m} but the backup already holds ` +
        `version 15; the node lost state (an old database put back?): stop it and restore its ` +
        `database from the backup with "cln-backup restore <url> DIR"`,
    );
  }
  // A PRAGMA hook two behind is lost state too.
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, pragma(13));
  assertEquals(verdict.action === "stop" && verdict.reason, "lost-state");
});

Deno.test("checkFirstWrite: M > B stops, the backup is out of date", () => {
  for (const write of [bump(16), bump(400), pragma(16)]) {
    const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, write);
    assertEquals(verdict.action, "stop");
    if (verdict.action !== "stop") continue;
    assertEquals(verdict.reason, "out-of-date");
    assertMatch(
      verdict.message,
      /^Cannot continue: the backup holds version 15 but the node's database is at version \d+; the node ran without the plugin: .*"cln-backup init --lightning-dir DIR <new url>"/,
    );
  }
  // An empty backup for a node that already has a database.
  const verdict = checkFirstWrite({ version: 0, rewindVersion: undefined }, bump(7));
  assertEquals(verdict.action === "stop" && verdict.reason, "out-of-date");
});

Deno.test("checkFirstWrite: a tail after B is a torn record when the node is at B", () => {
  const tail = { path: "/b/log-1.clnb", offset: 4096, bytes: 77 };
  assertEquals(checkFirstWrite({ version: 15, rewindVersion: 14, tail }, bump(15)), {
    action: "append",
    message: "backup in step with the node at version 15",
    cutTail: true,
  });
  // A PRAGMA hook at B too.
  assertEquals(
    checkFirstWrite({ version: 15, rewindVersion: 14, tail }, pragma(15)).action,
    "append",
  );
});

Deno.test("checkFirstWrite: a tail after B is a damaged change when the node is at B+1", () => {
  const tail = { path: "/b/log-1.clnb", offset: 4096, bytes: 77 };
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14, tail }, bump(16));
  assertEquals(verdict.action, "stop");
  assertEquals(verdict.action === "stop" && verdict.reason, "damaged");
  assertEquals(
    verdict.message,
    `Cannot continue: the node's database is at version 16 but the backup's change 16 is ` +
      `damaged (77 bytes at offset 4096 of "/b/log-1.clnb" fail their checks); the backup is ` +
      `damaged: with lightningd stopped, move backup.lock aside (and backup.key, for an ` +
      `encrypted backup: then add --encrypt) and run "cln-backup init --lightning-dir DIR ` +
      `<new url>" to start a new backup from the current database`,
  );
  // Without a tail, the same node is ahead of its backup: it ran without the plugin.
  const ahead = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(16));
  assertEquals(ahead.action === "stop" && ahead.reason, "out-of-date");
});

Deno.test("checkFirstWrite: a tail after B with the node further ahead names both causes", () => {
  const tail = { path: "/b/log-1.clnb", offset: 4096, bytes: 9000 };
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14, tail }, bump(19));
  assertEquals(verdict.action === "stop" && verdict.reason, "out-of-date");
  assertEquals(
    verdict.message,
    `Cannot continue: the backup holds version 15 but the node's database is at version 19; ` +
      `the node ran without the plugin, or the 9000 bytes at offset 4096 of "/b/log-1.clnb" ` +
      `that fail their checks held changes after 15, damaged: with lightningd stopped, move ` +
      `backup.lock aside (and backup.key, for an encrypted backup: then add --encrypt) and run ` +
      `"cln-backup init --lightning-dir DIR <new url>" to start a new backup from the current ` +
      `database`,
  );
  const alone = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(19));
  assert(alone.action === "stop" && !alone.message.includes("fail their checks"));
});

/** A file backup's set-up, as the plugin knows it. */
const fileSetup = {
  dir: "/n/it's bitcoin",
  url: "file:///b/node%20a",
  path: "/b/node a",
  copies: [],
  encrypted: false,
};

Deno.test("checkFirstWrite: lost state names the whole restore to run, the database to move aside first", () => {
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(13), fileSetup);
  assertEquals(verdict.action === "stop" && verdict.reason, "lost-state");
  assertEquals(
    verdict.message,
    `Cannot continue: the node's database is at version 13 but the backup already holds ` +
      `version 15; the node lost state (an old database put back?): stop it and restore its ` +
      `database from the backup: move "/n/it's bitcoin/lightningd.sqlite3" (or the file a ` +
      `wallet= line of lightningd's config names) aside with any -journal or -wal beside it, ` +
      `then run "cln-backup restore 'file:///b/node%20a' '/n/it'\\''s bitcoin'"`,
  );
  // A set with copies: restore refuses a node's dir whose backup.lock names copies not given.
  const copies = ["file:///c/m", "socket:h:1"];
  const withCopies = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(13), {
    ...fileSetup,
    copies,
  });
  assertMatch(
    withCopies.message,
    /"cln-backup restore 'file:\/\/\/b\/node%20a' '\/n\/it'\\''s bitcoin' --also 'file:\/\/\/c\/m' --also 'socket:h:1'"$/,
  );
});

Deno.test("checkFirstWrite: out of date names the whole init, and what init would refuse moved aside", () => {
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(19), fileSetup);
  assertEquals(verdict.action === "stop" && verdict.reason, "out-of-date");
  assertEquals(
    verdict.message,
    `Cannot continue: the backup holds version 15 but the node's database is at version 19; ` +
      `the node ran without the plugin: with lightningd stopped, move the backup "/b/node a" ` +
      `and "/n/it's bitcoin/backup.lock" aside, then run ` +
      `"cln-backup init --lightning-dir '/n/it'\\''s bitcoin' 'file:///b/node%20a'" to start ` +
      `a new backup from the current database`,
  );
  // Encrypted: the key file moved aside too, and --encrypt (init refuses a plain backup beside it).
  const encrypted = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(19), {
    ...fileSetup,
    encrypted: true,
  });
  assertMatch(
    encrypted.message,
    /move the backup "\/b\/node a", "\/n\/it's bitcoin\/backup.lock" and "\/n\/it's bitcoin\/backup.key" aside, then run "cln-backup init --lightning-dir '\/n\/it'\\''s bitcoin' 'file:\/\/\/b\/node%20a' --encrypt"/,
  );
  // A remote backup cannot be moved aside with mv: a new URL, the old backup kept.
  const remote = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(19), {
    ...fileSetup,
    url: "s3://bk/node?region=x&path-style=1",
    path: undefined,
  });
  assertMatch(
    remote.message,
    /move "\/n\/it's bitcoin\/backup.lock" aside, then run "cln-backup init --lightning-dir '\/n\/it'\\''s bitcoin' <new url>" \(init refuses the backup at s3:\/\/bk\/node\?region=x&path-style=1, which is kept\)/,
  );
  // The old copies are kept, never said to lag (a damaged primary's may be intact): added anew.
  const copies = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(19), {
    ...fileSetup,
    copies: ["file:///c/m"],
  });
  assertMatch(
    copies.message,
    /; the new backup.lock names none of the old one's copies \(file:\/\/\/c\/m\), which are kept: add each anew with "cln-backup mirror <new url> --lightning-dir '\/n\/it'\\''s bitcoin'" \(--async for an async one\)$/,
  );
});

Deno.test("checkFirstWrite: a damaged backup names the whole init", () => {
  const tail = { path: "/b/node a/log-1.clnb", offset: 4096, bytes: 77 };
  const verdict = checkFirstWrite({ version: 15, rewindVersion: 14, tail }, bump(16), fileSetup);
  assertEquals(verdict.action === "stop" && verdict.reason, "damaged");
  assertMatch(
    verdict.message,
    /the backup is damaged: with lightningd stopped, move the backup "\/b\/node a" and "\/n\/it's bitcoin\/backup.lock" aside, then run "cln-backup init --lightning-dir '\/n\/it'\\''s bitcoin' 'file:\/\/\/b\/node%20a'" to start a new backup from the current database$/,
  );
});

Deno.test("checkFirstWrite: without the set-up (a server's refusal), the whole commands with placeholders", () => {
  const tail = { path: "/b/log-1.clnb", offset: 4096, bytes: 77 };
  const damaged = checkFirstWrite({ version: 15, rewindVersion: 14, tail }, bump(16));
  assertMatch(damaged.message, /"cln-backup init --lightning-dir DIR <new url>"/);
  const lost = checkFirstWrite({ version: 15, rewindVersion: 14 }, bump(13));
  assertMatch(lost.message, /"cln-backup restore <url> DIR"/);
});
