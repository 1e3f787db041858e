/**
 * The plugin's side of lightningd's protocol, through the real plugin process: manifest,
 * init, backup-status, shutdown and end of input; malformed input answered or ignored, never
 * a crash; and a plugin without a usable backup stopping the node without committing.
 */
import { DEFAULT_COMPACTION_OPTIONS } from "./support/plugin_session.ts";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { DATABASE_NAME } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { LOCK_FILE, writeLockFile } from "../lib/backup/lock_file.ts";
import { openReader } from "../lib/backends/open.ts";
import { logName } from "../lib/format/layout.ts";
import { restoreBackup } from "../lib/backup/restore.ts";
import { bumpStatement } from "./support/statements.ts";
import {
  assertStillServes,
  broken,
  errorAnswers,
  note,
  restoredDump,
  SCHEMA,
  status,
  stop,
  unusual,
  within,
  withPlugin,
} from "./support/plugin_session.ts";

const encoder = new TextEncoder();
const bump = bumpStatement;

// --- getmanifest, init, backup-status, shutdown, end of input ----------------------------------

Deno.test("protocol: getmanifest declares the hook, the subscription, the method and the option", async () => {
  await withPlugin(async ({ lightningd }) => {
    const answer = lightningd.received.find((m) => m.id !== undefined && m.method === undefined)!;
    assertEquals(answer.jsonrpc, "2.0");
    const manifest = answer.result as Record<string, unknown>;
    assertEquals(manifest.hooks, [{ name: "db_write" }]);
    assertEquals(manifest.subscriptions, ["shutdown"]);
    assertEquals(manifest.dynamic, false);
    const methods = manifest.rpcmethods as Record<string, unknown>[];
    assertEquals(methods.map((m) => m.name), ["backup-status", "backup-compact"]);
    assertEquals(typeof methods[0].usage, "string");
    assertEquals(typeof methods[0].description, "string");
    const options = manifest.options as Record<string, unknown>[];
    assertEquals(options.map((o) => [o.name, o.type, o.dynamic ?? false]), [
      ["backup-destination", "string", false],
      ["backup-compact-auto", "bool", true],
      ["backup-compact-ratio", "int", true],
      ["backup-compact-min-mib", "int", true],
      ["backup-retain-snapshots", "int", true],
    ]);
    assertMatch(String(options[0].description), /UNUSED/);
    await stop(lightningd);
  });
});

