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
