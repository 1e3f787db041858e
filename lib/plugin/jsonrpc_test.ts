import { parseMessage, readIntLiterals } from "./jsonrpc.ts";
import { assertEquals, assertMatch } from "../../tests/support/assert.ts";

const parse = (text: string) => parseMessage(new TextEncoder().encode(text));

Deno.test("parseMessage: a request keeps its string or number id exactly", () => {
  for (const id of ["cln:db_write#21", 'odd "id" \\ ü', 7, 0, -1.5]) {
    const text = JSON.stringify({ jsonrpc: "2.0", id, method: "db_write", params: { a: 1 } });
    assertEquals(parse(text), {
      ok: true,
      request: { jsonrpc: "2.0", id, method: "db_write", params: { a: 1 } },
    });
  }
});

Deno.test("parseMessage: a notification has no id", () => {
  const parsed = parse('{"jsonrpc":"2.0","method":"shutdown","params":{"shutdown":{}}}');
  assertEquals(parsed.ok, true);
  if (parsed.ok) assertEquals(parsed.request.id, undefined);
});

Deno.test("parseMessage: bytes that are not JSON", () => {
  for (const text of ['{"jsonrpc":"2.0","id":1,"meth', "\u00ff\u0000garbage", ""]) {
    const parsed = parse(text);
    assertEquals(parsed.ok, false);
    if (!parsed.ok) {
      assertEquals(parsed.id, undefined);
      assertMatch(parsed.error, /^not JSON \(/);
    }
  }
});

Deno.test("parseMessage: JSON that is not an object", () => {
  for (const text of ["[]", "42", "null", '"text"', "true"]) {
    assertEquals(parse(text), { ok: false, id: undefined, error: "not a JSON object" });
  }
});

Deno.test("parseMessage: no jsonrpc 2.0 keeps the id and method so it can be answered", () => {
  assertEquals(parse('{"id":"cln:x#1","method":"db_write"}'), {
    ok: false,
    id: "cln:x#1",
    method: "db_write",
    error: 'no "jsonrpc": "2.0"',
  });
  assertEquals(parse('{"jsonrpc":"1.0","id":3,"method":"db_write"}'), {
    ok: false,
    id: 3,
    method: "db_write",
    error: 'no "jsonrpc": "2.0"',
  });
  assertEquals(parse('{"method":"db_write"}'), {
    ok: false,
    id: undefined,
    method: "db_write",
    error: 'no "jsonrpc": "2.0"',
  });
});

Deno.test("parseMessage: bytes that are not UTF-8 are refused, id and method kept", () => {
  const text = '{"jsonrpc":"2.0","id":"cln:db_write#9","method":"db_write","params":"X"}';
  const at = text.indexOf("X");
  for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80]]) {
    const bytes = new TextEncoder().encode(text);
    const mutated = new Uint8Array([...bytes.subarray(0, at), ...bad, ...bytes.subarray(at + 1)]);
    assertEquals(parseMessage(mutated), {
      ok: false,
      id: "cln:db_write#9",
      method: "db_write",
      error: "not valid UTF-8",
    });
  }
  assertEquals(parseMessage(new Uint8Array([0x7b, 0xff, 0x7d])), {
    ok: false,
    id: undefined,
    error: "not valid UTF-8",
  });
  // Valid 4-byte sequences are fine, and so is a U+FFFD that was sent as such.
  assertEquals(parse('{"jsonrpc":"2.0","method":"m","params":"⚡𝄞\uFFFD"}'), {
    ok: true,
    request: { jsonrpc: "2.0", method: "m", params: "⚡𝄞\uFFFD" },
  });
});

Deno.test("parseMessage: no method, or a method that is not a string", () => {
  assertEquals(parse('{"jsonrpc":"2.0","id":4}'), { ok: false, id: 4, error: "no method" });
  assertEquals(parse('{"jsonrpc":"2.0","id":"a","method":5}'), {
    ok: false,
    id: "a",
    error: "no method",
  });
});

Deno.test("parseMessage: an id that is neither string nor number", () => {
  for (const id of ["null", "{}", "[1]", "true"]) {
    assertEquals(parse(`{"jsonrpc":"2.0","id":${id},"method":"m"}`), {
      ok: false,
      id: undefined,
      method: "m",
      error: "id is neither string nor number",
    });
  }
});

Deno.test("readIntLiterals: what strtol(base 0) reads whole, outside strings, as decimal", () => {
  const text = '{"a":010,"b":0x1F,"c":+2,"d":-0X10,"e":"x:010,","f":[true,null,1.5e3,-0,7],"g":08}';
  assertEquals(readIntLiterals(text), {
    text: '{"a":8,"b":31,"c":2,"d":-16,"e":"x:010,","f":[true,null,1.5e3,-0,7],"g":08}',
    literals: [
      { written: "010", read: 8 },
      { written: "0x1F", read: 31 },
      { written: "+2", read: 2 },
      { written: "-0X10", read: -16 },
    ],
  });
  assertEquals(readIntLiterals('{"a":"\\"010","b":[1,2]}'), undefined);
});