Deno.test("protocol: init with backup-destination logs a deprecation warning", async () => {
  await withPlugin(async ({ lightningd, restart, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    const answer = await lightningd.init({ "backup-destination": "file:///old/backup.dbak" });
    assertEquals(answer.result, {});
    assertEquals(unusual(lightningd).length, 1);
    assertMatch(
      unusual(lightningd)[0],
      /^The `backup-destination` option is deprecated and unused: the destination is the backend_url in backup\.lock/,
    );
    assertEquals(lightningd.logs.at(-1), {
      level: "info",
      message: `backing up to ${url} at version 1`,
    });
    await stop(lightningd);
    // Without the option: no warning.
    const again = await restart();
    assertEquals((await again.init()).result, {});
    assertEquals(unusual(again), []);
    await stop(again);
  });
});

Deno.test("protocol: init with int options as written in lightningd's config (010, 0x20) reads them as lightningd does", async () => {
  await withPlugin(async ({ lightningd, dir }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // lightningd checks an int option with strtol(base 0) and puts the config line's text in
    // init as it is (json_add_plugin_val): `backup-compact-ratio=010` makes init no JSON.
    const id = "cln:init#47";
    const init = `{"jsonrpc":"2.0","id":"${id}","method":"init","params":{"options":` +
      `{"backup-compact-auto":true,"backup-compact-ratio":010,"backup-compact-min-mib":0x20,` +
      `"backup-retain-snapshots":+2},"configuration":{"lightning-dir":"${dir}",` +
      `"rpc-file":"lightning-rpc","startup":true,"network":"regtest"}}}\n\n`;
    const answer = await within(
      5_000,
      "init answered",
      lightningd.forward(id, encoder.encode(init)),
    );
    assertEquals(answer.result, {});
    assertEquals(status(await lightningd.request("backup-status", [])).options, {
      ...DEFAULT_COMPACTION_OPTIONS,
      "backup-destination": null,
      "backup-compact-ratio": 8,
      "backup-compact-min-mib": 32,
      "backup-retain-snapshots": 2,
    });
    assertEquals(unusual(lightningd), [
      "init's options hold numbers that are not JSON (010, 0x20, +2): read as lightningd reads " +
      "them (8, 32, 2); write them in plain decimal in lightningd's config",
    ]);
    await stop(lightningd);
  });
});

Deno.test("protocol: backup-status reports the backup and the hook's latency", async () => {
  await withPlugin(async ({ lightningd, restart, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    await lightningd.init();
    assertEquals(await lightningd.transaction([note("a")]), "committed");
    assertEquals(await lightningd.transaction([note("b")]), "committed");
    const report = status(await lightningd.request("backup-status", {}));
    // The segments' bytes up to the live log's last record, not the zeros written after it.
    const bytes = openReader(url).describe().bytes;
    assert(Deno.statSync(`${dir}/backup/${logName(1)}`).size > bytes, "zeros ahead of the records");
    const { last_hook_ms: last, p99_hook_ms: p99, ...rest } = report;
    assertEquals(rest, {
      backend_url: url,
      ok: true,
      error: null,
      version: 3,
      previous_version: 2,
      records: 3,
      backup_bytes: bytes,
      encrypted: false,
      connection: null,
      destinations: null,
      alarm: null,
      async_destinations: null,
      writes_since_start: 3,
      options: { "backup-destination": null, ...DEFAULT_COMPACTION_OPTIONS },
      compaction: {
        running: null,
        last: null,
        next_due_at_bytes: 64 * 1024 * 1024,
        sealed_log_bytes: 0,
      },
    });
    assert(typeof last === "number" && last >= 0, `last_hook_ms ${last}`);
    assert(typeof p99 === "number" && p99 >= last, `p99_hook_ms ${p99}`);
    await stop(lightningd);
    // A new process counts from its own start.
    const again = await restart();
    assertEquals(status(await again.request("backup-status", {})), {
      ...rest,
      writes_since_start: 0,
      last_hook_ms: null,
      p99_hook_ms: null,
    });
    await stop(again);
  });
});

Deno.test("protocol: the plugin exits 0 promptly on shutdown, everything durable", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    await lightningd.init();
    assertEquals(await lightningd.transaction([note("last")]), "committed");
    const started = performance.now();
    await lightningd.notify("shutdown");
    // stderr closes when the process exits; stdin is still open, so this is not EOF.
    await within(5_000, "exit on shutdown", lightningd.stderr());
    const elapsed = performance.now() - started;
    const exit = await lightningd.close();
    assertEquals(exit.code, 0);
    assert(elapsed < 5_000, `took ${elapsed} ms`);
    assertEquals(lightningd.garbage, []);
    assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
  });
});

Deno.test("protocol: the plugin exits 0 promptly on end of input, everything durable", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    assertEquals(await lightningd.transaction([note("last")]), "committed");
    const exit = await within(5_000, "exit on EOF", lightningd.close());
    assertEquals(exit.code, 0);
    assertEquals(lightningd.garbage, []);
    assertEquals(lightningd.logs.filter((l) => l.level !== "info"), []);
    assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
  });
});

Deno.test("protocol: end of input inside a message is logged, exit 0", async () => {
  await withPlugin(async ({ lightningd }) => {
    const partial = encoder.encode('{"jsonrpc":"2.0","id":"cln:db_write#5","met');
    await lightningd.write(partial);
    const exit = await within(5_000, "exit on EOF", lightningd.close());
    assertEquals(exit.code, 0);
    assertEquals(unusual(lightningd), [`input ended inside a message (${partial.length} bytes)`]);
  });
});

// --- malformed input -----------------------------------------------------------------------------

Deno.test("protocol: garbage between messages is logged once per run and skipped", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    await lightningd.write(new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x7d, 0x22, 0x0a, 0x0a]));
    await lightningd.write(encoder.encode('42\n\nnull\n\n[1,2]\n\n{"a" 1}\n\n'));
    await assertStillServes(lightningd);
    const lines = unusual(lightningd);
    assertEquals(lines.length, 5);
    assertEquals(lines.slice(0, 4), [
      "ignoring 6 bytes between messages: not a JSON-RPC message",
      "ignoring 2 bytes between messages: not a JSON-RPC message",
      "ignoring 4 bytes between messages: not a JSON-RPC message",
      "ignoring a malformed message of 5 bytes: not a JSON object",
    ]);
    assertMatch(lines[4], /^ignoring a malformed message of 7 bytes: not JSON \(/);
    assertEquals(errorAnswers(lightningd), []);
    await stop(lightningd);
  });
});

