import { Options, type OptionSpec, type OptionValue } from "./options.ts";
import { RpcError } from "./jsonrpc.ts";
import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import {
  loadRpcOptionsDriver,
  RECORDED_INIT_OPTIONS,
  RECORDED_OPTIONS_IN_FORCE,
} from "../../tests/support/fixtures.ts";

/** The options the recording plugin declared, one of each type, as lightningd got them. */
const RECORDED = loadRpcOptionsDriver().options;
const INIT = RECORDED_INIT_OPTIONS;

Deno.test("options: the manifest entries equal what the recorded plugin declared", () => {
  assertEquals(new Options(RECORDED).manifest(), RECORDED);
});

Deno.test("options: defaults before init; flags false, strings without default unset", () => {
  assertEquals(new Options(RECORDED).values(), {
    "rec-int": 1,
    "rec-bool": true,
    "rec-string": "none",
    "rec-flag": false,
    "rec-flag-unset": false,
    "rec-default": 7,
    "rec-nodefault": null,
    "rec-dyn": 5,
  });
});

Deno.test("options: init's recorded options arrive typed, absent ones keep their default", () => {
  const options = new Options(RECORDED);
  assertEquals(options.init(INIT), []);
  assertEquals(options.values(), { ...RECORDED_OPTIONS_IN_FORCE, "rec-dyn": 10 });
});

Deno.test("options: setconfig's recorded string val sets a dynamic int", () => {
  const options = new Options(RECORDED);
  options.init(INIT);
  assertEquals(options.set({ config: "rec-dyn", val: "20" }), 20);
  assertEquals(options.values(), RECORDED_OPTIONS_IN_FORCE);
});

const SPEC = (type: OptionSpec["type"]): OptionSpec[] => [
  { name: "x", type, description: "test", dynamic: true },
];

// [type, setconfig val, value] for every type: what is accepted, as lightningd sends it.
const GOOD: [OptionSpec["type"], unknown, OptionValue][] = [
  ["int", "20", 20],
  ["int", "-3", -3],
  ["int", "0", 0],
  ["int", 20, 20],
  ["bool", "true", true],
  ["bool", "false", false],
  ["bool", true, true],
  // lightningd reads a bool option as ccan's opt_set_bool_arg does: yes/no/true/false in
  // any case; setconfig hands the plugin the caller's text as it is.
  ["bool", "yes", true],
  ["bool", "no", false],
  ["bool", "True", true],
  ["bool", "FALSE", false],
  ["flag", undefined, true],
  ["flag", "false", false],
  ["string", "s3://bucket/a b", "s3://bucket/a b"],
  ["string", "", ""],
  ["string", "20", "20"],
];

Deno.test("options: setconfig accepts each type's values", () => {
  for (const [type, val, value] of GOOD) {
    const options = new Options(SPEC(type));
    assertEquals(options.set({ config: "x", val }), value, `${type} ${JSON.stringify(val)}`);
    assertEquals(options.values(), { x: value });
  }
});

// [type, setconfig val, message]: each refused with one line saying what to give.
const BOOL_VALUES = "true, false, yes or no (any case)";
const BAD: [OptionSpec["type"], unknown, string][] = [
  [
    "int",
    "20x",
    'Cannot set option "x": "20x" is not a whole number; give a whole number such as 42',
  ],
  [
    "int",
    "1.5",
    'Cannot set option "x": "1.5" is not a whole number; give a whole number such as 42',
  ],
  ["int", "", 'Cannot set option "x": "" is not a whole number; give a whole number such as 42'],
  [
    "int",
    " 2",
    'Cannot set option "x": " 2" is not a whole number; give a whole number such as 42',
  ],
  [
    "int",
    "99999999999999999999",
    'Cannot set option "x": "99999999999999999999" is not a whole number; give a whole number such as 42',
  ],
  [
    "int",
    undefined,
    'Cannot set option "x": undefined is not a whole number; give a whole number such as 42',
  ],
  // lightningd saves an accepted val to config.setconfig as it is and parses it at the next
  // start with strtol(base 0), then sends it in init as a raw JSON literal: "08" would stop
  // lightningd from starting, "010" would be 8 and make init's JSON invalid.
  [
    "int",
    "010",
    'Cannot set option "x": "010" has a leading zero; give a whole number such as 42',
  ],
  [
    "int",
    "08",
    'Cannot set option "x": "08" has a leading zero; give a whole number such as 42',
  ],
  [
    "int",
    "-007",
    'Cannot set option "x": "-007" has a leading zero; give a whole number such as 42',
  ],
  // Every value setconfig takes is listed (what lightningd's config takes: opt_set_bool_arg).
  ["bool", "maybe", `Cannot set option "x": "maybe" is not a boolean; give ${BOOL_VALUES}`],
  ["bool", "1", `Cannot set option "x": "1" is not a boolean; give ${BOOL_VALUES}`],
  ["bool", "on", `Cannot set option "x": "on" is not a boolean; give ${BOOL_VALUES}`],
  ["string", 5, 'Cannot set option "x": 5 is not a string; give a string'],
];

Deno.test("options: a bad setconfig value is one -32602 error; the value in force stays", async () => {
  for (const [type, val, message] of BAD) {
    const options = new Options(SPEC(type));
    const before = options.values();
    const error = await assertRejects(() => options.set({ config: "x", val }));
    assertEquals(error instanceof RpcError && error.toJSON(), { code: -32602, message });
    assertEquals(options.values(), before);
  }
});

Deno.test("options: setconfig of an unknown or non-dynamic option is refused", async () => {
  const options = new Options(RECORDED);
  for (
    const [params, message] of [
      [{ config: "nope", val: "1" }, 'Cannot set option "nope": this plugin has no such option'],
      [
        { config: "rec-int", val: "1" },
        `Cannot set option "rec-int" while the node runs: set it in lightningd's config and restart`,
      ],
      [{ val: "1" }, 'Cannot set option: "config" names no option'],
      [null, 'Cannot set option: "config" names no option'],
    ] as const
  ) {
    assertEquals((await assertRejects(() => options.set(params))).message, message);
  }
  assertEquals(options.get("rec-int"), 1);
});

Deno.test("options: init values of the wrong type are logged and ignored, one line each", () => {
  const options = new Options(RECORDED);
  const problems = options.init({
    "rec-int": "42",
    "rec-bool": "false",
    "rec-string": 5,
    "rec-flag": 1,
    "rec-nodefault": null,
    "rec-dyn": 1.5,
    "rec-unknown": 1,
  });
  assertEquals(problems, [
    'Ignoring option "rec-int": "42" is not a whole number; give a whole number such as 42 (keeping 1)',
    'Ignoring option "rec-bool": "false" is not a boolean; give a JSON true or false (keeping true)',
    'Ignoring option "rec-string": 5 is not a string; give a string (keeping "none")',
    'Ignoring option "rec-flag": 1 is not a boolean; give a JSON true or false (keeping false)',
    'Ignoring option "rec-nodefault": null is not a string; give a string (keeping it unset)',
    'Ignoring option "rec-dyn": 1.5 is not a whole number; give a whole number such as 42 (keeping 5)',
    'Ignoring unknown option "rec-unknown" in init: this plugin declares no such option',
  ]);
  assertEquals(options.values(), new Options(RECORDED).values());
  assertEquals(options.init([1]), ["Ignoring init's options: [1] is not an object"]);
  assertEquals(options.init(undefined), []);
});
