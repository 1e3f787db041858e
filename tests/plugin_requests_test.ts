/**
 * Requests as lightningd v26.06.6 really sends them, through the real plugin process:
 * forwarded calls in their callers' bytes (blank lines, CRLF, tabs), params a method does not
 * take, options from `init` and `setconfig`, hooks answered while a call is held, and
 * `db_write`s the plugin must refuse because it could not store them exactly.
 */
import { DEFAULT_COMPACTION_OPTIONS } from "./support/plugin_session.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { type Chunking, DATABASE_NAME, testPlugin } from "./support/fake_lightningd.ts";
import { dumpDatabase } from "./support/dump.ts";
import { bumpStatement } from "./support/statements.ts";
import {
  loadRpcOptionsDriver,
  RECORDED_INIT_OPTIONS,
  RECORDED_OPTIONS_IN_FORCE,
} from "./support/fixtures.ts";
import {
  assertStillServes,
  broken,
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
const RECORDED_OPTIONS = loadRpcOptionsDriver().options;

// --- forwarded calls in their callers' bytes ----------------------------------------------------

const FORWARDED: [string, string][] = [
  [
    "lightning-cli's spacing",
    `{ "jsonrpc" : "2.0", "method" : "backup-status", "id" : "ID", "params" :[ ] }\n\n`,
  ],
  [
    "a blank line inside",
    `{\n  "jsonrpc": "2.0",\n\n  "id": "ID",\n  "method": "backup-status",\n  "params": {}\n}\n\n`,
  ],
  [
    "CRLF, tabs and blank lines",
    `{\r\n\t"jsonrpc":\t"2.0",\r\n\r\n\t"id":\t"ID",\r\n\r\n\r\n\t"method": "backup-status"\r\n}\n\n`,
  ],
];

for (
  const chunking of [
    { kind: "whole" },
    { kind: "bytes", size: 1 },
    { kind: "random", seed: 3, max: 7 },
  ] as Chunking[]
) {
  Deno.test(`requests: forwarded backup-status calls with blank lines are answered (${chunking.kind})`, async () => {
    await withPlugin(
      async ({ lightningd }) => {
        assertEquals(await lightningd.transaction(SCHEMA), "committed");
        for (const [what, text] of FORWARDED) {
          const id = `cli:backup-status#${what}/cln:backup-status#1`;
          const bytes = encoder.encode(text.replace("ID", id));
          const answer = await within(10_000, what, lightningd.forward(id, bytes));
          assertEquals(status(answer).version, 1, what);
        }
        await assertStillServes(lightningd);
        assertEquals(unusual(lightningd), []);
        await stop(lightningd);
      },
      undefined,
      { chunking },
    );
  });
}

// --- a caller's members given twice ---------------------------------------------------------------

/**
 * lightningd reads a caller's request by the first member of each name, as written (json_get_member
 * in lightningd/jsonrpc.c, no check for one given twice), and forwards the caller's bytes with
 * only that first id replaced; JSON.parse keeps the last. A caller allowed only backup-status
 * must not get the plugin to run another method, least of all a hook.
 */
const TWICE: [string, string][] = [
  ["shutdown", `"params": [], "method": "shutdown"`],
  [
    "a db_write",
    `"params": [], "method": "db_write", "params": {"data_version": 2, "writes": ` +
    JSON.stringify([note("injected"), bumpStatement(1)]) + `}`,
  ],
  [
    "a db_write under an escaped name",
    `"params": [], "m\\u0065thod": "db_write", "params": {"data_version": 2, "writes": ` +
    JSON.stringify([note("injected"), bumpStatement(1)]) + `}`,
  ],
];

for (const [what, rest] of TWICE) {
  Deno.test(`requests: backup-status naming ${what} again is refused, nothing run`, async () => {
    await withPlugin(async ({ lightningd, dir, url }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      const id = "cli:backup-status#1/cln:backup-status#2";
      const text = `{"jsonrpc": "2.0", "method": "backup-status", "id": "${id}", ${rest}}\n\n`;
      const answer = await within(5_000, what, lightningd.forward(id, encoder.encode(text)));
      assertEquals(answer.error, {
        code: -32600,
        message: 'Invalid request: member "method" given twice',
      });
      await assertStillServes(lightningd);
      assertEquals(status(await lightningd.request("backup-status", [])).version, 2);
      await stop(lightningd);
      assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
    });
  });
}

Deno.test("requests: a call lightningd let through but that is not JSON is answered, nothing run", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    // lightningd's parser takes `tru` as a value; JSON.parse does not.
    const id = "cli:backup-status#1/cln:backup-status#2";
    const text = `{"jsonrpc": "2.0", "method": "backup-status", "id": "${id}", "params": [], ` +
      `"x": tru}\n\n`;
    const answer = await within(5_000, "tru", lightningd.forward(id, encoder.encode(text)));
    const { code, message } = answer.error as { code: number; message: string };
    assertEquals(code, -32600);
    assert(message.startsWith("Invalid request: not JSON ("), message);
    await assertStillServes(lightningd);
    await stop(lightningd);
  });
});

