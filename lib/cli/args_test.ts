import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { type CommandSpec, oneLine, parseCommandArgs, UsageError } from "./args.ts";

const SPEC: CommandSpec = {
  name: "restore",
  action: "Cannot restore backup",
  help: "",
  options: { "to-version": { type: "string" } },
  positionals: ["url"],
};

Deno.test("parseCommandArgs: a value that starts with a dash says how to give it", () => {
  const error = assertThrows(() => parseCommandArgs(SPEC, ["u", "--to-version", "-1"]));
  assertEquals(error instanceof UsageError, true);
  assertEquals(
    error.message,
    "--to-version takes a value, and what follows it starts with a dash: write " +
      "--to-version=VALUE if that is its value",
  );
  const parsed = parseCommandArgs(SPEC, ["u", "--to-version=-1"]);
  assertEquals(parsed !== "help" && parsed.values["to-version"], "-1");
});

Deno.test("oneLine: the command's action starts a line that does not start with one", () => {
  assertEquals(
    oneLine("Cannot restore backup", "no such\n  file"),
    "Cannot restore backup: no such file",
  );
  assertEquals(oneLine("Cannot restore backup", "Cannot read backup: x"), "Cannot read backup: x");
});

Deno.test("parseCommandArgs: an empty argument or option value, as an unset shell variable gives, is refused", () => {
  // "" would resolve to the current directory: init --lightning-dir "" wrote backup.lock there.
  const spec: CommandSpec = {
    ...SPEC,
    options: { "lightning-dir": { type: "string" }, mirror: { type: "string", multiple: true } },
  };
  for (
    const [args, message] of [
      [["", "--lightning-dir", "/d"], `"restore" got an empty <url>`],
      [["u", "--lightning-dir", ""], `--lightning-dir got an empty value`],
      [["u", "--lightning-dir="], `--lightning-dir got an empty value`],
      [["u", "--mirror", "file:///m", "--mirror", ""], `--mirror got an empty value`],
    ]
  ) {
    const error = assertThrows(() => parseCommandArgs(spec, args as string[]));
    assertEquals(error instanceof UsageError, true);
    assertEquals(error.message, `${message} (an unset shell variable?): give it`);
  }
});