Deno.test("protocol: invalid JSON whose brackets close is refused by its id, nothing stored", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    await lightningd.write(
      encoder.encode(
        `{"jsonrpc":"2.0","id":"cln:db_write#9","method":"db_write","params":{"data_version":2,` +
          `"writes":["${note("truncated")}",]}}\n\n`,
      ),
    );
    await assertStillServes(lightningd);
    assertEquals(unusual(lightningd).length, 1);
    assertMatch(unusual(lightningd)[0], /^ignoring a malformed message of \d+ bytes: not JSON/);
    // lightningd waits for every db_write it sends: an abort stops it with the reason.
    const answer = lightningd.received.find((m) => m.id === "cln:db_write#9");
    const message = (answer?.result as { message?: string } | undefined)?.message ?? "";
    assertEquals(answer?.result, { result: "abort", message });
    assertMatch(message, /^Refusing a malformed db_write \(not JSON \(/);
    assertEquals(broken(lightningd), [message]);
    assertEquals(errorAnswers(lightningd), []);
    await stop(lightningd);
    assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
  });
});

Deno.test("protocol: a message that never closes holds what follows until input ends", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // What follows a blank line may be the caller's params, so it is never taken as a new
    // message: a complete db_write after an unclosed one is part of it, never stored.
    const open = encoder.encode('{"jsonrpc":"2.0","id":"cln:db_write#9","params":["x",\n\n');
    const inside = encoder.encode(
      JSON.stringify({
        jsonrpc: "2.0",
        id: "cln:db_write#10",
        method: "db_write",
        params: { data_version: 2, writes: [note("injected"), bump(1)] },
      }) + "\n\n",
    );
    await lightningd.write(open);
    await lightningd.write(inside);
    const exit = await within(5_000, "exit on EOF", lightningd.close());
    assertEquals(exit.code, 0);
    assertEquals(unusual(lightningd), [
      `input ended inside a message (${open.length + inside.length} bytes)`,
    ]);
    assertEquals(lightningd.received.filter((m) => m.id === "cln:db_write#10"), []);
    assert(!restoredDump(dir, url).includes("injected"));
  });
});

Deno.test("protocol: a message without jsonrpc is refused by its id: a db_write aborts", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    const params = { data_version: 2, writes: [note("no jsonrpc"), bump(1)] };
    await lightningd.write(
      encoder.encode(
        JSON.stringify({ id: "cln:db_write#77", method: "db_write", params }) + "\n\n",
      ),
    );
    await lightningd.write(encoder.encode('{"id":5,"method":"backup-status"}\n\n'));
    await assertStillServes(lightningd);
    const refusal = 'Refusing a malformed db_write (no "jsonrpc": "2.0"): it cannot be ' +
      "stored exactly; stop the node and report this";
    assertEquals(lightningd.received.find((m) => m.id === "cln:db_write#77"), {
      jsonrpc: "2.0",
      id: "cln:db_write#77",
      result: { result: "abort", message: refusal },
    });
    assertEquals(broken(lightningd), [refusal]);
    assertEquals(errorAnswers(lightningd), [
      {
        jsonrpc: "2.0",
        id: 5,
        error: { code: -32600, message: 'Invalid request: no "jsonrpc": "2.0"' },
      },
    ]);
    assertEquals(unusual(lightningd).length, 2);
    await stop(lightningd);
    // The refused db_write was not stored: the backup ends with the one that followed.
    const restored = restoredDump(dir, url);
    assertEquals(restored, dumpDatabase(`${dir}/${DATABASE_NAME}`));
    assert(!restored.includes("no jsonrpc"));
  });
});

Deno.test("protocol: a db_write with malformed params is refused, not a crash", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    for (
      const params of [
        { data_version: "2", writes: [] },
        { data_version: 2, writes: "INSERT" },
        { data_version: 2, writes: [1, 2] },
        { data_version: -1, writes: [] },
        null,
      ]
    ) {
      const answer = await within(5_000, "db_write", lightningd.request("db_write", params));
      assertEquals(answer.result, { result: "abort", message: "malformed db_write" });
    }
    assertEquals(broken(lightningd).length, 5);
    assertEquals(
      broken(lightningd)[0],
      "refusing a db_write whose params are not {data_version, writes}",
    );
    await assertStillServes(lightningd);
    await stop(lightningd);
  });
});