// --- params ---------------------------------------------------------------------------------------

Deno.test("requests: backup-status refuses params it does not take, as a list or an object", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    for (const params of [undefined, null, [], {}]) {
      const answer = await lightningd.request("backup-status", params);
      assertEquals(status(answer).ok, true, JSON.stringify(params));
    }
    const refused: [unknown, string][] = [
      [[true], "1 parameter given"],
      [[1, 2], "2 parameters given"],
      [{ verbose: true }, 'no parameter "verbose"'],
      [{ via: "raw socket", x: 1 }, 'no parameter "via", "x"'],
      ["verbose", "params must be a list or an object"],
    ];
    for (const [params, what] of refused) {
      const answer = await lightningd.request("backup-status", params, "cli:x#1/cln:y#2");
      assertEquals(answer, {
        jsonrpc: "2.0",
        id: "cli:x#1/cln:y#2",
        error: {
          code: -32602,
          message: `Cannot run backup-status: ${what}; it takes no parameters`,
          data: { params },
        },
      });
    }
    await assertStillServes(lightningd);
    await stop(lightningd);
  });
});

Deno.test("requests: a method's RpcError reaches the caller with code, message and data", async () => {
  await withPlugin(
    async ({ lightningd }) => {
      for (const params of [[], { reason: "disk" }]) {
        const answer = await lightningd.request("backup-fail", params, "cli:backup-fail#1/cln:f#2");
        assertEquals(answer.error, {
          code: 1400,
          message: "recorder: backup-fail always fails",
          data: { reason: "test" },
        });
      }
      await stop(lightningd);
    },
    undefined,
    testPlugin({ standIns: true }),
  );
});

// --- options ----------------------------------------------------------------------------------------

Deno.test("requests: the plugin's own option shows in backup-status; setconfig refuses it", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    assertEquals(
      status(await lightningd.request("backup-status", [])).options,
      { "backup-destination": null, ...DEFAULT_COMPACTION_OPTIONS },
    );
    await lightningd.init({ "backup-destination": "file:///old/backup.dbak" });
    assertEquals(
      status(await lightningd.request("backup-status", [])).options,
      { "backup-destination": "file:///old/backup.dbak", ...DEFAULT_COMPACTION_OPTIONS },
    );
    const refused = await lightningd.request("setconfig", {
      config: "backup-destination",
      val: "x",
    });
    assertEquals(refused.error, {
      code: -32602,
      message: "Cannot set option 'backup-destination' while the node runs: set it in " +
        "lightningd's config and restart",
    });
    const unknown = await lightningd.request("setconfig", { config: "nope", val: "1" });
    assertEquals(unknown.error, {
      code: -32602,
      message: "Cannot set option 'nope': this plugin has no such option",
    });
    await assertStillServes(lightningd);
    await stop(lightningd);
  });
});

Deno.test("requests: recorded init options and setconfig; a bad value is one error", async () => {
  await withPlugin(
    async ({ lightningd }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      await lightningd.init({ ...RECORDED_INIT_OPTIONS });
      const answer = await lightningd.setconfig("rec-dyn", "20");
      assertEquals(answer, { result: {} });
      // lightning-cli shows the plugin's message with lightningd's escapes undone once only:
      // a double quote in it would show as \".
      const bad = await lightningd.setconfig("rec-dyn", "twenty");
      assertEquals(bad, {
        error: {
          code: -32602,
          message: "Cannot set option 'rec-dyn': 'twenty' is not a whole number; give a whole " +
            "number such as 42",
        },
      });
      assertEquals(
        status(await lightningd.request("backup-status", [])).options,
        RECORDED_OPTIONS_IN_FORCE,
      );
      assertEquals(lightningd.logs.filter((l) => l.message.startsWith("option")), [
        { level: "info", message: 'option "rec-dyn" is now 20' },
      ]);
      assertEquals(unusual(lightningd), [
        'Cannot set option "rec-dyn": "twenty" is not a whole number; give a whole number such as 42',
      ]);
      await stop(lightningd);
    },
    undefined,
    testPlugin({ options: RECORDED_OPTIONS }),
  );
});

// --- hooks while a call is pending ----------------------------------------------------------------

Deno.test("requests: hooks sent while backup-status is held are answered first", async () => {
  await withPlugin(
    async ({ lightningd, dir, url }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      // Held until a db_write brings the backup to version 6: five hooks while it is pending.
      const answer = await within(
        20_000,
        "held backup-status",
        lightningd.whilePending("backup-status", [], 5, (i) => [note(`during ${i}`)]),
      );
      assertEquals([status(answer).version, status(answer).writes_since_start], [6, 6]);
      await stop(lightningd);
      assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
    },
    undefined,
    testPlugin({ hold: { method: "backup-status", version: 6 } }),
  );
});