Deno.test("parseMessage: an init with numbers lightningd copied from its config is read; nothing else is", () => {
  const init =
    '{"jsonrpc":"2.0","id":"cln:init#47","method":"init","params":{"options":{"r":010}}}';
  assertEquals(parse(init), {
    ok: true,
    request: { jsonrpc: "2.0", id: "cln:init#47", method: "init", params: { options: { r: 8 } } },
    literals: [{ written: "010", read: 8 }],
  });
  const other = parse(init.replace('"method":"init"', '"method":"db_write"'));
  assertEquals(other.ok, false);
  if (!other.ok) assertMatch(other.error, /^not JSON \(/);
  // lightningd passes such a number in a caller's request too: a forwarded call naming
  // "init" again is no init.
  const forwarded = '{"jsonrpc":"2.0","method":"backup-status","id":"x/cln:b#3","params":[],' +
    '"n":010,"method":"init","params":{"options":{"backup-retain-snapshots":1}}}';
  assertEquals(parse(forwarded), {
    ok: false,
    id: "x/cln:b#3",
    method: "backup-status",
    error: 'member "method" given twice',
  });
});

Deno.test("parseMessage: a top-level member given twice is refused with lightningd's id and method", () => {
  const cases: [string, { id?: string | number; method?: string; name: string }][] = [
    [
      '{"jsonrpc":"2.0","method":"backup-status","id":"a/cln:b#1","params":[],"method":"db_write"}',
      { id: "a/cln:b#1", method: "backup-status", name: "method" },
    ],
    // lightningd compares names as written; JSON.parse decodes them first.
    [
      '{"jsonrpc":"2.0","id":7,"method":"backup-status","params":{},"m\\u0065thod":"shutdown"}',
      { id: 7, method: "backup-status", name: "method" },
    ],
    [
      '{ "id" : "a" , "method" : "x" , "params" : [ "id" , { "id" : 1 } ] , "id" : "b" }',
      { id: "a", method: "x", name: "id" },
    ],
    [
      '{"\\u0069d":"evil","jsonrpc":"2.0","method":"backup-status","id":"a","params":[]}',
      { id: "a", method: "backup-status", name: "id" },
    ],
  ];
  for (const [text, { id, method, name }] of cases) {
    assertEquals(parse(text), { ok: false, id, method, error: `member "${name}" given twice` });
  }
  // Nested objects may repeat names, and a string value may hold any of them.
  const nested = '{"jsonrpc":"2.0","id":"i","method":"m","params":{"a":1,"a":2,"b":"\\"id\\":"}}';
  assertEquals(parse(nested), {
    ok: true,
    request: { jsonrpc: "2.0", id: "i", method: "m", params: { a: 2, b: '"id":' } },
  });
});

Deno.test("parseMessage: a member given twice is named as JSON writes it, on one line", () => {
  // A caller chooses the name; lightningd splits a plugin's log message at each line break.
  const text = '{"jsonrpc":"2.0","id":"a","method":"m","params":[],' +
    '"x\\nplugin-other: lies\\u0007":1,"x\\nplugin-other: lies\\u0007":2}';
  assertEquals(parse(text), {
    ok: false,
    id: "a",
    method: "m",
    error: 'member "x\\nplugin-other: lies\\u0007" given twice',
  });
});

Deno.test("parseMessage: a forwarded call lightningd let through but that is not JSON keeps lightningd's id", () => {
  // lightningd's parser (jsmn) takes any run of printable characters after a digit, t, f, n or
  // - as a value, and raw control characters in strings, and forwards the call with its own
  // id: the refusal must reach the caller, who otherwise waits forever.
  const id = "cli:backup-status#1/cln:backup-status#2";
  for (
    const rest of [
      `"x": tru`,
      `"x": 0x10`,
      `"x": 1.2.3`,
      `"x": "a\tb"`,
      `"x": [1,,2,]`,
    ]
  ) {
    const text =
      `{"jsonrpc": "2.0", "method": "backup-status", "id": "${id}", "params": [], ${rest}}`;
    const parsed = parse(text);
    assertEquals(parsed.ok, false, rest);
    if (parsed.ok) continue;
    assertEquals([parsed.id, parsed.method], [id, "backup-status"], rest);
    assertMatch(parsed.error, /^not JSON \(/);
  }
  // A quote inside such a value opens no string for lightningd: the id after it is its own.
  const quoted = parse(
    `{"x": 0", "id": "${id}", "method": "backup-status", "jsonrpc": "2.0", "params": []}`,
  );
  assertEquals(quoted.ok ? undefined : [quoted.id, quoted.method], [id, "backup-status"]);
  // Nested or in a string value, "id" is not lightningd's.
  const nested = '{"jsonrpc": "2.0", "params": {"id": "n"}, "x": "\\"id\\": \\"s\\"", "y": tru}';
  const parsed = parse(nested);
  assertEquals(parsed.ok ? undefined : parsed.id, undefined);
});