Deno.test("protocol: a db_write whose data_version does not follow its bump stops the node", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // The database is at 1; the bump goes 1 -> 2 but the hook claims 5.
    assertEquals(await lightningd.dbWrite(5, [note("x"), bump(1)]), "aborted");
    assertMatch(
      broken(lightningd).at(-1)!,
      /^Cannot continue: a db_write reports data_version 5 but its bump goes from 1 to 2/,
    );
    assertEquals(lightningd.dataVersion(), 1);
    await stop(lightningd);
  });
});

Deno.test("protocol: a 40 MB db_write is answered continue and stored", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    const blob = new Uint8Array(20 * 1024 * 1024 + 3);
    for (let at = 0; at < blob.length; at += 65536) {
      crypto.getRandomValues(blob.subarray(at, Math.min(blob.length, at + 65536)));
    }
    const digits = encoder.encode("0123456789abcdef");
    const hex = new Uint8Array(blob.length * 2);
    for (let i = 0; i < blob.length; i++) {
      hex[2 * i] = digits[blob[i] >> 4];
      hex[2 * i + 1] = digits[blob[i] & 15];
    }
    const statement = `INSERT INTO blobs (data) VALUES (x'${new TextDecoder().decode(hex)}')`;
    assert(statement.length > 40_000_000);
    assertEquals(
      await within(60_000, "40 MB db_write", lightningd.transaction([statement])),
      "committed",
    );
    await assertStillServes(lightningd);
    assertEquals(lightningd.logs.filter((l) => l.level !== "info"), []);
    await stop(lightningd);
    const reader = openReader(url);
    try {
      restoreBackup(reader, `${dir}/restored.sqlite3`);
    } finally {
      reader.close();
    }
    const restored = new DatabaseSync(`${dir}/restored.sqlite3`, { readOnly: true });
    try {
      const row = restored.prepare("SELECT data FROM blobs").get();
      assert(row?.data instanceof Uint8Array && row.data.length === blob.length);
      assert(row.data.every((b, i) => b === blob[i]), "the restored blob differs");
      assertEquals(restored.prepare("SELECT note FROM notes").get()?.note, "still here");
    } finally {
      restored.close();
    }
  });
});

Deno.test("protocol: an unknown method gets -32601 with its id echoed exactly", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    for (const id of ["cln:frobnicate#7", 'we"ird \\ id ⚡', 42, 0]) {
      const answer = await within(5_000, "answer", lightningd.request("frobnicate", {}, id));
      assertEquals(answer, {
        jsonrpc: "2.0",
        id,
        error: { code: -32601, message: 'Unknown method "frobnicate"' },
      });
      assertEquals(
        unusual(lightningd).at(-1),
        'answering a request for unknown method "frobnicate" with an error',
      );
      await assertStillServes(lightningd, `after ${typeof id} id`);
    }
    assertEquals(unusual(lightningd).length, 4);
    await stop(lightningd);
  });
});

Deno.test("protocol: unknown notifications are ignored without an answer", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    const before = lightningd.received.length;
    // lightningd sends none of these to a plugin that subscribed to `shutdown` only, but a
    // plugin that gets one anyway must not stop the node over it.
    const notifications = [
      { method: "invoice_creation", params: { invoice_creation: { label: "x", msat: 1000 } } },
      { method: "warning", params: { warning: { level: "warn", log: "something" } } },
      { method: "plugin_started", params: { plugin_started: { plugin_name: "pay" } } },
      { method: "custom" },
    ];
    for (const notification of notifications) {
      const json = JSON.stringify({ jsonrpc: "2.0", ...notification });
      await lightningd.write(encoder.encode(json + "\n\n"));
    }
    await assertStillServes(lightningd);
    // Only the db_write and backup-status answers came back: no answer, no log line.
    assertEquals(lightningd.received.length, before + 2);
    await stop(lightningd);
  });
});

// --- no usable backup: the node stops without committing ----------------------------------------

/** A database at version 2 the node had before the plugin refused. */
function prepareDatabase(dir: string): void {
  const db = new DatabaseSync(`${dir}/${DATABASE_NAME}`);
  db.exec(`BEGIN; ${SCHEMA.join(";")}; ${bump(0)}; COMMIT;`);
  db.exec(`BEGIN; ${note("a")}; ${bump(1)}; COMMIT;`);
  db.close();
}