Deno.test("requests: calls are answered in any order; a held one does not hold the next", async () => {
  await withPlugin(
    async ({ lightningd }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      let held: Record<string, unknown> | undefined;
      const pending = lightningd.request("backup-compact", []).then((a) => held = a);
      const status1 = await within(
        10_000,
        "backup-status",
        lightningd.request("backup-status", []),
      );
      assertEquals(held, undefined);
      assertEquals(status(status1).version, 1);
      assertEquals(await lightningd.transaction([note("release")]), "committed");
      assertEquals((await within(10_000, "backup-compact", pending)).result, {});
      const order = lightningd.received.filter((m) => m.method === undefined).map((m) =>
        String(m.id).split("#")[0]
      );
      assertEquals(order.slice(-4), [
        "cln:db_write",
        "cln:backup-status",
        "cln:db_write",
        "cln:backup-compact",
      ]);
      await stop(lightningd);
    },
    undefined,
    testPlugin({ hold: { method: "backup-compact", version: 2 }, standIns: true }),
  );
});

Deno.test("requests: shutdown while a call is held exits 0 at once, the call unanswered", async () => {
  await withPlugin(
    async ({ lightningd }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      await lightningd.init();
      const pending = lightningd.request("backup-status", [], "held");
      pending.catch(() => {});
      assertEquals(await lightningd.transaction([note("meanwhile")]), "committed");
      // lightningd sends shutdown only to a plugin past init; before it, the input just ends.
      assertEquals(lightningd.delivers("shutdown"), true, "shutdown would not be sent");
      await stop(lightningd);
      assertEquals(lightningd.received.filter((m) => m.id === "held"), []);
    },
    undefined,
    testPlugin({ hold: { method: "backup-status", version: 1000 } }),
  );
});

// --- what the plugin acknowledges, it stores exactly ---------------------------------------------

Deno.test("requests: a db_write without an id is logged, not answered", async () => {
  await withPlugin(async ({ lightningd }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    const before = lightningd.received.length;
    await lightningd.write(encoder.encode(
      JSON.stringify({
        jsonrpc: "2.0",
        method: "db_write",
        params: { data_version: 2, writes: [note("no id"), bumpStatement(1)] },
      }) + "\n\n",
    ));
    await assertStillServes(lightningd);
    assertEquals(unusual(lightningd), [
      "ignoring a db_write without an id: it cannot be answered",
    ]);
    assertEquals(lightningd.received.length, before + 3);
    await stop(lightningd);
  });
});

const UNSTORABLE: [string, string, string][] = [
  ["a NUL character", note("a\u0000b"), "statement 1 of 2 holds a NUL character"],
  ["a lone high surrogate", note("a\ud800b"), "statement 1 of 2 holds a lone UTF-16 surrogate"],
  ["a lone low surrogate", note("\udc00"), "statement 1 of 2 holds a lone UTF-16 surrogate"],
];

for (const [what, statement, why] of UNSTORABLE) {
  Deno.test(`requests: a db_write holding ${what} is refused, never stored`, async () => {
    await withPlugin(async ({ lightningd, dir, url }) => {
      assertEquals(await lightningd.transaction(SCHEMA), "committed");
      // JSON.stringify writes the NUL and lone surrogates as \u escapes, as lightningd would.
      const answer = await lightningd.request("db_write", {
        data_version: 2,
        writes: [statement, bumpStatement(1)],
      });
      const message = `Refusing change 2: ${why}, which the backup cannot store exactly; ` +
        "stop the node and report this";
      assertEquals(answer.result, { result: "abort", message });
      assertEquals(broken(lightningd), [message]);
      await assertStillServes(lightningd);
      await stop(lightningd);
      assertEquals(restoredDump(dir, url), dumpDatabase(`${dir}/${DATABASE_NAME}`));
    });
  });
}

Deno.test("requests: a db_write holding bytes that are not UTF-8 is refused, never stored", async () => {
  await withPlugin(async ({ lightningd, dir, url }) => {
    assertEquals(await lightningd.transaction(SCHEMA), "committed");
    for (const bad of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0x80]]) {
      const text = JSON.stringify({
        jsonrpc: "2.0",
        id: "cln:db_write#9",
        method: "db_write",
        params: { data_version: 2, writes: [note("BAD"), bumpStatement(1)] },
      }) + "\n\n";
      const [head, tail] = text.split("BAD").map((part) => encoder.encode(part));
      const bytes = new Uint8Array([...head, ...bad, ...tail]);
      const answer = await within(5_000, "db_write", lightningd.forward("cln:db_write#9", bytes));
      assertEquals(answer.result, {
        result: "abort",
        message: "Refusing a malformed db_write (not valid UTF-8): it cannot be stored " +
          "exactly; stop the node and report this",
      });
    }
    assertEquals(broken(lightningd).length, 4);
    await assertStillServes(lightningd);
    await stop(lightningd);
    const restored = restoredDump(dir, url);
    assertEquals(restored, dumpDatabase(`${dir}/${DATABASE_NAME}`));
    assert(!restored.includes("\ufffd"));
  });
});