const lock = (dir: string, url: string) => writeLockFile(dir, { backend_url: url });
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const UNUSABLE: [string, (dir: string) => void, (dir: string) => RegExp][] = [
  [
    "no backup.lock",
    () => {},
    (dir) =>
      new RegExp(
        `^Cannot start backup: no backup\\.lock in "${
          literally(dir)
        }": run "cln-backup init --lightning-dir '${literally(dir)}' <url>" first`,
      ),
  ],
  [
    "a backup.lock that is not JSON",
    (dir) => Deno.writeTextFileSync(`${dir}/${LOCK_FILE}`, "file:///var/backup\n"),
    () => /^Cannot start backup: ".*backup\.lock" is not JSON/,
  ],
  [
    "a backup.lock without backend_url",
    (dir) => Deno.writeTextFileSync(`${dir}/${LOCK_FILE}`, '{"url": "file:///var/backup"}'),
    () => /^Cannot start backup: ".*backup\.lock" has no "backend_url"/,
  ],
  [
    "a backend_url that points nowhere",
    (dir) => lock(dir, `file://${dir}/nowhere`),
    (dir) =>
      new RegExp(
        `^Cannot open backup: nothing at "${
          literally(dir)
        }/nowhere": mount the disk it is on, or fix the URL in backup\\.lock; "cln-backup ` +
          `init" is for a node without a backup`,
      ),
  ],
  [
    "a backend_url with an unknown scheme",
    (dir) => lock(dir, "ftp://host/backup"),
    () => /^Cannot use backup URL "ftp:\/\/host\/backup": unknown scheme "ftp"/,
  ],
  [
    "a backend_url with a relative path",
    (dir) => lock(dir, "file:backup"),
    () => /^Cannot use backup URL "file:backup": write an absolute path/,
  ],
  [
    "a backend_url naming an empty directory",
    (dir) => {
      Deno.mkdirSync(`${dir}/empty`);
      lock(dir, `file://${dir}/empty`);
    },
    // The node's database is intact: mount the disk, or a new backup of it, never a restore.
    () =>
      /^Cannot start backup: "file:.*\/empty" holds no backup segment .*: if a disk should be mounted at ".*\/empty", mount it, .*then run "cln-backup init --lightning-dir '[^']+' 'file:.*\/empty'" to start a new backup from the current database, then start lightningd$/,
  ],
  [
    "a backend_url naming a file that is not a backup",
    (dir) => {
      Deno.writeTextFileSync(`${dir}/notes.txt`, "hello");
      lock(dir, `file://${dir}/notes.txt`);
    },
    () => /^Cannot open backup: ".*notes\.txt" is not a backup/,
  ],
];

for (const [what, prepare, expected] of UNUSABLE) {
  Deno.test(`protocol: ${what} stops the node without committing`, async () => {
    await withPlugin(async ({ lightningd, dir }) => {
      const before = dumpDatabase(`${dir}/${DATABASE_NAME}`);
      assertEquals(lightningd.dataVersion(), 2);
      assertEquals(await lightningd.transaction([note("never")]), "aborted");
      const answer = lightningd.received.filter((m) => m.id !== undefined).at(-1)!;
      const result = answer.result as Record<string, unknown>;
      assert(result.result !== "continue", JSON.stringify(answer));
      assertEquals(broken(lightningd).length, 1);
      assertMatch(broken(lightningd)[0], expected(dir));
      assertEquals(result.message, broken(lightningd)[0]);
      const report = status(await lightningd.request("backup-status", {}));
      assertEquals([report.ok, report.error], [false, broken(lightningd)[0]]);
      // backup-compact names the same cause, not a generic one, in one sentence.
      const compact = await lightningd.request("backup-compact", []);
      const cause = broken(lightningd)[0].replace(/^Cannot (start|open) backup: /, "");
      assertEquals(compact.error, { code: -32000, message: `Cannot compact backup: ${cause}` });
      await stop(lightningd);
      assertEquals(dumpDatabase(`${dir}/${DATABASE_NAME}`), before);
    }, (dir) => {
      prepareDatabase(dir);
      prepare(dir);
    });
  });
}

Deno.test("protocol: a backup another plugin is writing to stops the node", async () => {
  await withPlugin(async ({ lightningd, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // A second node pointed at the same backup while the first plugin holds it.
    await withPlugin(async (second) => {
      const before = dumpDatabase(`${second.dir}/${DATABASE_NAME}`);
      assertEquals(await second.lightningd.transaction([note("never")]), "aborted");
      assertEquals(broken(second.lightningd).length, 1);
      assertMatch(broken(second.lightningd)[0], /^Cannot open backup: another process is writing/);
      await stop(second.lightningd);
      assertEquals(dumpDatabase(`${second.dir}/${DATABASE_NAME}`), before);
    }, (dir) => {
      prepareDatabase(dir);
      lock(dir, url);
    });
    await assertStillServes(lightningd);
    await stop(lightningd);
  });
});
